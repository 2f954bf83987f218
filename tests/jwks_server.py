"""A real HTTP(S) server on 127.0.0.1 publishing a JWKS document, as an identity server's ``jwks_uri`` does.

Used by the KMS auth tests (RFC 7517 §5, RFC 8414 §2)::

    with JwksServer({"keys": [...]}) as idp:
        idp.url            # http://127.0.0.1:PORT/jwks.json
        idp.set(document)  # the identity server rotates its keys
        idp.hits           # GET requests answered so far

Each answer is what the attributes say at that moment: ``body`` (bytes), ``status``, extra
``headers``, ``send_length`` (a Content-Length header, else the body ends with the connection)
and ``drip`` (seconds between single bytes, for a slow server).  ``tls`` = (cert PEM, key PEM)
serves HTTPS.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import pathlib
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PATH = "/jwks.json"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        owner = self.server.owner
        with owner.lock:
            owner.hits += 1
            owner.requests.append(dict(self.headers.items()))
            status, body, headers = owner.status, owner.body, dict(owner.headers)
            send_length, drip = owner.send_length, owner.drip
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        if send_length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            if drip:
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(drip)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: JwksServer


class JwksServer:
    """See the module docstring; a context manager that starts and stops the server thread."""

    def __init__(self, document: Any, *, tls: tuple[pathlib.Path, pathlib.Path] | None = None) -> None:
        self.lock = threading.Lock()
        self.hits = 0
        self.requests: list[dict[str, str]] = []
        self.status = 200
        self.headers: dict[str, str] = {}
        self.send_length = True
        self.drip = 0.0
        self.body = b""
        self.set(document)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        scheme = "http"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}{PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def set(self, document: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> None:
        """Serve *document* (a dict as JSON, or bytes as they are) from now on."""
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        with self.lock:
            self.body, self.status, self.headers = body, status, dict(headers or {})

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving (a later fetch gets "connection refused")."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()


def self_signed(directory: pathlib.Path, name: str = "idp") -> tuple[pathlib.Path, pathlib.Path]:
    """A self-signed P-256 certificate for IP:127.0.0.1 (its own trust anchor) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mikey test {name}")])
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, False, False, False), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
