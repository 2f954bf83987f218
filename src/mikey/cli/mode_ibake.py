"""CLI plugin for MIKEY-IBAKE (RFC 6267 §4.2.2): ``--mode ibake --keys FILE --state FILE``.

IBAKE takes four messages, so each side runs twice and keeps its secrets between the runs in a
state file (``--state``, mode 0600: the Initiator's x and SK, the Responder's y; never printed
without ``--show-keys``)::

  A: mikey initiate --mode ibake --keys alice.json --to sip:bob@x --state a.st     -> I_MESSAGE_1
  B: mikey respond  --mode ibake --keys bob.json --imsg I1 --state b.st            -> R_MESSAGE_1
  A: mikey initiate --mode ibake --keys alice.json --rmsg R1 --state a.st          -> I_MESSAGE_2 (keys, unconfirmed)
  B: mikey respond  --mode ibake --keys bob.json --imsg I2 --state b.st            -> R_MESSAGE_2 and keys
  A: mikey complete --mode ibake --keys alice.json --imsg I1 --rmsg R2 --state a.st -> keys, confirmed by V

``initiate`` prints the Initiator's messages, ``respond`` the Responder's (it tells I_MESSAGE_1 from
I_MESSAGE_2 by the data type), ``complete`` checks R_MESSAGE_2's V (RFC 6267 §5.4).  Both ends print
the same TGK and SRTP keys.  Forked answers (§7.3): ``initiate --rmsg`` once per R_MESSAGE_1, each
answer keeps its own keys; who may answer besides ``--to`` is ``--fork/--retarget/--mailbox URI``.
The Responder's state loses y once R_MESSAGE_2 is sent (a second I_MESSAGE_2 is refused), the
Initiator's records each confirmed answer (its R_MESSAGE_2 is not taken twice).  A rejected message
exits 1 with one line, also in ``initiate --rmsg`` (the core's ``initiate`` exits 2 on errors building
a message: a received R_MESSAGE_1 is reported here as a rejection).

Deferred delivery (§3.3): ``initiate --mailbox URI`` lets a mailbox answer (``respond --mailbox``, no
media keys; its JSON result and finished state keep the messages); the called user later runs
``respond --deferred --imsg I_MESSAGE_2 [--stored-imsg I_MESSAGE_1]`` and gets the Initiator's keys.

``--keys`` is a user key file from ``mikey kms ibake-issue`` or ``mikey kms ibake-fetch`` (:mod:`mikey.cli.kms_ibake`); the
profile (BF ciphertexts, K_PUB = H1(ID || date), curves) is :mod:`mikey.modes.ibake`'s.
``mikey demo --mode ibake`` runs the four messages in two SDP offer/answer round trips (the second a new
offer of the session, as a re-INVITE or UPDATE), both parties' K_PRs asked from a ``mikey kms serve``
process the demo starts (REQUEST_KEY_PSK over HTTP).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import time
from pathlib import Path
from typing import Any

from ..constants import PRF, DataType, ECCCurve, IDRole
from ..errors import MikeyError, ReplayError, UnsupportedDataTypeError, UnsupportedIDError
from ..modes.base import ResponderKeywords
from ..modes.ibake import (
    AnswerPolicy,
    IbakeCredentials,
    IbakeInitiator,
    IbakeResponder,
    answer_policy,
    open_deferred,
)
from ..modes.results import CryptoSessionSpec, ExchangeResult, ResponderOutcome
from ..replay import ReplayStore
from ..wire import CommonHeader, IdrPayload, Message, SecurityPolicyPayload
from .common import EXIT_REJECTED, UsageError, load_cached, read_message, rejection
from .ibake_files import STATE_FORMAT, UserKeys, load_state, load_user_keys, state_hex, write_private
from .plugin_base import (
    SPEED_NOW,
    DemoInitiator,
    DemoResponder,
    InitiateOutput,
    ModePlugin,
    SpeedCase,
    crypto_session_specs,
    responder_keywords,
)

__all__ = ["PLUGIN", "IbakePlugin"]

#: ``--curve`` names (RFC 6267 Table 5, the curves ``cryptography`` provides).
CURVES: dict[str, ECCCurve] = {
    "p192": ECCCurve.P_192, "p224": ECCCurve.P_224, "p256": ECCCurve.P_256, "p384": ECCCurve.P_384,
    "p521": ECCCurve.P_521,
}


def _pending(*, csb_id: int, rand: bytes, prf: int, header: CommonHeader | None,
             policies: tuple[SecurityPolicyPayload, ...], id_i: bytes | None, id_r: bytes | None,
             extras: dict[str, Any]) -> ExchangeResult:
    """A side's view before it knows the session key: no TGK, no crypto session keys yet."""
    if header is None:  # pragma: no cover - set once a message was built or taken
        raise UsageError("no IBAKE message was processed")
    return ExchangeResult(mode="ibake", csb_id=csb_id, tgk=b"", rand=rand, prf=prf, crypto_sessions=(),
                          authenticated=False, header=header, policies=policies, initiator_id=id_i,
                          responder_id=id_r, extras=extras)


