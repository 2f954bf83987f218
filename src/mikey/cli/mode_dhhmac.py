"""CLI plugin for HMAC-authenticated Diffie-Hellman, DH-HMAC (RFC 4650): ``--mode dhhmac --psk HEX``.

``--mac`` (initiate) chooses the KEMAC MAC algorithm (RFC 3830 §6.2); the DH options
(``--dh-group``, ``--dh-private``, ``--allow-dh-group``) are :mod:`mikey.cli.dhargs`, as in
``--mode dh``; ``complete`` needs the Initiator's ``--dh-private``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..constants import MacAlg
from ..errors import UnspecifiedError
from ..modes.dhhmac import DH_COMPAT_OPTIONS, DHHMAC_RESPONDER_COMPAT, DhHmacInitiator, DhHmacResponder
from ..modes.results import CryptoSessionSpec, ExchangeResult, ResponderOutcome
from .common import hex_bytes
from .demo_pki import DEMO_ALICE, DEMO_BOB
from .dhargs import add_dh_arguments, allowed_groups, initiate_output
from .plugin_base import (
    SPEED_NOW,
    DemoInitiator,
    DemoResponder,
    InitiateOutput,
    ModePlugin,
    SpeedCase,
    add_compat_option,
    crypto_session_specs,
    required_response,
    responder_keywords,
    speed_response,
    uri_id,
)

__all__ = ["PLUGIN", "DhHmacPlugin"]

class DhHmacPlugin(ModePlugin):
    name = "dhhmac"
    help = "HMAC-authenticated Diffie-Hellman (RFC 4650)"
    initiate_options = frozenset({"mac"})  # the KEMAC conveys no encrypted data, only the MAC (RFC 4650 §4.2)

    def add_arguments(self, parser: argparse._ActionsContainer, command: str) -> None:
        parser.add_argument("--psk", type=hex_bytes, required=True, metavar="HEX", help="the pre-shared key s")
        parser.add_argument("--allow-null-mac", action="store_true",
                            help="accept/send MAC alg NULL (unauthenticated DH; RFC 3830 §4.2.4)")
        if command == "initiate":
            parser.add_argument("--id-i", metavar="URI", help="own identity (IDi payload)")
            parser.add_argument("--id-r", metavar="URI", help="the Responder's identity (IDr, RFC 4650 requires it)")
        elif command == "respond":
            parser.add_argument("--id-r", metavar="URI", help="own identity; I_MESSAGEs for another IDr are refused")
            parser.add_argument("--id-i", metavar="URI", help="the Initiator's identity, when its I_MESSAGE has none")
        add_dh_arguments(parser, command)
        if command == "respond":
            add_compat_option(parser, DHHMAC_RESPONDER_COMPAT, "mikey.modes.dhhmac")
        else:
            add_compat_option(parser, DH_COMPAT_OPTIONS, "mikey.modes.dhhmac")

    def initiate(self, args: argparse.Namespace, now: float) -> InitiateOutput:
        initiator = DhHmacInitiator(
            args.psk, mac_alg=int(args.mac), allow_null_mac=args.allow_null_mac,
            crypto_sessions=crypto_session_specs(args.ssrc),
            csb_id=args.csb_id, rand=args.rand, group=args.dh_group, dh_private=args.dh_private, prf=int(args.prf),
            id_i=uri_id(args.id_i), id_r=uri_id(args.id_r), compat=args.compat, allowed_groups=allowed_groups(args),
        )
        return initiate_output(initiator, initiator.create_message(now))

    def respond(self, args: argparse.Namespace, i_message: bytes, now: float) -> ResponderOutcome:
        responder = DhHmacResponder(
            args.psk, allow_null_mac=args.allow_null_mac, id_r=uri_id(args.id_r),
            initiator_id=uri_id(args.id_i), dh_private=args.dh_private, compat=args.compat,
            allowed_groups=allowed_groups(args), **responder_keywords(args),
        )
        return responder.receive(i_message, now)

    def complete(self, args: argparse.Namespace, i_message: bytes, r_message: bytes | None,
                 now: float) -> ExchangeResult:
        response = required_response(self.name, r_message)
        try:
            initiator = DhHmacInitiator.resume(i_message, args.dh_private, args.psk, compat=args.compat,
                                               allowed_groups=allowed_groups(args))
        except ValueError as e:
            raise UnspecifiedError(str(e)) from None
        return initiator.receive(response, now)

    # -- demo ---------------------------------------------------------------------------------

    def demo_credentials(self, workdir: Path) -> dict[str, Any]:
        return {"psk": os.urandom(16).hex()}

    def demo_initiator(self, creds: dict[str, Any], ssrc: int) -> DemoInitiator:
        return DhHmacInitiator(bytes.fromhex(creds["psk"]), crypto_sessions=[CryptoSessionSpec(ssrc=ssrc)],
                               id_i=uri_id(DEMO_ALICE), id_r=uri_id(DEMO_BOB))

    def demo_responder(self, creds: dict[str, Any], ssrc: int) -> DemoResponder:
        return DhHmacResponder(bytes.fromhex(creds["psk"]), own_ssrcs=[ssrc], id_r=uri_id(DEMO_BOB))

    def demo_description(self, creds: dict[str, Any]) -> str:
        return "DH-HMAC: OAKLEY 5 (1536-bit), KEMAC HMAC-SHA-1 with a 128-bit pre-shared key, PRF MIKEY-1"

    # -- speed ----------------------------------------------------------------------------------

    def speed_cases(self) -> list[SpeedCase]:
        now = SPEED_NOW
        psk = bytes(range(16))
        x_i = 0x5EED_1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0_1234_5678_9AB
        fixed: dict[str, Any] = {
            "dh_private": x_i, "csb_id": 0x01020304, "rand": bytes(range(16)), "mac_alg": MacAlg.HMAC_SHA_1_160,
            "crypto_sessions": [CryptoSessionSpec(ssrc=0x11223344)], "id_i": uri_id(DEMO_ALICE), "id_r": uri_id(DEMO_BOB),
        }
        i_message = DhHmacInitiator(psk, **fixed).create_message(now)
        r_message = speed_response(DhHmacResponder(psk).receive(i_message, now))

        def initiator() -> ExchangeResult:
            side = DhHmacInitiator(psk, **fixed)
            side.create_message(now)
            return side.receive(r_message, now)

        def responder() -> ResponderOutcome:
            return DhHmacResponder(psk).receive(i_message, now)

        return [SpeedCase("DH-HMAC initiator", initiator, "modexp1536", ("dh5-public", "dh5-shared")),
                SpeedCase("DH-HMAC responder", responder, "modexp1536", ("dh5-public", "dh5-shared"))]


PLUGIN = DhHmacPlugin()
