"""CLI plugin for the signed Diffie-Hellman mode (RFC 3830 §3.3): ``--mode dh``.

Credentials: ``--cert PEM`` (own certificate, leaf first, may hold the chain), ``--key PEM``,
``--ca PEM`` (trust anchors, repeatable), ``--peer-cert PEM`` (the peer's certificate when its
messages carry none; pinned when no ``--ca`` is given -- still checked for validity, key usage and
ID binding).  ``--dh-group 0|1|2`` chooses OAKLEY 5/1/2; only OAKLEY 5 is allowed unless
``--allow-dh-group 1`` / ``--allow-dh-group 2`` names the weak group (on every side that sees it).
``--dh-private HEX`` fixes the own exponent.  Both sides contribute to the TGK, so
the stateless ``complete`` needs the Initiator's exponent: ``initiate`` prints it as ``dh_private``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cryptography import x509

from ..constants import IDType, SignatureType
from ..crypto import dh as dh_crypto
from ..crypto.x509 import CertificateValidator
from ..errors import UnspecifiedError
from ..keystore import Credentials, TrustStore, load_certificates, load_credentials
from ..modes.base import CryptoSessionSpec, ExchangeResult, ResponderOutcome
from ..modes.dh import DH_COMPAT_OPTIONS, DhInitiator, DhInitiatorBase, DhResponder
from ..replay import ReplayCache
from ..wire import IdPayload
from .common import hex_int
from .demo_pki import load_demo_pki, make_demo_pki, memory_pki
from .plugins import DemoInitiator, DemoResponder, InitiateOutput, ModePlugin, SpeedCase

__all__ = ["PLUGIN", "DhPlugin", "pending_result"]

S_TYPES = {"pkcs1": SignatureType.RSA_PKCS1_V1_5, "pss": SignatureType.RSA_PSS, "0": 0, "1": 1}


def _id(uri: str | None) -> IdPayload | None:
    return IdPayload(IDType.URI, uri.encode("utf-8")) if uri else None


def add_dh_arguments(parser: argparse.ArgumentParser, command: str, compat: frozenset[str]) -> None:
    """Options shared by the dh and dhhmac plugins."""
    if command == "initiate":
        parser.add_argument("--dh-group", type=int, choices=(0, 1, 2), default=0,
                            help="DH group: 0 OAKLEY 5 (default), 1 OAKLEY 1, 2 OAKLEY 2 (RFC 3830 §6.4; 1 and 2 "
                                 "need --allow-dh-group)")
    parser.add_argument("--dh-private", type=hex_int, metavar="HEX", required=command == "complete",
                        help="own DH exponent (default: random); complete needs the Initiator's")
    parser.add_argument("--allow-dh-group", type=int, action="append", choices=sorted(dh_crypto.WEAK_GROUPS),
                        default=[], metavar="N",
                        help="also allow weak DH group N: 1 (768-bit OAKLEY 1) or 2 (1024-bit OAKLEY 2); "
                             "off by default (repeatable)")
    parser.add_argument("--compat", action="append", choices=sorted(compat), default=[],
                        help="accept a deployed variant (repeatable; see the mode's documentation)")


def allowed_groups(args: argparse.Namespace) -> frozenset[int]:
    """The DH groups allowed: OAKLEY 5 plus any ``--allow-dh-group``."""
    return dh_crypto.DEFAULT_GROUPS | frozenset(getattr(args, "allow_dh_group", None) or ())


def pending_result(initiator: DhInitiatorBase) -> ExchangeResult:
    """The Initiator's view after the I_MESSAGE: no TGK yet (it needs DHr)."""
    assert initiator.header is not None
    return ExchangeResult(
        mode=initiator.MODE,
        csb_id=initiator.csb_id,
        tgk=b"",
        rand=initiator.rand,
        prf=initiator.prf,
        crypto_sessions=(),
        authenticated=False,
        header=initiator.header,
        policies=tuple(initiator.policies),
        initiator_id=initiator.id_i.data if initiator.id_i else None,
        responder_id=initiator.id_r.data if initiator.id_r else None,
    )


def _validator(args: argparse.Namespace) -> CertificateValidator | None:
    cas = list(getattr(args, "ca", None) or [])
    return TrustStore.load(*cas).validator() if cas else None


def _peer_certs(args: argparse.Namespace) -> list[x509.Certificate]:
    return load_certificates(args.peer_cert) if getattr(args, "peer_cert", None) else []


#: DH public-key work per side (RFC 3830 §3.3): own g^x, the shared g^(xy), one signature, one check.
_DH_OPS = ("dh5-public", "dh5-shared", "rsa2048-sign", "rsa2048-verify")


