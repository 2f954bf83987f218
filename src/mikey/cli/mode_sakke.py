"""CLI plugin for MIKEY-SAKKE (RFC 6509, 3GPP TS 33.180 profile): ``--mode sakke --keys FILE``.

``initiate --to URI [--key-type gmk|pck|csk ...] [--ssv HEX] [--key-id HEX]`` builds the
signed I_MESSAGE; ``respond --imsg MSG [--from URI] [--cs-id N ...]`` verifies and
decapsulates it.  There is no R_MESSAGE, so ``complete`` only re-reads the
Initiator's own message.  ``--keys`` is a user key file written by ``mikey kms
issue`` (the JSON shape of :meth:`mikey.keystore.SakkeKeystore.from_dict`).
The default PRF here is PRF-HMAC-SHA-256, as 3GPP deployments use.
``mikey demo --mode sakke`` fetches both users' keys from a ``mikey kms serve`` process over
HTTP (:mod:`mikey.cli.demo_kms`, issue 9 §5).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._files import write_private_atomic
from ..constants import PRF, CSIdMapType
from ..crypto import eccsi, sakke
from ..errors import KeyMaterialError
from ..keystore import SakkeKeystore
from ..modes.results import CryptoSessionSpec, ExchangeResult, ResponderOutcome
from ..modes.sakke import KEY_TYPES, SIGNATURE_COVERAGE, SakkeInitiator, SakkeResponder, gcm_srtp_policy
from .common import UsageError, hex_bytes, hex_int, load_cached
from .plugin_base import (
    SPEED_NOW,
    DemoInitiator,
    DemoResponder,
    InitiateOutput,
    ModePlugin,
    SpeedCase,
    add_compat_option,
    responder_keywords,
)

if TYPE_CHECKING:
    from .demo_kms import FetchedKeys

__all__ = ["PLUGIN", "SakkePlugin"]

#: ``--compat`` variants: the signature coverages other than RFC 3830 §5.2's.
_COMPAT = frozenset(SIGNATURE_COVERAGE) - {"rfc"}
_MAPS = {"generic": CSIdMapType.GENERIC_ID, "srtp": CSIdMapType.SRTP_ID, "empty": CSIdMapType.EMPTY}


def _load_keys(path: str) -> SakkeKeystore:
    try:
        return load_cached(path, SakkeKeystore.load_json)
    except KeyMaterialError as exc:
        raise UsageError(f"--keys {path}: {exc.message}") from None


class SakkePlugin(ModePlugin):
    name = "sakke"
    help = "MIKEY-SAKKE (RFC 6509): identity-based, one signed message, keys from a KMS"
    initiate_options = frozenset({"tgk"})  # --tgk: the SSV, like --ssv

    def add_arguments(self, parser: argparse._ActionsContainer, command: str) -> None:
        if command == "complete":
            return  # no R_MESSAGE to check: complete() says so
        parser.add_argument("--keys", required=True, metavar="FILE",
                            help="own MIKEY-SAKKE key file (JSON from 'mikey kms issue')")
        # initiate: sign that way; respond: accept it besides the RFC coverage.
        add_compat_option(parser, _COMPAT, "mikey.modes.sakke")
        if command == "initiate":
            parser.add_argument("--to", metavar="URI", required=True,
                                help="the Responder's URI (its identifier is derived from it)")
            parser.set_defaults(prf=PRF.PRF_HMAC_SHA_256)
            parser.add_argument("--key-type", choices=sorted(KEY_TYPES), help="3GPP key purpose (TS 33.180)")
            parser.add_argument("--ssv", type=hex_bytes, metavar="HEX", help="the SSV / key to send (default random)")
            parser.add_argument("--key-id", type=hex_int, metavar="HEX", help="the key ID (default random, tagged)")
            parser.add_argument("--cs-map", choices=sorted(_MAPS), help="CS ID map type (default: by key type)")
            parser.add_argument("--cs-id", type=int, action="append", metavar="N",
                                help="crypto session IDs (GENERIC-ID entries, or named ones with an Empty map)")
            parser.add_argument("--sakke-to-self", action="store_true",
                                help="add General Extension 6 (the SSV for the Initiator's own UID)")
            parser.add_argument("--no-key-parameters", action="store_true",
                                help="leave out the 3GPP key-parameters extension (General Extension 7)")
        if command == "respond":
            parser.add_argument("--from", dest="from_uri", metavar="URI",
                                help="the expected Initiator's URI (default: trust the identifier in the message)")
            parser.add_argument("--cs-id", type=int, action="append", metavar="N",
                                help="derive keys for this crypto session when the map lists none (repeatable)")
            parser.add_argument("--accept-to-self", action="store_true",
                                help="take the key from a SAKKE-to-self extension when addressed to the sender")

    def initiate(self, args: argparse.Namespace, now: float) -> InitiateOutput:
        keys = _load_keys(args.keys)
        ssrcs: list[int] = list(args.ssrc or [])
        cs_ids: list[int] = list(args.cs_id or [])
        specs = [
            CryptoSessionSpec(ssrc=s, cs_id=cs_ids[i] if i < len(cs_ids) else None) for i, s in enumerate(ssrcs)
        ]
        map_type = _MAPS[args.cs_map] if args.cs_map else None
        ssv = args.ssv if args.ssv is not None else args.tgk
        try:
            initiator = SakkeInitiator(
                keys,
                args.to,
                key_type=args.key_type,
                ssv=ssv,
                key_id=args.key_id,
                csb_id=args.csb_id,
                rand=args.rand,
                crypto_sessions=specs,
                cs_id_map_type=map_type,
                cs_ids=cs_ids if not specs else (),
                prf=int(args.prf),
                key_parameters=not args.no_key_parameters,
                sakke_to_self=args.sakke_to_self,
                signature_coverage="exclude-sign-header" if "exclude-sign-header" in args.compat else "rfc",
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        i_message = initiator.create_message(now)
        return InitiateOutput(i_message, initiator.result, dict(initiator.result.extras))

    def respond(self, args: argparse.Namespace, i_message: bytes, now: float) -> ResponderOutcome:
        responder = SakkeResponder(
            _load_keys(args.keys),
            initiator_uri=args.from_uri,
            **responder_keywords(args),
            cs_ids=list(args.cs_id or []),
            allow_signature_without_header="exclude-sign-header" in args.compat,
            accept_to_self=args.accept_to_self,
        )
        return responder.receive(i_message, now)

    def complete(
        self, args: argparse.Namespace, i_message: bytes, r_message: bytes | None, now: float
    ) -> ExchangeResult:
        """MIKEY-SAKKE has no response (RFC 6509 §2.1): nothing to complete."""
        raise UsageError(
            "MIKEY-SAKKE has no R_MESSAGE (RFC 6509 §2.1): the Initiator's keys are printed by 'initiate'"
        )

    # -- demo ---------------------------------------------------------------------------------

    def demo_credentials(self, workdir: Path) -> dict[str, Any]:
        from ..kms import generate_community, issue_user_keys, user_key_document

        community = generate_community("kms.demo.example")
        now = time.time()
        out: dict[str, Any] = {}
        for name in ("alice", "bob"):
            uri = f"sip:{name}@demo.example"
            key_sets = [issue_user_keys(community, uri, now=now)]
            key_sets.append(issue_user_keys(community, uri, period_no=(key_sets[0].period_no or 0) + 1))
            path = workdir / f"{name}.sakke.json"
            write_private_atomic(path, json.dumps(user_key_document(community, *key_sets), indent=2).encode())
            out[name] = {"keys": str(path), "uri": uri}
        return out

    def demo_kms_users(self) -> tuple[str, str]:
        """The demo's Initiator and Responder, registered at the KMS ``mikey demo`` starts."""
        return "sip:alice@demo.example", "sip:bob@demo.example"

    def demo_credentials_from_kms(self, workdir: Path, fetched: Sequence[FetchedKeys]) -> dict[str, Any]:
        """Key files (0600) of the Initiator's and Responder's keystores fetched from the KMS over HTTP."""
        if len(fetched) != 2:
            raise ValueError("the demo needs the Initiator's and the Responder's keys")
        out: dict[str, Any] = {"kms_url": fetched[0].kms_url}
        for name, keys in zip(("alice", "bob"), fetched, strict=True):
            path = workdir / f"{name}.sakke.json"
            write_private_atomic(path, json.dumps(keys.keystore.to_dict(), indent=2).encode())
            out[name] = {"keys": str(path), "uri": keys.keystore.uri, "key_periods": keys.period_numbers}
        return out

    def demo_initiator(self, creds: dict[str, Any], ssrc: int) -> DemoInitiator:
        keys = load_cached(creds["alice"]["keys"], SakkeKeystore.load_json)
        specs = [CryptoSessionSpec(ssrc=ssrc, cs_id=1), CryptoSessionSpec(ssrc=0, cs_id=2)]
        return SakkeInitiator(keys, creds["bob"]["uri"], key_type="pck", crypto_sessions=specs,
                              policies=[gcm_srtp_policy(0)], cs_id_map_type=CSIdMapType.GENERIC_ID)

    def demo_responder(self, creds: dict[str, Any], ssrc: int) -> DemoResponder:
        keys = load_cached(creds["bob"]["keys"], SakkeKeystore.load_json)
        return SakkeResponder(keys, initiator_uri=creds["alice"]["uri"], own_ssrcs=[ssrc])

    def demo_description(self, creds: dict[str, Any]) -> str:
        text = ("MIKEY-SAKKE: SAKKE Parameter Set 1 (1024-bit p) + ECCSI P-256, 3GPP UIDs, PCK, "
                "PRF-HMAC-SHA-256, SRTP AES-128-GCM")
        if creds.get("kms_url"):
            text += f"; keys from the KMS at {creds['kms_url']}"
        return text

    # -- speed ----------------------------------------------------------------------------------

    def speed_cases(self) -> list[SpeedCase]:
        from ..kms import generate_community, issue_user_keys

        now = SPEED_NOW
        community = generate_community("kms.speed.example")
        alice_keys = issue_user_keys(community, "sip:alice@speed.example", now=now)
        bob_keys = issue_user_keys(community, "sip:bob@speed.example", now=now)
        alice = SakkeKeystore(community.public, alice_keys.uri, [alice_keys])
        bob = SakkeKeystore(community.public, bob_keys.uri, [bob_keys])
        params = sakke.PARAMETER_SET_1
        params.warm_up()
        z, kpak = community.public.z, community.public.kpak
        specs = [CryptoSessionSpec(ssrc=0x11223344, cs_id=1)]

        def initiator() -> bytes:
            return SakkeInitiator(alice, bob.uri, key_type="pck", crypto_sessions=specs).create_message(now)

        i_message = initiator()

        def responder() -> ResponderOutcome:
            # A fresh Responder has a fresh replay cache, so the same message is accepted every time.
            return SakkeResponder(bob, initiator_uri=alice.uri).receive(i_message, now)

        ssv = bytes(range(16))
        bob_id = bob_keys.identifier
        _, sed = sakke.encapsulate(ssv, bob_id, z, params)

        def encapsulate_cold() -> object:
            # A recipient never seen before: no per-recipient table (the KMS's Z table stays).
            params.clear_peer_caches()
            return sakke.encapsulate(ssv, bob_id, z, params)

        def encapsulate_warm() -> object:
            return sakke.encapsulate(ssv, bob_id, z, params)

        def decapsulate_cold() -> bytes:
            return sakke.SakkeReceiver(bob_keys.rsk, bob_id, z, params).decapsulate(sed)

        warm_receiver = sakke.SakkeReceiver(bob_keys.rsk, bob_id, z, params)

        def decapsulate_warm() -> bytes:
            return warm_receiver.decapsulate(sed)

        signer = eccsi.EccsiSigner(alice_keys.ssk, alice_keys.pvt, alice_keys.identifier, kpak)
        message = i_message[:-129]
        signature = signer.sign(message)

        def sign() -> bytes:
            return signer.sign(message)

        def verify_cold() -> None:
            eccsi.clear_caches()  # a signer never seen before
            eccsi.verify(message, signature, alice_keys.identifier, kpak)

        def verify_warm() -> None:
            eccsi.verify(message, signature, alice_keys.identifier, kpak)

        base = "modexp1024"
        return [
            SpeedCase("MIKEY-SAKKE initiator", initiator, base),
            SpeedCase("MIKEY-SAKKE responder", responder, base),
            SpeedCase("SAKKE encapsulate (cold)", encapsulate_cold, base),
            SpeedCase("SAKKE encapsulate (warm)", encapsulate_warm, base),
            SpeedCase("SAKKE decapsulate (cold)", decapsulate_cold, base),
            SpeedCase("SAKKE decapsulate (warm)", decapsulate_warm, base),
            SpeedCase("ECCSI sign", sign, base),
            SpeedCase("ECCSI verify (cold)", verify_cold, base),
            SpeedCase("ECCSI verify (warm)", verify_warm, base),
        ]


PLUGIN = SakkePlugin()