def _names(values: list[str] | None) -> list[str]:
    return list(values or [])


def _policy(state: dict[str, Any]) -> AnswerPolicy:
    answers = state.get("answers") or {}
    if not isinstance(answers, dict):
        raise UsageError("--state: 'answers' is not an object")

    def names(key: str) -> frozenset[bytes]:
        values = answers.get(key) or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise UsageError(f"--state: bad {key!r} list")
        return frozenset(v.encode("utf-8") for v in values)

    return answer_policy(forks=names("forks"), retargets=names("retargets"), mailboxes=names("mailboxes"))


def _state_int(state: dict[str, Any], key: str, path: str) -> int:
    value = state.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise UsageError(f"--state {path}: {key!r} is not a number")
    return value


def _initiator(creds: IbakeCredentials, state: dict[str, Any], path: str) -> IbakeInitiator:
    """The Initiator of the state file, with every answer taken so far replayed at its own time."""
    initiator = IbakeInitiator.from_i_message(
        creds, state_hex(state, "i_message_1", path), ec_private=int.from_bytes(state_hex(state, "x", path), "big"),
        sk=state_hex(state, "sk", path), answers=_policy(state), curve=_state_int(state, "curve", path))
    legs = state.get("legs")
    if not isinstance(legs, list):
        raise UsageError(f"--state {path}: 'legs' is not a list")
    for leg in legs:
        if not isinstance(leg, dict) or not isinstance(leg.get("now"), int | float):
            raise UsageError(f"--state {path}: a bad answer entry")
        initiator.receive(state_hex(leg, "r_message_1", path), float(leg["now"]))
    return initiator


def _reject(exc: MikeyError, args: argparse.Namespace) -> SystemExit:
    """A received message refused in ``initiate``: one line (or JSON), exit 1 like ``respond``/``complete``."""
    rejection(exc, as_json=bool(getattr(args, "json", False)))
    return SystemExit(EXIT_REJECTED)


def _fresh_state(path: str, role: str) -> None:
    """A new exchange may replace a state file of the same role, never the other side's."""
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read(1 << 20))
    except (OSError, ValueError):
        return
    if isinstance(doc, dict) and doc.get("format") == STATE_FORMAT and doc.get("role") not in (role, None):
        raise UsageError(f"--state {path} holds the {doc.get('role')}'s state; use another file for the {role}")


def _initiator_id(msg: Message) -> bytes | None:
    for p in msg.find_all(IdrPayload):
        if p.id_role == IDRole.INITIATOR:
            return p.data
    return None


def _require_initiator(msg: Message, expected: str | None) -> None:
    """``respond --from URI``: an I_MESSAGE_1 naming another Initiator is refused (Error no 7)."""
    if expected is not None and _initiator_id(msg) != expected.encode("utf-8"):
        raise UnsupportedIDError(f"I_MESSAGE_1 is not from {expected}")


