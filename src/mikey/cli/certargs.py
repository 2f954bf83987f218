"""Options and credential loading shared by the certificate modes' plugins (PK, RSA-R, DH).

Credentials: ``--cert PEM`` (own certificate, leaf first, intermediates may follow),
``--key PEM`` (own private key), ``--peer-cert PEM`` (the peer's certificate, for
when its messages carry none), ``--ca PEM`` (trust anchors, repeatable).  Without
``--ca`` a configured peer certificate is pinned (the "specific peer" model of
RFC 3830 §4.3.2, :func:`mikey.modes.signing.pinned_validator`): it is still checked
for validity, key usage and ID binding.
"""

from __future__ import annotations

import argparse

from cryptography import x509

from ..constants import IDType, SignatureType
from ..crypto.x509 import CertificateValidator
from ..keystore import Credentials, TrustStore, load_certificates, load_credentials
from ..modes.signing import pinned_validator
from ..wire import IdPayload
from .common import UsageError, enum_option

__all__ = [
    "S_TYPES",
    "SIGN_HASHES",
    "add_certificate_arguments",
    "add_signature_arguments",
    "add_signer_arguments",
    "id_payload",
    "load_own",
    "peer_certs",
    "ca_validator",
    "trust",
]

#: ``--sign`` names of the SIGN S types (RFC 3830 Table 6.5); the type numbers are accepted too.
S_TYPES: dict[str, SignatureType] = {"pkcs1": SignatureType.RSA_PKCS1_V1_5, "pss": SignatureType.RSA_PSS}
_S_TYPE_SPELLINGS = {**S_TYPES, **{str(int(v)): v for v in S_TYPES.values()}}
#: ``--sign-hash`` choices: the hash of own signatures (SHA-1 is RFC 3830 §4.2.1's default).
SIGN_HASHES = ("sha256", "sha1")


def add_certificate_arguments(parser: argparse._ActionsContainer, *, peer_help: str, required: bool) -> None:
    """``--cert``, ``--key`` (both *required* or both optional), ``--peer-cert`` and ``--ca``."""
    parser.add_argument("--cert", metavar="PEM", required=required,
                        help="own certificate (PEM; intermediates may follow the leaf), sent in CERT payloads")
    parser.add_argument("--key", metavar="PEM", required=required, help="own RSA private key (PEM or DER)")
    parser.add_argument("--peer-cert", metavar="PEM", help=peer_help)
    parser.add_argument("--ca", metavar="PEM", action="append",
                        help="trust anchor certificate(s), repeatable; without it --peer-cert is pinned")


def add_signature_arguments(parser: argparse._ActionsContainer) -> None:
    """``--sign`` (alias ``--s-type``) and ``--sign-hash``: how own SIGN payloads are made."""
    s_type = enum_option(_S_TYPE_SPELLINGS)
    parser.add_argument("--sign", type=s_type, default=S_TYPES["pkcs1"], metavar="|".join(S_TYPES),
                        help="SIGN S type: RSA PKCS#1 v1.5 (0, mandatory, default) or RSA-PSS (1) "
                        "(RFC 3830 Table 6.5)")
    parser.add_argument("--s-type", dest="sign", type=s_type, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--sign-hash", choices=SIGN_HASHES, default="sha256",
                        help="hash of own signatures (default sha256; SHA-1 is RFC 3830 §4.2.1's default); "
                        "both are accepted from the peer")


def add_signer_arguments(parser: argparse._ActionsContainer) -> None:
    """What a PK or RSA-R side that signs and encrypts an envelope key chooses."""
    add_signature_arguments(parser)
    parser.add_argument("--oaep", action="store_true",
                        help="RSAES-OAEP for the envelope key instead of PKCS#1 v1.5 (RFC 3830 §4.2.5)")
    parser.add_argument("--no-cert", action="store_true", help="do not send own certificate in CERT payloads")
    parser.add_argument("--cert-url", metavar="URL", help="send an X.509v3 URL CERT payload instead (Cert type 1)")


def id_payload(text: str | None) -> IdPayload | None:
    """``--id-i/--id-r``: a URI (``scheme:...``) becomes a URI ID, anything else an NAI (RFC 3830 §6.7)."""
    if not text:
        return None
    scheme, sep, _ = text.partition(":")
    if sep and scheme.isalpha() and "@" not in scheme:
        return IdPayload(IDType.URI, text.encode("utf-8"))
    return IdPayload(IDType.NAI, text.encode("utf-8"))


def load_own(args: argparse.Namespace) -> Credentials:
    """``--cert`` and ``--key`` as :class:`Credentials` (the PEM may carry the chain after the leaf)."""
    if not args.cert or not args.key:
        raise UsageError(f"--mode {args.mode} needs --cert and --key together")
    return load_credentials(args.key, args.cert)


def peer_certs(args: argparse.Namespace) -> list[x509.Certificate]:
    """``--peer-cert`` (leaf first, then its chain), or []."""
    return load_certificates(args.peer_cert) if args.peer_cert else []


def ca_validator(args: argparse.Namespace) -> CertificateValidator | None:
    """A validator over the ``--ca`` anchors, or None without them."""
    return TrustStore.load(*args.ca).validator() if args.ca else None


def trust(args: argparse.Namespace, peers: list[x509.Certificate]) -> CertificateValidator:
    """The ``--ca`` validator, or else the pinned peer certificate; a usage error with neither."""
    validator = ca_validator(args)
    if validator is not None:
        return validator
    if peers:
        return pinned_validator(peers[0])
    raise UsageError(f"--mode {args.mode} {args.command} needs --ca (trust anchors) or --peer-cert")
