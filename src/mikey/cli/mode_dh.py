"""CLI plugin for the signed Diffie-Hellman mode (RFC 3830 §3.3): ``--mode dh``.

Credentials are those of :mod:`mikey.cli.certargs` (``--cert`` and ``--key`` may be
left out of ``complete``); the DH options (``--dh-group``, ``--dh-private``,
``--allow-dh-group``) are :mod:`mikey.cli.dhargs`.  Both sides contribute to the
TGK, so the stateless ``complete`` needs the Initiator's exponent: ``initiate
--show-keys`` prints it as ``dh_private``.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import UnspecifiedError
from ..modes.dh import DH_COMPAT_OPTIONS, DhInitiator, DhResponder
from ..modes.results import CryptoSessionSpec, ExchangeResult, ResponderOutcome
from .certargs import add_certificate_arguments, add_signature_arguments, ca_validator, load_own, peer_certs
from .demo_pki import PkiDemoPlugin, load_demo_pki, memory_pki
from .dhargs import add_dh_arguments, allowed_groups, initiate_output
from .plugin_base import (
    SPEED_NOW,
    DemoInitiator,
    InitiateOutput,
    SpeedCase,
    add_compat_option,
    crypto_session_specs,
    required_response,
    responder_keywords,
    speed_response,
    uri_id,
)

__all__ = ["PLUGIN", "DhPlugin"]

#: DH public-key work per side (RFC 3830 §3.3): own g^x, the shared g^(xy), one signature, one check.
_DH_OPS = ("dh5-public", "dh5-shared", "rsa2048-sign", "rsa2048-verify")


class DhPlugin(PkiDemoPlugin):
    name = "dh"
    help = "Diffie-Hellman with RSA signatures (RFC 3830 §3.3)"
    demo_responder_class = DhResponder
    initiate_options = frozenset()  # no TGK or KEMAC to choose, and the response always comes

    def add_arguments(self, parser: argparse._ActionsContainer, command: str) -> None:
        add_certificate_arguments(parser, required=command != "complete",
                                  peer_help="the peer's certificate, when its messages carry none")
        add_signature_arguments(parser)
        if command == "initiate":
            parser.add_argument("--id-i", metavar="URI", help="own identity (default: the certificate's SAN URI)")
            parser.add_argument("--id-r", metavar="URI", help="the Responder's identity (IDr payload)")
        elif command == "respond":
            parser.add_argument("--id-r", metavar="URI", help="own identity (default: the certificate's SAN URI)")
        add_dh_arguments(parser, command)
        if command != "respond":
            add_compat_option(parser, DH_COMPAT_OPTIONS, "mikey.modes.dh")

    def _signing(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"s_type": args.sign, "sign_hash": args.sign_hash, "peer_certificates": peer_certs(args)}

    def initiate(self, args: argparse.Namespace, now: float) -> InitiateOutput:
        initiator = DhInitiator(
            load_own(args), ca_validator(args), crypto_sessions=crypto_session_specs(args.ssrc), csb_id=args.csb_id,
            rand=args.rand, group=args.dh_group, dh_private=args.dh_private, prf=int(args.prf),
            id_i=uri_id(args.id_i), id_r=uri_id(args.id_r), compat=args.compat, allowed_groups=allowed_groups(args),
            **self._signing(args),
        )
        return initiate_output(initiator, initiator.create_message(now))

    def respond(self, args: argparse.Namespace, i_message: bytes, now: float) -> ResponderOutcome:
        responder = DhResponder(load_own(args), ca_validator(args), id_r=uri_id(args.id_r), **responder_keywords(args),
                                dh_private=args.dh_private, allowed_groups=allowed_groups(args),
                                **self._signing(args))
        return responder.receive(i_message, now)

    def complete(self, args: argparse.Namespace, i_message: bytes, r_message: bytes | None,
                 now: float) -> ExchangeResult:
        response = required_response(self.name, r_message)
        try:
            initiator = DhInitiator.resume(i_message, args.dh_private, ca_validator(args),
                                           credentials=load_own(args) if args.cert or args.key else None,
                                           compat=args.compat,
                                           allowed_groups=allowed_groups(args), **self._signing(args))
        except ValueError as e:
            raise UnspecifiedError(str(e)) from None
        return initiator.receive(response, now)

    # -- demo ---------------------------------------------------------------------------------

    def demo_initiator(self, creds: dict[str, Any], ssrc: int) -> DemoInitiator:
        alice, _, validator = load_demo_pki(creds)
        return DhInitiator(alice, validator, crypto_sessions=[CryptoSessionSpec(ssrc=ssrc)], id_r=uri_id(creds["bob"]["id"]))

    def demo_description(self, creds: dict[str, Any]) -> str:
        return "DH: OAKLEY 5 (1536-bit), RSA-2048 PKCS#1 v1.5 SHA-256 signatures, certificates from a demo CA"

    # -- speed ----------------------------------------------------------------------------------

    def speed_cases(self) -> list[SpeedCase]:
        now = SPEED_NOW
        alice, bob, validator = memory_pki(now).parties()
        x_i = 0x5EED_1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0_1234_5678_9AB
        fixed: dict[str, Any] = {"dh_private": x_i, "csb_id": 0x01020304, "rand": bytes(range(16)),
                 "crypto_sessions": [CryptoSessionSpec(ssrc=0x11223344)]}

        def initiator() -> ExchangeResult:
            side = DhInitiator(alice, validator, **fixed)
            side.create_message(now)
            return side.receive(r_message, now)

        i_message = DhInitiator(alice, validator, **fixed).create_message(now)  # deterministic (PKCS#1 v1.5)
        r_message = speed_response(DhResponder(bob, validator).receive(i_message, now))

        def responder() -> ResponderOutcome:
            # A fresh Responder has a fresh replay cache, so the same message is accepted every time.
            return DhResponder(bob, validator).receive(i_message, now)

        return [SpeedCase("DH initiator", initiator, "modexp1536", _DH_OPS), SpeedCase("DH responder", responder, "modexp1536", _DH_OPS)]


PLUGIN = DhPlugin()
