"""CLI plugin for the pre-shared key mode (RFC 3830 §3.1, §5): ``--mode psk --psk HEX``.

``complete`` is stateless: it rebuilds the Initiator from its own I_MESSAGE and
the PSK (decode, re-derive the transport keys (§4.1.4), check the KEMAC MAC,
decrypt the Key data to recover the TGK) and then checks the R_MESSAGE exactly
as :class:`~mikey.modes.psk.PskInitiator` does (§5.2).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..constants import EncrAlg, MacAlg
from ..modes.psk import COMPAT_OPTIONS, VERIFICATION_COVERAGE, PskInitiator, PskResponder
from ..modes.results import CryptoSessionSpec, ExchangeResult, ResponderOutcome
from .common import hex_bytes
from .plugin_base import (
    SPEED_NOW,
    DemoInitiator,
    DemoResponder,
    InitiateOutput,
    ModePlugin,
    SpeedCase,
    add_compat_option,
    crypto_session_specs,
    receive_if_verified,
    responder_keywords,
    uri_id,
)

__all__ = ["PLUGIN", "PskPlugin"]


class PskPlugin(ModePlugin):
    name = "psk"
    help = "pre-shared key (RFC 3830 §3.1)"

    def add_arguments(self, parser: argparse._ActionsContainer, command: str) -> None:
        parser.add_argument("--psk", type=hex_bytes, required=True, metavar="HEX", help="the pre-shared key")
        if command == "initiate":
            parser.add_argument("--id-i", metavar="URI", help="send the Initiator's identity (ID payload)")
            parser.add_argument("--id-r", metavar="URI", help="send the Responder's identity (ID payload)")
        elif command == "respond":
            parser.add_argument("--id-r", metavar="URI", help="own identity, sent in the R_MESSAGE")
        parser.add_argument(
            "--verification-coverage", choices=VERIFICATION_COVERAGE, default="rfc",
            help="what the verification MAC covers: RFC 3830 §5.2, or the deployed timestamp-only variant",
        )
        parser.add_argument(
            "--allow-null-security", action="store_true",
            help="allow NULL KEMAC encryption or MAC (TGK in the clear / unauthenticated): only over a carrier "
            "that itself guarantees security (RFC 3830 §4.2.3, §4.2.4); refused by default",
        )
        if command != "respond":  # the variants are the Initiator's to accept
            add_compat_option(parser, COMPAT_OPTIONS, "mikey.modes.keytransport")

    def initiate(self, args: argparse.Namespace, now: float) -> InitiateOutput:
        initiator = PskInitiator(
            args.psk,
            crypto_sessions=crypto_session_specs(args.ssrc),
            csb_id=args.csb_id,
            tgk=args.tgk,
            rand=args.rand,
            encr_alg=int(args.encr),
            mac_alg=int(args.mac),
            prf=int(args.prf),
            v=bool(args.verify),
            id_i=uri_id(args.id_i),
            id_r=uri_id(args.id_r),
            verification_coverage=args.verification_coverage,
            allow_null_security=args.allow_null_security,
            compat=args.compat,
        )
        i_message = initiator.create_message(now)
        return InitiateOutput(i_message, initiator.result)

    def respond(self, args: argparse.Namespace, i_message: bytes, now: float) -> ResponderOutcome:
        responder = PskResponder(
            args.psk,
            **responder_keywords(args),
            id_r=uri_id(args.id_r),
            verification_coverage=args.verification_coverage,
            allow_null_security=args.allow_null_security,
        )
        return responder.receive(i_message, now)

    def complete(
        self, args: argparse.Namespace, i_message: bytes, r_message: bytes | None, now: float
    ) -> ExchangeResult:
        initiator = PskInitiator.from_i_message(
            args.psk, i_message, verification_coverage=args.verification_coverage,
            allow_null_security=args.allow_null_security, compat=args.compat,
        )
        return receive_if_verified(initiator, r_message, now)

    # -- demo ---------------------------------------------------------------------------------

    def demo_credentials(self, workdir: Path) -> dict[str, Any]:
        return {"psk": os.urandom(16).hex()}

    def demo_initiator(self, creds: dict[str, Any], ssrc: int) -> DemoInitiator:
        # One crypto session per direction: the Initiator's stream, and one whose SSRC the Responder fills in.
        specs = [CryptoSessionSpec(ssrc=ssrc), CryptoSessionSpec(ssrc=0)]
        return PskInitiator(bytes.fromhex(creds["psk"]), crypto_sessions=specs, v=True)

    def demo_responder(self, creds: dict[str, Any], ssrc: int) -> DemoResponder:
        return PskResponder(bytes.fromhex(creds["psk"]), own_ssrcs=[ssrc])

    def demo_description(self, creds: dict[str, Any]) -> str:
        return "PSK: 128-bit pre-shared key, KEMAC AES-CM-128 + HMAC-SHA-1, PRF MIKEY-1"

    # -- speed ----------------------------------------------------------------------------------

    def speed_cases(self) -> list[SpeedCase]:
        psk = bytes(range(16))
        specs = [CryptoSessionSpec(ssrc=0x11223344), CryptoSessionSpec(ssrc=0x55667788)]
        now = SPEED_NOW

        def initiator() -> bytes:
            return PskInitiator(
                psk, crypto_sessions=specs, encr_alg=EncrAlg.AES_CM_128, mac_alg=MacAlg.HMAC_SHA_1_160
            ).create_message(now)

        i_message = initiator()

        def responder() -> ResponderOutcome:
            # A fresh Responder has a fresh replay cache, so the same message is accepted every time.
            return PskResponder(psk).receive(i_message, now)

        return [SpeedCase("PSK initiator", initiator), SpeedCase("PSK responder", responder)]


PLUGIN = PskPlugin()
