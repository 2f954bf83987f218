"""CLI plugin for the public-key transport mode (RFC 3830 §3.2): ``--mode pk``.

Credentials are those of :mod:`mikey.cli.certargs`; ``initiate`` needs the
Responder's certificate (``--peer-cert``), to which it encrypts the envelope key.

``complete`` is stateless.  The Initiator cannot decrypt its own PKE, so
``initiate --show-keys`` prints the envelope key it chose (JSON ``"envelope_key"``) and
``complete --env-key HEX`` uses it to reopen the KEMAC (recovering the TGK) and
to check the verification message (RFC 3830 §3.2, §5.2).  ``initiate --env-key``
fixes the envelope key in advance.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..constants import CacheType, HashFunc
from ..modes.pk import PK_COMPAT, VERIFICATION_COVERAGE, PkInitiator, PkResponder
from ..modes.results import CryptoSessionSpec, ExchangeResult, ResponderOutcome
from .certargs import add_certificate_arguments, add_signer_arguments, id_payload, load_own, peer_certs, trust
from .common import UsageError, hex_bytes
from .demo_pki import PkiDemoPlugin, load_demo_pki, memory_pki
from .plugin_base import (
    SPEED_NOW,
    DemoInitiator,
    InitiateOutput,
    SpeedCase,
    add_compat_option,
    crypto_session_specs,
    receive_if_verified,
    responder_keywords,
)

__all__ = ["PLUGIN", "PkPlugin", "CHASH_NAMES"]

#: ``--chash`` names of the CHASH hash functions (RFC 3830 Table 6.8, RFC 6043 §6.7).
CHASH_NAMES = {"sha1": HashFunc.SHA_1, "md5": HashFunc.MD5, "sha256": HashFunc.SHA_256}


class PkPlugin(PkiDemoPlugin):
    name = "pk"
    help = "public-key transport (RFC 3830 §3.2)"
    demo_responder_class = PkResponder

    def add_arguments(self, parser: argparse._ActionsContainer, command: str) -> None:
        parser.add_argument("--verification-coverage", choices=VERIFICATION_COVERAGE, default="rfc",
                            help="what the verification MAC covers: RFC 3830 §5.2, or the timestamp-only variant")
        add_compat_option(parser, PK_COMPAT, "mikey.modes.pk")
        if command == "complete":
            parser.add_argument("--env-key", type=hex_bytes, metavar="HEX", required=True,
                                help="the envelope key 'initiate' chose (envelope_key, printed with --show-keys)")
            return
        add_certificate_arguments(
            parser, required=True,
            peer_help=("the Responder's certificate (required; pinned when no --ca is given)" if command == "initiate"
                       else "the Initiator's certificate, when the I_MESSAGE carries no CERT"),
        )
        if command == "initiate":
            add_signer_arguments(parser)
            parser.add_argument("--id-i", metavar="ID", help="own identity (default: the certificate's SAN URI)")
            parser.add_argument("--id-r", metavar="ID", help="the Responder's identity (ID payload; checked "
                                "against its certificate)")
            parser.add_argument("--env-key", type=hex_bytes, metavar="HEX", help="the envelope key (default: random)")
            parser.add_argument("--cache", type=int, choices=[0, 1, 2], default=0,
                                help="PKE C: 0 no cache, 1 cache, 2 cache for this CSB (RFC 3830 Table 6.3)")
            parser.add_argument("--chash", choices=list(CHASH_NAMES),
                                help="add CHASH naming the Responder's certificate (RFC 3830 §6.8)")
        else:
            parser.add_argument("--id-r", metavar="ID", help="own identity, sent in the verification message")
            parser.add_argument("--oaep", action="store_true", help="the envelope key is RSAES-OAEP, not PKCS#1 v1.5")

    def initiate(self, args: argparse.Namespace, now: float) -> InitiateOutput:
        own = load_own(args)
        peers = peer_certs(args)
        if not peers:
            raise UsageError("--mode pk initiate needs --peer-cert (the Responder's certificate)")
        initiator = PkInitiator(
            own,
            peers[0],
            peer_chain=peers[1:],
            validator=trust(args, peers),
            crypto_sessions=crypto_session_specs(args.ssrc),
            csb_id=args.csb_id,
            tgk=args.tgk,
            rand=args.rand,
            envelope_key=args.env_key,
            encr_alg=int(args.encr),
            mac_alg=int(args.mac),
            prf=int(args.prf),
            v=bool(args.verify),
            id_i=id_payload(args.id_i),
            id_r=id_payload(args.id_r),
            include_certificate=not args.no_cert,
            certificate_url=args.cert_url,
            chash=CHASH_NAMES[args.chash] if args.chash else None,
            s_type=args.sign,
            sign_hash=args.sign_hash,
            pke_oaep=bool(args.oaep),
            cache=args.cache,
            verification_coverage=args.verification_coverage,
            compat=args.compat,
        )
        i_message = initiator.create_message(now)
        return InitiateOutput(i_message, initiator.result, secrets={"envelope_key": initiator.envelope_key.hex()})

    def respond(self, args: argparse.Namespace, i_message: bytes, now: float) -> ResponderOutcome:
        own = load_own(args)
        peers = peer_certs(args)
        responder = PkResponder(
            own,
            trust(args, peers),
            peer_certificate=peers[0] if peers else None,
            peer_chain=peers[1:],
            **responder_keywords(args),
            id_r=id_payload(args.id_r),
            pke_oaep=bool(args.oaep),
            verification_coverage=args.verification_coverage,
            compat=args.compat,
        )
        return responder.receive(i_message, now)

    def complete(
        self, args: argparse.Namespace, i_message: bytes, r_message: bytes | None, now: float
    ) -> ExchangeResult:
        initiator = PkInitiator.resume(
            i_message, args.env_key, verification_coverage=args.verification_coverage, compat=args.compat
        )
        return receive_if_verified(initiator, r_message, now)

    # -- demo ---------------------------------------------------------------------------------

    def demo_initiator(self, creds: dict[str, Any], ssrc: int) -> DemoInitiator:
        alice, bob, validator = load_demo_pki(creds)
        return PkInitiator(
            alice, bob.certificate, validator=validator, v=True,
            crypto_sessions=[CryptoSessionSpec(ssrc=ssrc), CryptoSessionSpec(ssrc=0)],
            id_r=id_payload(creds["bob"]["id"]),
        )

    def demo_description(self, creds: dict[str, Any]) -> str:
        return ("PK: RSA-2048 certificates under a demo CA, PKE RSAES-PKCS1-v1_5, SIGN PKCS#1 v1.5 SHA-256, "
                "KEMAC AES-CM-128 + HMAC-SHA-1, PRF MIKEY-1")

    # -- speed ----------------------------------------------------------------------------------

    def speed_cases(self) -> list[SpeedCase]:
        now = SPEED_NOW
        alice, bob, validator = memory_pki(now).parties()
        specs = [CryptoSessionSpec(ssrc=0x11223344), CryptoSessionSpec(ssrc=0x55667788)]

        def initiator() -> bytes:
            return PkInitiator(alice, bob.certificate, validator=validator, crypto_sessions=specs,
                               cache=CacheType.NO_CACHE).create_message(now)

        i_message = initiator()

        def responder() -> ResponderOutcome:
            # A fresh Responder has a fresh replay cache, so the same message is accepted every time.
            return PkResponder(bob, validator).receive(i_message, now)

        return [SpeedCase("PK initiator", initiator, "rsa2048-sign", ("rsa2048-encrypt", "rsa2048-sign")),
                SpeedCase("PK responder", responder, "rsa2048-sign", ("rsa2048-decrypt", "rsa2048-verify"))]


PLUGIN = PkPlugin()
