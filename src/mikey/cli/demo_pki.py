"""A throw-away PKI for the certificate modes' demo, speed rows and tests (cryptography's X.509 builder).

One CA and two RSA-2048 end-entity certificates, Alice (``sip:alice@example.com``)
and Bob (``sip:bob@example.com``), each with that URI as subjectAltName and key
usage digitalSignature + keyEncipherment, so every certificate mode (PK, DH,
RSA-R) can use them.  Never for production keys.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .._files import write_private_atomic
from ..crypto.x509 import CertificateValidator
from ..keystore import Credentials, TrustStore, load_credentials
from .plugin_base import DemoResponder, ModePlugin

__all__ = ["DEMO_ALICE", "DEMO_BOB", "DemoPki", "new_pki", "memory_pki", "make_demo_pki", "load_demo_pki",
           "PkiDemoPlugin"]

DEMO_ALICE = "sip:alice@example.com"
DEMO_BOB = "sip:bob@example.com"


@dataclass(frozen=True)
class DemoPki:
    """The demo CA certificate, Alice's and Bob's credentials, and a validator trusting the CA."""

    ca: x509.Certificate
    alice: Credentials
    bob: Credentials

    def validator(self) -> CertificateValidator:
        return CertificateValidator([self.ca])

    def parties(self) -> tuple[Credentials, Credentials, CertificateValidator]:
        """Alice's and Bob's credentials and a validator trusting the CA (as :func:`load_demo_pki` returns)."""
        return self.alice, self.bob, self.validator()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str, key: rsa.RSAPrivateKey, issuer: x509.Name, issuer_key: rsa.RSAPrivateKey,
    not_before: dt.datetime, *, ca: bool, uri: str | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=366 if ca else 31))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca, content_commitment=False, key_encipherment=not ca, data_encipherment=False,
                key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if uri:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


_MEMORY: dict[float, DemoPki] = {}


def new_pki(now: float) -> DemoPki:
    """A fresh demo PKI (new keys), valid from a day before *now*."""
    start = dt.datetime.fromtimestamp(now, dt.UTC) - dt.timedelta(days=1)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _issue("MIKEY demo CA", ca_key, _name("MIKEY demo CA"), ca_key, start, ca=True)
    leaves = []
    for who, uri in (("alice", DEMO_ALICE), ("bob", DEMO_BOB)):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        leaves.append(Credentials(key, _issue(who, key, ca.subject, ca_key, start, ca=False, uri=uri)))
    return DemoPki(ca, leaves[0], leaves[1])


def memory_pki(now: float) -> DemoPki:
    """The demo PKI for *now*, made once per process and time (for speed rows)."""
    pki = _MEMORY.get(now)
    if pki is None:
        pki = _MEMORY[now] = new_pki(now)
    return pki


def make_demo_pki(workdir: Path, now: float | None = None) -> dict[str, Any]:
    """Write a fresh demo PKI as PEM files under *workdir* (keys mode 0600); returns their paths and IDs.

    Shape: ``{"ca": PATH, "alice": {"cert", "key", "id"}, "bob": {...}}``.
    """
    pki = new_pki(time.time() if now is None else now)
    workdir.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    out: dict[str, Any] = {"ca": str(workdir / "ca.pem")}
    (workdir / "ca.pem").write_bytes(pki.ca.public_bytes(pem))
    for who, creds, uri in (("alice", pki.alice, DEMO_ALICE), ("bob", pki.bob, DEMO_BOB)):
        cert_path, key_path = workdir / f"{who}.pem", workdir / f"{who}.key"
        cert_path.write_bytes(creds.certificate.public_bytes(pem))
        write_private_atomic(
            key_path,
            creds.rsa_private_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        )
        out[who] = {"cert": str(cert_path), "key": str(key_path), "id": uri}
    return out


_LOADED: dict[tuple[str, ...], tuple[Credentials, Credentials, CertificateValidator]] = {}


def load_demo_pki(creds: dict[str, Any]) -> tuple[Credentials, Credentials, CertificateValidator]:
    """Alice's and Bob's credentials and a validator, from :func:`make_demo_pki`'s files (parsed once)."""
    key = (creds["ca"], creds["alice"]["key"], creds["alice"]["cert"], creds["bob"]["key"], creds["bob"]["cert"])
    loaded = _LOADED.get(key)
    if loaded is None:
        alice = load_credentials(creds["alice"]["key"], creds["alice"]["cert"])
        bob = load_credentials(creds["bob"]["key"], creds["bob"]["cert"])
        loaded = _LOADED[key] = (alice, bob, TrustStore.load(creds["ca"]).validator())
    return loaded


class PkiDemoPlugin(ModePlugin):
    """A certificate mode's plugin (PK, RSA-R, DH) whose demo runs on the throw-away PKI: Bob answers
    with :attr:`demo_responder_class` ``(bob, validator, own_ssrcs=[ssrc])``."""

    demo_responder_class: ClassVar[type[Any]]

    def demo_credentials(self, workdir: Path) -> dict[str, Any]:
        return make_demo_pki(workdir)

    def demo_responder(self, creds: dict[str, Any], ssrc: int) -> DemoResponder:
        _, bob, validator = load_demo_pki(creds)
        responder: DemoResponder = self.demo_responder_class(bob, validator, own_ssrcs=[ssrc])
        return responder