def _args_initiator(args: argparse.Namespace, keys: UserKeys,
                    crypto_sessions: list[CryptoSessionSpec] | None) -> IbakeInitiator:
    """The ``initiate`` options (--to, --fork/--retarget/--mailbox, --curve, --esk ...) as an Initiator."""
    policy = answer_policy(forks={f.encode() for f in _names(args.fork)},
                           retargets={r.encode() for r in _names(args.retarget)},
                           mailboxes={m.encode() for m in _names(args.mailbox)})
    return IbakeInitiator(
        keys.credentials, keys.uri.encode("utf-8"), args.to.encode("utf-8"), answers=policy,
        curve=CURVES[args.curve], prf=int(args.prf), crypto_sessions=crypto_sessions, csb_id=args.csb_id,
        rand=args.rand, esk=args.esk)


class IbakePlugin(ModePlugin):
    name = "ibake"
    help = "MIKEY-IBAKE (RFC 6267): identity-based DH, four messages, keys from a KMS, PFS"
    initiate_options = frozenset()

    def add_arguments(self, parser: argparse._ActionsContainer, command: str) -> None:
        parser.add_argument("--keys", required=True, metavar="FILE",
                            help="own MIKEY-IBAKE key file (K_PRs and KMS parameters, from 'mikey kms ibake-issue' or 'ibake-fetch')")
        parser.add_argument("--state", required=command != "respond", metavar="FILE",
                            help="this side's state between its runs (x/SK or y: secrets, mode 0600). Flow: A "
                            "'initiate --to B' -> I_MESSAGE_1; B 'respond --imsg I1' -> R_MESSAGE_1; A 'initiate "
                            "--rmsg R1' -> I_MESSAGE_2; B 'respond --imsg I2' -> R_MESSAGE_2 and keys; A 'complete "
                            "--imsg I1 --rmsg R2' -> the same keys, confirmed by V")
        if command == "initiate":
            parser.set_defaults(prf=PRF.PRF_HMAC_SHA_256)
            parser.add_argument("--to", metavar="URI", help="the called identity (first step)")
            parser.add_argument("--rmsg", metavar="MSG",
                                help="second step: an R_MESSAGE_1 received; prints I_MESSAGE_2 (repeat per forked "
                                "answer)")
            parser.add_argument("--esk", action="store_true",
                                help="put an ESK for the called identity in I_MESSAGE_1 (deferred delivery, §6.1.2)")
            parser.add_argument("--curve", choices=sorted(CURVES), default="p256", help="ECCPT curve (default p256)")
            for opt, what in (("fork", "a forked device's identity (§7.3)"),
                              ("retarget", "an identity the call may be diverted to (§7.4)"),
                              ("mailbox", "a mailbox identity that may take the call (deferred delivery, §3.3)")):
                parser.add_argument(f"--{opt}", action="append", metavar="URI", help=f"may answer: {what}; repeatable")
        if command == "respond":
            parser.add_argument("--from", dest="from_uri", metavar="URI",
                                help="the expected Initiator (default: whoever the I_MESSAGE_1 names)")
            parser.add_argument("--as", dest="as_uri", metavar="URI",
                                help="the identity answering (default: the key file's)")
            parser.add_argument("--mailbox", action="store_true",
                                help="answer as a deferred-delivery mailbox (no media keys; §3.3)")
            parser.add_argument("--curve", choices=sorted(CURVES), default="p256",
                                help="curve when I_MESSAGE_1 cannot be read (default p256)")
            parser.add_argument("--deferred", action="store_true",
                                help="open a message a mailbox kept for this identity (deferred delivery, §3.3): "
                                "--imsg is the stored I_MESSAGE_2 (or I_MESSAGE_1) with the ESK; prints the keys, "
                                "sends nothing, needs no --state")
            parser.add_argument("--stored-imsg", metavar="MSG",
                                help="with --deferred: the stored I_MESSAGE_1 too (its SPs)")

    # -- mikey phone: both rounds in one process ---------------------------------------------------

    #: The stateless CLI's options that ``mikey phone`` does not take (it keeps each side in memory).
    phone_unused_options = frozenset({"state", "rmsg", "deferred", "stored_imsg"})

    def phone_initiator(self, args: argparse.Namespace, ssrc: int) -> _DemoInitiator:
        """The caller of ``mikey phone --mode ibake`` from the ``initiate`` options: I_MESSAGE_1 in the INVITE,
        I_MESSAGE_2 in the re-INVITE (RFC 6267 §4.2.2)."""
        if not args.to:
            raise UsageError("--mode ibake: name the called identity with --to")
        keys = load_cached(args.keys, load_user_keys)
        side = _args_initiator(args, keys, [CryptoSessionSpec(ssrc=ssrc), CryptoSessionSpec(ssrc=0)])
        return _DemoInitiator(side, {"keys_from": "file", "key_periods": keys.periods})

    def phone_responder(self, args: argparse.Namespace, ssrc: int,
                        replay_cache: ReplayStore | None) -> _DemoResponder:
        """The callee of ``mikey phone --mode ibake`` from the ``respond`` options (``--as``, ``--mailbox``,
        ``--from``: an I_MESSAGE_1 from anyone else is refused with Error no 7)."""
        keys = load_cached(args.keys, load_user_keys)
        own = (args.as_uri or keys.uri).encode("utf-8")
        side = IbakeResponder(keys.credentials, own, mailbox=args.mailbox, curve=CURVES[args.curve],
                              own_ssrcs=[ssrc], replay_cache=replay_cache)
        return _DemoResponder(side, {"keys_from": "file", "key_periods": keys.periods}, args.from_uri)

    # -- initiate -----------------------------------------------------------------------------

    def initiate(self, args: argparse.Namespace, now: float) -> InitiateOutput:
        keys = load_user_keys(args.keys)
        if args.rmsg is not None:
            return self._initiate_second(args, keys.credentials, now)
        if not args.to:
            raise UsageError("--mode ibake initiate: name the called identity with --to (or pass --rmsg R_MESSAGE_1)")
        _fresh_state(args.state, "initiator")
        initiator = _args_initiator(args, keys, crypto_session_specs(args.ssrc))
        i_message = initiator.create_message(now)
        x, sk = initiator.export_secrets()
        width = (x.bit_length() + 7) // 8
        write_private(args.state, {
            "format": STATE_FORMAT, "role": "initiator", "x": x.to_bytes(width, "big").hex(), "sk": sk.hex(),
            "curve": int(CURVES[args.curve]), "i_message_1": i_message.hex(),
            "answers": {"forks": _names(args.fork), "retargets": _names(args.retarget),
                        "mailboxes": _names(args.mailbox)}, "legs": []})
        result = _pending(csb_id=initiator.csb_id, rand=initiator.rand, prf=initiator.prf, header=initiator.header,
                          policies=tuple(initiator.policies), id_i=initiator.id_i.data, id_r=initiator.id_r.data,
                          extras={})
        return InitiateOutput(i_message, result, {"message": "I_MESSAGE_1", "state": args.state},
                              {"ec_private": f"{x:x}", "sk": sk.hex()})

    def _initiate_second(self, args: argparse.Namespace, creds: IbakeCredentials, now: float) -> InitiateOutput:
        if args.to or args.csb_id is not None or args.rand is not None or args.ssrc or args.esk:
            raise UsageError("--rmsg: the exchange's identities, CSB ID, RAND, SSRCs and ESK come from --state")
        state = load_state(args.state, "initiator")
        initiator = _initiator(creds, state, args.state)
        try:
            r_message_1 = read_message(args.rmsg)
            step = initiator.receive(r_message_1, now)
        except MikeyError as exc:
            raise _reject(exc, args) from None
        if step.response is None or step.result is None:
            raise _reject(UnsupportedDataTypeError(
                "initiate --rmsg takes an R_MESSAGE_1; an R_MESSAGE_2 goes to 'complete'"), args)
        state["legs"].append({"r_message_1": r_message_1.hex(), "now": now})
        write_private(args.state, state)
        return InitiateOutput(step.response, step.result, {"message": "I_MESSAGE_2", "state": args.state})

    # -- respond ------------------------------------------------------------------------------

    def respond(self, args: argparse.Namespace, i_message: bytes, now: float) -> ResponderOutcome:
        keywords = responder_keywords(args)
        keys = load_user_keys(args.keys)
        own = (args.as_uri or keys.uri).encode("utf-8")
        if args.deferred:
            stored = [read_message(args.stored_imsg)] if args.stored_imsg is not None else []
            result = open_deferred([*stored, i_message], keys.credentials, own, now=now)
            return ResponderOutcome(result, None)
        if args.stored_imsg is not None:
            raise UsageError("--stored-imsg goes with --deferred")
        if args.state is None:
            raise UsageError("--mode ibake respond: pass --state FILE (this side's state between its two messages)")
        msg = Message.decode(i_message)
        if msg.data_type == DataType.IBAKE_I_MESSAGE_2:
            return self._respond_second(args, keys.credentials, own, i_message, keywords, now)
        if msg.data_type != DataType.IBAKE_I_MESSAGE_1:
            raise UnsupportedDataTypeError("--mode ibake respond takes an I_MESSAGE_1 or an I_MESSAGE_2")
        _require_initiator(msg, args.from_uri)
        _fresh_state(args.state, "responder")
        responder = IbakeResponder(keys.credentials, own, mailbox=args.mailbox, curve=CURVES[args.curve],
                                   own_ssrcs=keywords["own_ssrcs"], replay_cache=keywords["replay_cache"])
        step = responder.receive(i_message, now)
        y = responder.export_ec_private()
        write_private(args.state, {
            "format": STATE_FORMAT, "role": "responder", "y": f"{y:x}".rjust(((y.bit_length() + 7) // 8) * 2, "0"),
            "i_message_1": i_message.hex(), "id_r": own.decode("utf-8"), "mailbox": bool(args.mailbox),
            "curve": int(CURVES[args.curve]), "own_ssrcs": list(keywords["own_ssrcs"]), "done": False})
        result = _pending(csb_id=msg.csb_id, rand=responder.rand or b"", prf=int(msg.header.prf),
                          header=responder.header, policies=responder.policies,
                          id_i=responder.id_i.data if responder.id_i else None, id_r=own,
                          extras={"message": "R_MESSAGE_1", "state": args.state})
        return ResponderOutcome(result, step.response)

    def _respond_second(self, args: argparse.Namespace, creds: IbakeCredentials, own: bytes, i_message_2: bytes,
                        keywords: ResponderKeywords, now: float) -> ResponderOutcome:
        state = load_state(args.state, "responder")
        if state.get("done") is True:
            raise ReplayError("this Responder already answered its I_MESSAGE_2 (--state is finished)")
        path = args.state
        ssrcs = state.get("own_ssrcs") or []
        if not isinstance(ssrcs, list) or not all(isinstance(s, int) for s in ssrcs):
            raise UsageError(f"--state {path}: bad 'own_ssrcs'")
        id_r = state.get("id_r")
        responder = IbakeResponder.resume(
            creds, state_hex(state, "i_message_1", path), int.from_bytes(state_hex(state, "y", path), "big"),
            id_r=id_r.encode("utf-8") if isinstance(id_r, str) else own, mailbox=state.get("mailbox") is True,
            curve=_state_int(state, "curve", path), own_ssrcs=ssrcs, replay_cache=keywords["replay_cache"])
        step = responder.receive(i_message_2, now)
        done: dict[str, Any] = {"format": STATE_FORMAT, "role": "responder", "done": True}  # y is gone
        kept = step.result.extras.get("deferred_messages") if step.result is not None else None
        if kept:  # a mailbox keeps the messages for the called user (§3.3): public, they hold the ESK
            done["deferred_messages"] = [bytes(m).hex() for m in kept]
        write_private(path, done)
        if step.result is None:  # pragma: no cover - an I_MESSAGE_2 taken always gives the keys
            raise UsageError("the Responder derived no keys")
        result = dataclasses.replace(step.result, extras={**step.result.extras, "message": "R_MESSAGE_2"})
        return ResponderOutcome(result, step.response)

    # -- complete -----------------------------------------------------------------------------

    def complete(self, args: argparse.Namespace, i_message: bytes, r_message: bytes | None,
                 now: float) -> ExchangeResult:
        if r_message is None:
            raise UsageError("--mode ibake complete: pass the R_MESSAGE_2 with --rmsg")
        keys = load_user_keys(args.keys)
        state = load_state(args.state, "initiator")
        if state_hex(state, "i_message_1", args.state) != i_message:
            raise UsageError(f"--imsg is not the I_MESSAGE_1 of --state {args.state}")
        if not state.get("legs"):
            raise UsageError("no R_MESSAGE_1 taken yet: run 'initiate --mode ibake --rmsg R_MESSAGE_1' first")
        initiator = _initiator(keys.credentials, state, args.state)
        if Message.decode(r_message).data_type != DataType.IBAKE_R_MESSAGE_2:
            raise UnsupportedDataTypeError("complete takes an R_MESSAGE_2 (an R_MESSAGE_1 goes to 'initiate --rmsg')")
        step = initiator.receive(r_message, now)
        if step.result is None or step.leg is None:  # pragma: no cover - a confirmed answer has its keys
            raise UsageError("R_MESSAGE_2 gave no keys")
        leg = state["legs"][step.leg]
        if leg.get("confirmed") is True:
            raise ReplayError("this answer's R_MESSAGE_2 was already taken")
        leg["confirmed"] = True
        write_private(args.state, state)
        return step.result

    # -- demo ---------------------------------------------------------------------------------
    #
    # Two offer/answer round trips (demo_peer.RoundTripDemoPlugin): I_MESSAGE_1 in the offer, R_MESSAGE_1 in
    # the answer, I_MESSAGE_2 in a new offer of the session (re-INVITE/UPDATE), R_MESSAGE_2 in its answer.

    demo_round_trips = 2

    def demo_credentials(self, workdir: Path) -> dict[str, Any]:
        """A file-based KMS under *workdir* (no server): each party's key file, its K_PRs issued through a real
        REQUEST_KEY_PSK/RESP run in this process (as ``kms ibake-issue``)."""
        from ..constants import EncrAlg
        from ..crypto import ibe
        from ..modes.ibake_keys import IbakeKeyRequest, IbakeKms
        from .ibake_files import IbakeKmsFile, params_document, user_key_document, write_public

        params, master = ibe.bf_setup(2048)
        kms = IbakeKmsFile(master, _DEMO_KMS_ID, ibe.KeyPeriod.MONTH)
        write_public(workdir / "ibake_params.json", params_document(kms))
        creds: dict[str, Any] = {"kms_id": _DEMO_KMS_ID, "params": str(workdir / "ibake_params.json")}
        now = time.time()
        for name in ("alice", "bob"):
            uri, psk = f"sip:{name}@demo.example", os.urandom(32)
            role = IbakeKms(master, {uri.encode(): psk}, identity=_DEMO_KMS_ID.encode(), encr_alg=EncrAlg.AES_CM_128)
            request = IbakeKeyRequest(psk, [uri.encode()], _DEMO_KMS_ID.encode(), params)
            result = request.receive(role.handle(request.create_message(now), now) or b"", now)
            path = workdir / f"{name}.ibake.json"
            write_private(path, user_key_document(uri, _DEMO_KMS_ID, kms.key_period, params, result.keys))
            creds[name] = {"uri": uri, "keys": str(path)}
        return creds

    def demo_credentials_by_operator(self, workdir: Path, kms_url: str, kms_data: Path) -> dict[str, Any]:
        """What the operator of the KMS server at *kms_url* hands each party: a PSK shared with the KMS
        (``kms ticket-user add``) and the public parameters (``kms ibake-params``), made on *kms_data*.
        The parties then ask the server for their K_PRs themselves (REQUEST_KEY_PSK over HTTP)."""
        from ..kms.ibake_role import ibake_master
        from .ibake_files import IbakeKmsFile, params_document, write_public
        from .kms_server import open_store

        creds: dict[str, Any] = {"kms_url": kms_url, "params": str(workdir / "ibake_params.json")}
        with open_store(str(kms_data), None) as store:
            try:
                master, period = ibake_master(store)
                kms_id = store.public_keys().kms_uri
                for name in ("alice", "bob"):
                    uri, psk = f"sip:{name}@demo.example", os.urandom(32)
                    store.add_ticket_user(uri.encode(), psk, actor="mikey demo")
                    creds[name] = {"uri": uri, "psk": psk.hex()}
            except MikeyError as exc:
                raise UsageError(f"the KMS data directory {kms_data}: {exc}") from None
        write_public(creds["params"], params_document(IbakeKmsFile(master, kms_id, period)))
        return creds

    def _demo_keys(self, creds: dict[str, Any], name: str) -> tuple[IbakeCredentials, dict[str, Any]]:
        """A party's K_PRs: from its key file, or asked from the KMS server (REQUEST_KEY_PSK over HTTP)."""
        party = creds[name]
        if "keys" in party:
            keys = load_cached(party["keys"], load_user_keys)
            return keys.credentials, {"keys_from": "file", "key_periods": keys.periods}
        from ..modes.ibake_keys import IbakeKeyRequest
        from .ibake_files import load_params
        from .kms_ibake import fetch_ibake_keys

        params, kms_id, period = load_params(creds["params"])
        request = IbakeKeyRequest(bytes.fromhex(party["psk"]), [party["uri"].encode()], kms_id.encode(), params,
                                  key_period=period)
        result, req_len, resp_len = fetch_ibake_keys(creds["kms_url"], request, time.time())
        info = {"keys_from": "kms", "kms_url": creds["kms_url"], "key_request": "REQUEST_KEY_PSK",
                "key_request_len": req_len, "key_response_len": resp_len,
                "key_periods": [k.period_identity.decode("utf-8", "replace") for k in result.keys]}
        return IbakeCredentials(params, result.private_keys, key_period=period), info

    def demo_stepped_initiator(self, creds: dict[str, Any], ssrc: int) -> _DemoInitiator:
        keys, info = self._demo_keys(creds, "alice")
        # who may answer besides Bob, and an ESK for deferred delivery (RFC 6267 §3.3, §6.1.2, §7.3, §7.4):
        # the credentials' optional "forks", "retargets", "mailboxes" and "esk" entries
        answers = _policy({"answers": {k: creds.get(k) or [] for k in ("forks", "retargets", "mailboxes")}})
        side = IbakeInitiator(keys, creds["alice"]["uri"].encode(), creds["bob"]["uri"].encode(), answers=answers,
                              esk=creds.get("esk") is True,
                              crypto_sessions=[CryptoSessionSpec(ssrc=ssrc), CryptoSessionSpec(ssrc=0)])
        return _DemoInitiator(side, info)

    def demo_stepped_responder(self, creds: dict[str, Any], ssrc: int) -> _DemoResponder:
        keys, info = self._demo_keys(creds, "bob")
        return _DemoResponder(IbakeResponder(keys, creds["bob"]["uri"].encode(), own_ssrcs=[ssrc]), info)

    def demo_initiator(self, creds: dict[str, Any], ssrc: int) -> DemoInitiator:
        raise UsageError(_NO_ONE_ROUND)

    def demo_responder(self, creds: dict[str, Any], ssrc: int) -> DemoResponder:
        raise UsageError(_NO_ONE_ROUND)

    def demo_description(self, creds: dict[str, Any]) -> str:
        where = (f"K_PRs from the KMS at {creds['kms_url']} (REQUEST_KEY_PSK over HTTP)" if creds.get("kms_url")
                 else "K_PRs from a file-based KMS")
        try:
            from .ibake_files import load_params

            bits = f", p {int(load_params(creds['params'])[0].p).bit_length()} bits"
        except (KeyError, UsageError):
            bits = ""
        return (f"MIKEY-IBAKE: Boneh-Franklin IBE (RFC 5091{bits}) to each identity, EC DH on P-256, "
                f"four messages in two offer/answer round trips, {where}")

    # -- speed ----------------------------------------------------------------------------------

    def speed_cases(self) -> list[SpeedCase]:
        from ..crypto import ibe
        from ..modes.ibake_keys import IbakeKeyRequest, IbakeKms

        now = SPEED_NOW
        params, master = ibe.bf_setup(2048)
        kms_id = b"kms.speed.example"
        psk = bytes(32)
        alice_id, bob_id = b"sip:alice@speed.example", b"sip:bob@speed.example"
        kms = IbakeKms(master, {alice_id: psk, bob_id: psk}, identity=kms_id, periods=1)

        def creds(identity: bytes, fixed_rho: bool) -> IbakeCredentials:
            req = IbakeKeyRequest(psk, [identity], kms_id, params)
            keys = req.receive(kms.handle(req.create_message(now), now) or b"", now).private_keys
            return IbakeCredentials(params, keys, rand_below=(lambda n: 12345 % n) if fixed_rho else None)

        # Fixed x, y, CSB ID, RAND and rho: every new side sends the same messages, so one recorded
        # exchange feeds each timed side with fresh peers' messages.
        alice, bob = creds(alice_id, True), creds(bob_id, True)
        x, y = 0x1234567890ABCDEF, 0xFEDCBA0987654321

        def new_initiator() -> IbakeInitiator:
            return IbakeInitiator(alice, alice_id, bob_id, csb_id=0x11223344, rand=bytes(16), ec_private=x)

        def new_responder() -> IbakeResponder:
            return IbakeResponder(bob, ec_private=y)

        i, r = new_initiator(), new_responder()
        i1 = i.create_message(now)
        r1 = r.receive(i1, now).response or b""
        i2 = i.receive(r1, now).response or b""
        r2 = r.receive(i2, now).response or b""

        def initiator_side() -> object:
            side = new_initiator()
            side.create_message(now)
            side.receive(r1, now)
            return side.receive(r2, now)

        def responder_side() -> object:
            side = new_responder()
            side.receive(i1, now)
            return side.receive(i2, now)

        plain = bytes(120)
        ident = ibe.period_identity(bob_id, _when(now), ibe.KeyPeriod.MONTH)
        key = bob.private_key(bob_id, _when(now))
        if key is None:  # pragma: no cover - issued above for this period
            raise UsageError("no K_PR for the speed row")
        ct = ibe.bf_encrypt(params, ident, plain)

        base = "modexp1024"
        return [
            SpeedCase("MIKEY-IBAKE initiator (I1, R1->I2, R2)", initiator_side, base),
            SpeedCase("MIKEY-IBAKE responder (I1->R1, I2->R2)", responder_side, base),
            SpeedCase("BF encrypt (RFC 5091, warm)", lambda: ibe.bf_encrypt(params, ident, plain), base),
            SpeedCase("BF decrypt (RFC 5091, warm)", lambda: ibe.bf_decrypt(params, key, ct), base),
        ]


def _when(now: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(now, _dt.UTC)


_DEMO_KMS_ID = "kms.demo.example"
_NO_ONE_ROUND = ("MIKEY-IBAKE takes two offer/answer round trips: 'mikey demo' drives it through "
                 "demo_stepped_initiator/demo_stepped_responder (demo_round_trips = 2)")


class _DemoInitiator:
    """The demo's Initiator, one offer/answer at a time: R_MESSAGE_1 -> I_MESSAGE_2 (the re-offer), then
    R_MESSAGE_2 -> the keys, confirmed by its V (RFC 6267 §4.2.2, §5.4)."""

    def __init__(self, side: IbakeInitiator, info: dict[str, Any]) -> None:
        self.side = side
        self._info = info

    def __repr__(self) -> str:
        return f"_DemoInitiator({self.side!r})"

    def create_message(self, now: float) -> bytes:
        return self.side.create_message(now)

    def receive(self, answer: bytes | None, now: float) -> tuple[bytes | None, ExchangeResult | None]:
        if answer is None:
            raise UnsupportedDataTypeError("the SDP answer carries no IBAKE message")
        step = self.side.receive(answer, now)
        if step.confirmed:
            return None, step.result
        return step.response, None

    def info(self) -> dict[str, Any]:
        return dict(self._info)


class _DemoResponder:
    """The demo's Responder: I_MESSAGE_1 -> R_MESSAGE_1, I_MESSAGE_2 -> R_MESSAGE_2 and the keys."""

    def __init__(self, side: IbakeResponder, info: dict[str, Any], initiator: str | None = None) -> None:
        self.side = side
        self._info = info
        self._initiator = initiator

    def __repr__(self) -> str:
        return f"_DemoResponder({self.side!r})"

    def receive(self, offer: bytes, now: float) -> tuple[bytes | None, ExchangeResult | None]:
        if self._initiator is not None:
            msg = Message.decode(offer)
            if msg.data_type == DataType.IBAKE_I_MESSAGE_1:
                _require_initiator(msg, self._initiator)
        step = self.side.receive(offer, now)
        return step.response, step.result

    def info(self) -> dict[str, Any]:
        return dict(self._info)

PLUGIN = IbakePlugin()
