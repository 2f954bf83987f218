"""CLI plugin for MIKEY-RSA-R (RFC 4738): ``--mode rsa-r``.

The Initiator signs a request; the Responder chooses the TGK (``respond --tgk``,
``--encr``, ``--mac``) and returns it encrypted to the Initiator's certificate.
Credentials are those of :mod:`mikey.cli.certargs`.  ``respond --group-csb-id HEX`` answers in group mode (GenExt CSB_ID,
RFC 4738 §3.2); ``initiate --group`` asks for it.

``complete`` is stateless: with its own ``--key`` the Initiator decrypts the
R_MESSAGE's PKE itself, so it needs only the I_MESSAGE it sent, its
credentials and the trust anchors (``--ca`` or ``--peer-cert``).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..constants import ErrorNo
from ..modes.results import CryptoSessionSpec, ExchangeResult, ResponderOutcome
from ..modes.rsa_r import RSA_R_COMPAT, RsaRInitiator, RsaRResponder
from .certargs import add_certificate_arguments, add_signer_arguments, id_payload, load_own, peer_certs, trust
from .common import add_kemac_options, hex_bytes, hex_u32
from .demo_pki import PkiDemoPlugin, load_demo_pki, memory_pki
from .plugin_base import (
    SPEED_NOW,
    DemoInitiator,
    InitiateOutput,
    SpeedCase,
    add_compat_option,
    crypto_session_specs,
    pending_result,
    required_response,
    responder_keywords,
    speed_response,
)

__all__ = ["PLUGIN", "RsaRPlugin"]


class RsaRPlugin(PkiDemoPlugin):
    name = "rsa-r"
    help = "RSA in reverse: the Responder sends the TGK (RFC 4738)"
    demo_responder_class = RsaRResponder
    initiate_options = frozenset()  # the Responder chooses the TGK and the KEMAC algorithms (RFC 4738 §3.1)

    def add_arguments(self, parser: argparse._ActionsContainer, command: str) -> None:
        add_compat_option(parser, RSA_R_COMPAT, "mikey.modes.rsa_r")
        add_certificate_arguments(
            parser, required=True,
            peer_help=("the Responder's certificate, trusted directly when no --ca is given" if command != "respond"
                       else "the Initiator's certificate, when the I_MESSAGE carries no CERT"),
        )
        if command == "complete":
            parser.add_argument("--group", action="store_true", help="the I_MESSAGE asked for group mode")
            parser.add_argument("--oaep", action="store_true", help="the envelope key is RSAES-OAEP")
            return
        add_signer_arguments(parser)
        if command == "initiate":
            parser.add_argument("--id-i", metavar="ID", help="own identity (default: the certificate's SAN URI)")
            parser.add_argument("--id-r", metavar="ID",
                                help="the only Responder identity accepted (IDr, RFC 4738 §3.4)")
            parser.add_argument("--group", action="store_true",
                                help="group mode: no SP; the Responder sends CSB_ID, RAND and SP (RFC 4738 §3.2)")
            parser.add_argument("--no-rand", action="store_true",
                                help="send no RAND (the Responder then supplies it, RFC 4738 §3.4)")
        else:
            parser.add_argument("--id-r", metavar="ID", help="own identity (default: the certificate's SAN URI)")
            parser.add_argument("--tgk", type=hex_bytes, metavar="HEX", help="the TGK to send (default: random)")
            parser.add_argument("--rand", type=hex_bytes, metavar="HEX",
                                help="RAND when the Responder supplies it (default: random)")
            parser.add_argument("--env-key", type=hex_bytes, metavar="HEX", help="the envelope key (default: random)")
            add_kemac_options(parser)
            parser.add_argument("--group-csb-id", type=hex_u32, metavar="HEX",
                                help="group mode: the CSB ID sent in GenExt(CSB_ID) (RFC 4738 §3.6)")
            parser.add_argument("--cache", type=int, choices=[0, 1, 2], default=0,
                                help="PKE C: envelope key cache indicator (RFC 3830 Table 6.3)")
            parser.add_argument("--rfc3830-errors", action="store_true",
                                help="answer unparseable messages with Error no 12 instead of 13 (RFC 4738 §3.5)")

    def initiate(self, args: argparse.Namespace, now: float) -> InitiateOutput:
        own = load_own(args)
        peers = peer_certs(args)
        initiator = RsaRInitiator(
            own,
            validator=trust(args, peers),
            peer_certificate=peers[0] if peers else None,
            peer_chain=peers[1:],
            crypto_sessions=crypto_session_specs(args.ssrc),
            group=bool(args.group),
            csb_id=args.csb_id,
            rand=args.rand,
            send_rand=False if args.no_rand else None,
            prf=int(args.prf),
            id_i=id_payload(args.id_i),
            id_r=id_payload(args.id_r),
            include_certificate=not args.no_cert,
            certificate_url=args.cert_url,
            s_type=args.sign,
            sign_hash=args.sign_hash,
            pke_oaep=bool(args.oaep),
            compat=args.compat,
        )
        i_message = initiator.create_message(now)
        # The keys come with the R_MESSAGE; show the request's parameters meanwhile.
        return InitiateOutput(i_message, pending_result(initiator), {"awaiting": "R_MESSAGE (run complete)"})

    def respond(self, args: argparse.Namespace, i_message: bytes, now: float) -> ResponderOutcome:
        own = load_own(args)
        peers = peer_certs(args)
        responder = RsaRResponder(
            own,
            trust(args, peers),
            peer_certificate=peers[0] if peers else None,
            peer_chain=peers[1:],
            **responder_keywords(args),
            id_r=id_payload(args.id_r),
            include_certificate=not args.no_cert,
            certificate_url=args.cert_url,
            group_csb_id=args.group_csb_id,
            group_crypto_sessions=crypto_session_specs(args.ssrc) or [],
            tgk=args.tgk,
            rand=args.rand,
            envelope_key=args.env_key,
            encr_alg=int(args.encr),
            mac_alg=int(args.mac),
            s_type=args.sign,
            sign_hash=args.sign_hash,
            pke_oaep=bool(args.oaep),
            cache=args.cache,
            unparseable_error_no=ErrorNo.UNSPECIFIED if args.rfc3830_errors else ErrorNo.UNSUPPORTED_MESSAGE_TYPE,
            compat=args.compat,
        )
        return responder.receive(i_message, now)

    def complete(
        self, args: argparse.Namespace, i_message: bytes, r_message: bytes | None, now: float
    ) -> ExchangeResult:
        response = required_response(self.name, r_message)
        own = load_own(args)
        peers = peer_certs(args)
        initiator = RsaRInitiator.resume(
            i_message, own, validator=trust(args, peers), peer_certificate=peers[0] if peers else None,
            peer_chain=peers[1:], group=bool(args.group), pke_oaep=bool(args.oaep), compat=args.compat,
        )
        return initiator.receive(response, now)

    # -- demo ---------------------------------------------------------------------------------

    def demo_initiator(self, creds: dict[str, Any], ssrc: int) -> DemoInitiator:
        alice, _, validator = load_demo_pki(creds)
        return RsaRInitiator(alice, validator=validator, crypto_sessions=[CryptoSessionSpec(ssrc=ssrc)])

    def demo_description(self, creds: dict[str, Any]) -> str:
        return ("RSA-R: RSA-2048 certificates under a demo CA, Responder-chosen TGK, PKE RSAES-PKCS1-v1_5 to the "
                "Initiator, SIGN PKCS#1 v1.5 SHA-256 both ways, KEMAC AES-CM-128 + HMAC-SHA-1")

    # -- speed ----------------------------------------------------------------------------------

    def speed_cases(self) -> list[SpeedCase]:
        now = SPEED_NOW
        alice, bob, validator = memory_pki(now).parties()
        specs = [CryptoSessionSpec(ssrc=0x11223344)]
        fixed: dict[str, Any] = {"crypto_sessions": specs, "csb_id": 0x0BADCAFE, "rand": bytes(range(16))}

        # PKCS#1 v1.5 signing is deterministic: the same inputs rebuild the same I_MESSAGE,
        # so one R_MESSAGE made in advance answers every timed Initiator.
        i_message = RsaRInitiator(alice, validator=validator, **fixed).create_message(now)
        r_message = speed_response(RsaRResponder(bob, validator, own_ssrcs=[0x55667788]).receive(i_message, now))

        def initiator() -> ExchangeResult:
            # Both halves of the Initiator's work: sign the request, then verify and open the answer.
            ini = RsaRInitiator(alice, validator=validator, **fixed)
            ini.create_message(now)
            return ini.receive(r_message, now)

        def responder() -> ResponderOutcome:
            return RsaRResponder(bob, validator, own_ssrcs=[0x55667788]).receive(i_message, now)

        return [SpeedCase("RSA-R initiator", initiator, "rsa2048-sign",
                          ("rsa2048-sign", "rsa2048-verify", "rsa2048-decrypt")),
                SpeedCase("RSA-R responder", responder, "rsa2048-sign",
                          ("rsa2048-verify", "rsa2048-encrypt", "rsa2048-sign"))]


PLUGIN = RsaRPlugin()