class DhPlugin(ModePlugin):
    name = "dh"
    help = "Diffie-Hellman with RSA signatures (RFC 3830 §3.3)"
    always_responds = True

    def add_arguments(self, parser: argparse.ArgumentParser, command: str) -> None:
        needs_key = command != "complete"
        parser.add_argument("--cert", metavar="PEM", required=needs_key,
                            help="own certificate (leaf first, then intermediates), sent in CERT payloads")
        parser.add_argument("--key", metavar="PEM", required=needs_key, help="own RSA private key (PEM)")
        parser.add_argument("--ca", metavar="PEM", action="append", help="trust anchor(s) (repeatable)")
        parser.add_argument("--peer-cert", metavar="PEM", help="the peer's certificate, when not in its messages")
        parser.add_argument("--s-type", choices=sorted(S_TYPES), default="pkcs1",
                            help="SIGN S type: pkcs1 (0, default) or pss (1)")
        parser.add_argument("--sign-hash", choices=("sha256", "sha1"), default="sha256",
                            help="hash for own signatures (both are accepted from the peer)")
        if command == "initiate":
            parser.add_argument("--id-i", metavar="URI", help="own identity (default: the certificate's SAN URI)")
            parser.add_argument("--id-r", metavar="URI", help="the Responder's identity (IDr payload)")
        elif command == "respond":
            parser.add_argument("--id-r", metavar="URI", help="own identity (default: the certificate's SAN URI)")
        add_dh_arguments(parser, command, DH_COMPAT_OPTIONS)

    def _credentials(self, args: argparse.Namespace) -> Credentials | None:
        if not getattr(args, "key", None) or not getattr(args, "cert", None):
            return None
        return load_credentials(args.key, args.cert)

    def _signing(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"s_type": S_TYPES[args.s_type], "sign_hash": args.sign_hash,
                "peer_certificates": _peer_certs(args)}

    def initiate(self, args: argparse.Namespace, now: float) -> InitiateOutput:
        specs = [CryptoSessionSpec(ssrc=s) for s in (args.ssrc or [])] or None
        initiator = DhInitiator(
            self._credentials(args), _validator(args), crypto_sessions=specs, csb_id=args.csb_id,
            rand=args.rand, group=args.dh_group, dh_private=args.dh_private, prf=int(args.prf),
            id_i=_id(args.id_i), id_r=_id(args.id_r), compat=args.compat, allowed_groups=allowed_groups(args),
            **self._signing(args),
        )
        i_message = initiator.create_message(now)
        return InitiateOutput(i_message, pending_result(initiator), extra=_dh_extra(initiator))

    def respond(self, args: argparse.Namespace, i_message: bytes, now: float) -> ResponderOutcome:
        creds = self._credentials(args)
        assert creds is not None
        responder = DhResponder(creds, _validator(args), own_ssrcs=list(args.ssrc or []), id_r=_id(args.id_r),
                                dh_private=args.dh_private, allowed_groups=allowed_groups(args),
                                **self._signing(args))
        return responder.receive(i_message, now)

    def complete(self, args: argparse.Namespace, i_message: bytes, r_message: bytes | None,
                 now: float) -> ExchangeResult:
        if r_message is None:
            raise UnspecifiedError("DH always needs the R_MESSAGE (--rmsg): the TGK needs the Responder's DHr")
        try:
            initiator = DhInitiator.resume(i_message, args.dh_private, _validator(args),
                                           credentials=self._credentials(args), compat=args.compat,
                                           allowed_groups=allowed_groups(args), **self._signing(args))
        except ValueError as e:
            raise UnspecifiedError(str(e)) from None
        return initiator.receive(r_message, now)

    # -- demo ---------------------------------------------------------------------------------

    def demo_credentials(self, workdir: Path) -> dict[str, Any]:
        return make_demo_pki(workdir)

    def demo_initiator(self, creds: dict[str, Any], ssrc: int) -> DemoInitiator:
        alice, _, validator = load_demo_pki(creds)
        return DhInitiator(alice, validator, crypto_sessions=[CryptoSessionSpec(ssrc=ssrc)], id_r=_id(creds["bob"]["id"]))

    def demo_responder(self, creds: dict[str, Any], ssrc: int) -> DemoResponder:
        _, bob, validator = load_demo_pki(creds)
        return DhResponder(bob, validator, own_ssrcs=[ssrc])

    def demo_description(self, creds: dict[str, Any]) -> str:
        return "DH: OAKLEY 5 (1536-bit), RSA-2048 PKCS#1 v1.5 SHA-256 signatures, certificates from a demo CA"

    # -- speed ----------------------------------------------------------------------------------

    def speed_cases(self) -> list[SpeedCase]:
        now = 1_700_000_000.0
        pki = memory_pki(now)
        validator = pki.validator()
        alice, bob = pki.alice, pki.bob
        x_i = 0x5EED_1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0_1234_5678_9AB
        fixed: dict[str, Any] = {"dh_private": x_i, "csb_id": 0x01020304, "rand": bytes(range(16)),
                 "crypto_sessions": [CryptoSessionSpec(ssrc=0x11223344)]}

        def initiator() -> ExchangeResult:
            side = DhInitiator(alice, validator, **fixed)
            side.create_message(now)
            return side.receive(r_message, now)

        i_message = DhInitiator(alice, validator, **fixed).create_message(now)  # deterministic (PKCS#1 v1.5)
        response = DhResponder(bob, validator).receive(i_message, now).response
        assert response is not None
        r_message: bytes = response

        def responder() -> ResponderOutcome:
            return DhResponder(bob, validator, replay_cache=ReplayCache()).receive(i_message, now)

        return [SpeedCase("DH initiator", initiator, "modexp1536", _DH_OPS), SpeedCase("DH responder", responder, "modexp1536", _DH_OPS)]


def _dh_extra(initiator: DhInitiatorBase) -> dict[str, Any]:
    # The exponent is printed on purpose: the stateless `complete` needs it (--dh-private).
    return {"dh_group": initiator.group.group_id, "dh_private": f"{initiator.export_dh_private():x}",
            "note": "the TGK needs the R_MESSAGE: run complete with --dh-private"}


PLUGIN = DhPlugin()
