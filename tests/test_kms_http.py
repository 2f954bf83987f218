"""``mikey kms serve`` for real: a uvicorn subprocess on 127.0.0.1 driven over HTTP (issue 9 §2)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import xmlschema

from mikey.kms.xml import KMS_XML_NS, read_kms_init, read_kms_key_prov

XML = pathlib.Path(__file__).parent / "vectors" / "kms_xml_ts33180"
ALICE = "sip:alice@example.org"
BOB = "sip:bob@example.org"
API = "/keymanagement/identity/v1/"


def mikey(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mikey", *args], capture_output=True, text=True, timeout=60)


def post(url: str, token: str | None, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/xml"})
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[tuple[str, pathlib.Path]]:
    data = tmp_path / "kms"
    proc = subprocess.Popen([sys.executable, "-m", "mikey", "kms", "serve", "--data", str(data), "--port", "0",
                             "--dev-tokens"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("serving http://127.0.0.1:"), (first, proc.stderr.read() if proc.poll() else "")
        yield first.removeprefix("serving "), data
        assert proc.poll() is None, "the server stopped"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def token(data: pathlib.Path, user: str) -> str:
    r = mikey("kms", "token", "--data", str(data), "--user", user)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_serve_init_user_add_keyprov(server: tuple[str, pathlib.Path]) -> None:
    url, data = server
    schema = xmlschema.XMLSchema(str(XML / "schema.xsd"), validation="lax")
    tok = token(data, ALICE)
    status, _, init = post(url + API + "init", tok)
    assert status == 200
    assert list(schema.iter_errors(init.decode())) == []
    kms = read_kms_init(init)
    status, _, body = post(url + API + "keyprov/" + quote(ALICE, safe=""), tok)
    assert status == 404 and b"not registered" in body
    added = mikey("kms", "user", "add", "--data", str(data), ALICE, BOB)
    assert added.returncode == 0 and added.stdout.split("\n")[:2] == [f"added {ALICE}", f"added {BOB}"]
    status, headers, prov = post(url + API + "keyprov/" + quote(ALICE, safe=""), tok)
    assert status == 200 and headers["content-type"].startswith("application/xml")
    assert list(schema.iter_errors(prov.decode())) == []
    [keys] = read_kms_key_prov(prov, kms)
    status, _, raw = post(url + API + "keyprov/" + ALICE, tok)  # raw URI, empty body
    assert status == 200 and read_kms_key_prov(raw, kms)[0].rsk == keys.rsk
    again = mikey("kms", "user", "add", "--data", str(data), ALICE)
    assert again.stdout.strip() == f"already registered {ALICE}"


def test_bad_requests_and_server_keeps_serving(server: tuple[str, pathlib.Path]) -> None:
    url, data = server
    status, headers, body = post(url + API + "init", "not.a.token")
    assert status == 401 and headers["www-authenticate"].startswith("Bearer ")
    assert ET.fromstring(body).findtext(f"{{{KMS_XML_NS}}}KmsError/{{{KMS_XML_NS}}}ErrorCode") == "401"
    tok = token(data, ALICE)
    status, _, body = post(url + API + "keyprov", tok, b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>")
    assert status == 400 and b"DTD" in body
    status, _, _ = post(url + API + "keyprov", tok, b"x" * (200 * 1024))
    assert status == 413
    status, _, _ = post(url + "/other", tok)
    assert status == 404
    status, _, body = post(url + API + "init", tok)
    assert status == 200


def test_non_loopback_without_tls_is_refused(tmp_path: pathlib.Path) -> None:
    r = mikey("kms", "serve", "--data", str(tmp_path), "--host", "0.0.0.0", "--port", "0", "--dev-tokens")
    assert r.returncode == 2 and "loopback" in r.stderr and r.stdout == ""


def test_fetch_then_sakke_initiate_respond(server: tuple[str, pathlib.Path], tmp_path: pathlib.Path) -> None:
    """``mikey kms fetch`` writes the keystores ``--mode sakke --keys`` reads; the exchange completes."""
    url, data = server
    assert mikey("kms", "user", "add", "--data", str(data), ALICE, BOB).returncode == 0
    for name, uri in (("alice", ALICE), ("bob", BOB)):
        r = mikey("kms", "fetch", "--kms", url, "--token", token(data, uri), "--out", str(tmp_path / f"{name}.json"))
        assert r.returncode == 0, r.stderr
        assert (tmp_path / f"{name}.json").stat().st_mode & 0o077 == 0
        doc = json.loads((tmp_path / f"{name}.json").read_text())
        periods = [k["period_no"] for k in [doc["user"], *doc.get("users", [])]]
        assert len(periods) == 2 and periods[1] == periods[0] + 1, periods  # current and next (rollover)
    init = mikey("--json", "initiate", "--mode", "sakke", "--keys", str(tmp_path / "alice.json"), "--to", BOB,
                 "--key-type", "pck", "--show-keys")
    assert init.returncode == 0, init.stderr
    i = json.loads(init.stdout)
    resp = mikey("--json", "respond", "--mode", "sakke", "--keys", str(tmp_path / "bob.json"),
                 "--imsg", i["i_message"], "--from", ALICE, "--show-keys")
    assert resp.returncode == 0, resp.stderr
    assert json.loads(resp.stdout)["tgk"] == i["tgk"]


def test_fetch_with_a_bad_token_fails_cleanly(server: tuple[str, pathlib.Path], tmp_path: pathlib.Path) -> None:
    url, _ = server
    r = mikey("kms", "fetch", "--kms", url, "--token", "bad.token.x", "--out", str(tmp_path / "x.json"))
    assert r.returncode == 1 and "401" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.json").exists()


def _self_signed(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A self-signed P-256 certificate for IP:127.0.0.1 (its own trust anchor) and its key."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mikey test KMS")])
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
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
    cert_path, key_path = tmp_path / "kms.pem", tmp_path / "kms.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_serve_and_fetch_with_ca(tmp_path: pathlib.Path) -> None:
    cert, key = _self_signed(tmp_path)
    data = tmp_path / "kms"
    proc = subprocess.Popen([sys.executable, "-m", "mikey", "kms", "serve", "--data", str(data), "--port", "0",
                             "--dev-tokens", "--tls-cert", str(cert), "--tls-key", str(key)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("serving https://127.0.0.1:"), first
        url = first.removeprefix("serving ")
        assert mikey("kms", "user", "add", "--data", str(data), ALICE).returncode == 0
        out = tmp_path / "alice.json"
        r = mikey("kms", "fetch", "--kms", url, "--token", token(data, ALICE), "--out", str(out), "--ca", str(cert))
        assert r.returncode == 0, r.stderr
        assert json.loads(out.read_text())["user"]["uri"] == ALICE
        untrusted = mikey("kms", "fetch", "--kms", url, "--token", token(data, ALICE), "--out", str(out) + ".2")
        assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
