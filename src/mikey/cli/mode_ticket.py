"""CLI plugin for MIKEY-TICKET (RFC 6043): ``--mode ticket --kms URL --psk HEX``.

``initiate --kms URL --psk HEX --id-i URI --to URI [--flags LETTERS] [--lifetime S]`` sends the
Ticket Request (REQUEST_INIT_PSK, §4.2.1) to the KMS over HTTP (``POST URL/keymanagement/mikey/v1``,
``application/mikey``), checks the REQUEST_RESP, and prints the TRANSFER_INIT (§4.2.2) as the
I_MESSAGE.  ``respond --kms URL --psk HEX --id-r URI --imsg MSG`` takes the TRANSFER_INIT, resolves
its ticket at the KMS over HTTP (RESOLVE_INIT_PSK -> RESOLVE_RESP, §4.2.3) and prints the
TRANSFER_RESP; a KMS refusal becomes an Error message for the Initiator with the KMS's Error no.
``complete --grant-keys HEX --imsg MSG --rmsg MSG`` is stateless: ``initiate --show-keys`` prints
the grant's secrets (``grant_keys``: MPKi, [MPKr], the session keys as Key data) that the
Initiator needs to check the TRANSFER_RESP.

``--psk`` is the key the party shares with the KMS (provisioned with the KMS admin route
``ticket-users``); ``--psk-id`` the IDRpsk naming it (one per device); ``--kms-id`` the KMS's
identity (IDRkms, the KMS URI) when the messages should name it.  ``--prf prf-hmac-sha-256``
selects the 256-bit suite (§12.1).  ``mikey demo --mode ticket`` runs a ``mikey kms serve``
process, provisions both parties' PSKs there and does Request, Transfer and Resolve over HTTP.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..constants import PRF, IDRole, IDType, TSRole, TSType
from ..errors import MikeyError, StateError
from ..identities import ntp_seconds
from ..modes.base import State
from ..modes.results import CryptoSessionSpec, ExchangeResult, ResponderOutcome
from ..modes.ticket import (
    SUITE_128,
    SUITE_256,
    InMemoryTicketStore,
    TicketCredential,
    TicketGrant,
    TicketInitiator,
    TicketKms,
    TicketPolicy,
    TicketProtectionKey,
    TicketRequester,
    TicketResponder,
    TicketSuite,
    policy_violations,
    ticket_flags,
)
from ..wire import IdrPayload, TrPayload
from .common import UsageError, hex_bytes
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

__all__ = ["PLUGIN", "TicketPlugin", "HttpTicketInitiator", "HttpTicketResponder", "KmsTransport", "http_transport",
           "local_transport", "provision_ticket_user", "ticket_policy"]

#: The Ticket Policy flags asked for by default (§6.10): KMS-made ticket (D), resolved at the KMS (E),
#: TRANSFER_RESP (F), RANDRi in the TEK derivation (H), and N, O (TPK-protected base ticket fields).
DEFAULT_FLAGS = "DEFHNO"
DEFAULT_LIFETIME = 3600.0
_ADMIN_TICKET_USERS = "/keymanagement/identity/v1/admin/ticket-users"
_DEMO_KMS_ID = "kms.demo.example"


def _suite(prf: int) -> TicketSuite:
    return SUITE_256 if prf == PRF.PRF_HMAC_SHA_256 else SUITE_128


def _bytes_id(text: str | None) -> bytes | None:
    return text.encode("utf-8") if text else None


def ticket_policy(to: list[str], flags: str, lifetime: float, now: float) -> TicketPolicy:
    """The desired Ticket Policy: *flags* letters (D..O), the responders, valid *lifetime* s from *now*."""
    letters = flags.upper()
    if not letters or set(letters) - set("DEFGHIJKLMNO"):
        raise UsageError("--flags takes Ticket Policy flag letters of DEFGHIJLMNO (RFC 6043 §6.10)")
    if not 0 < lifetime <= 366 * 86400:
        raise UsageError("--lifetime must be between 1 second and a year")
    end = TrPayload(TSRole.END_OF_VALIDITY, TSType.NTP_UTC_32, ntp_seconds(now + lifetime).to_bytes(4, "big"))
    policy = TicketPolicy(ticket_flags(letters.replace("K", "")),
                          tuple(IdrPayload(IDRole.RESPONDER, IDType.URI, uri.encode("utf-8")) for uri in to), end=end)
    problems = policy_violations(policy, granted=False)
    if problems:
        raise UsageError("--flags: " + "; ".join(problems))
    return policy


#: How a party reaches the KMS: ``(MIKEY message, now) -> the KMS's MIKEY answer``.
KmsTransport = Callable[[bytes, float], bytes]


def http_transport(kms_url: str, *, ca: str | None = None) -> KmsTransport:
    """The KMS server at *kms_url*, over HTTP(S) (``POST …/keymanagement/mikey/v1``)."""
    from ..kms.mikey_client import post_mikey

    def send(message: bytes, now: float) -> bytes:
        return post_mikey(kms_url, message, ca=ca)

    return send


_LOCAL: dict[str, Any] = {}
_LOCAL_LOCK = threading.Lock()


def local_transport(db_path: str, at_rest_key: str, kms_id: bytes) -> KmsTransport:
    """The MIKEY-TICKET KMS role run in this process on the KMS database file *db_path* (SQLite; what
    ``mikey demo_credentials`` makes when no server runs).  The database is opened once per process."""
    from ..kms.mikey_client import KmsMikeyError
    from ..kms.store import AtRestKey, KmsStore
    from ..kms.ticket_role import TicketKmsRole

    with _LOCAL_LOCK:
        role = _LOCAL.get(db_path)
        if role is None:
            store = KmsStore(f"sqlite:///{db_path}", AtRestKey.from_text(at_rest_key, source="the credentials"))
            role = _LOCAL[db_path] = TicketKmsRole.on_store(store, kms_id)

    def send(message: bytes, now: float) -> bytes:
        answer: bytes | None = role.handle(message, now)
        if answer is None:
            raise KmsMikeyError("the KMS discarded the message (a replay, RFC 3830 §5.4)")
        return answer

    return send


class HttpTicketInitiator:
    """An Initiator that gets its ticket from the KMS (over HTTP), then runs the Ticket Transfer (§4.2)."""

    def __init__(self, kms: KmsTransport, requester: TicketRequester, *, id_i: bytes, id_r: bytes | None,
                 crypto_sessions: list[CryptoSessionSpec] | None = None, csb_id: int | None = None,
                 rand: bytes | None = None) -> None:
        self.kms = kms
        self.requester = requester
        self.id_i, self.id_r = id_i, id_r
        self.crypto_sessions = crypto_sessions
        self.csb_id, self.rand = csb_id, rand
        self.initiator: TicketInitiator | None = None
        self.grant: TicketGrant | None = None

    def __repr__(self) -> str:
        return f"HttpTicketInitiator({self.initiator!r})"

    def create_message(self, now: float) -> bytes:
        """REQUEST_INIT to the KMS, REQUEST_RESP checked, then the TRANSFER_INIT."""
        answer = self.kms(self.requester.create_message(now), now)
        self.grant = self.requester.receive(answer, now)
        self.initiator = TicketInitiator(self.grant, id_i=self.id_i, id_r=self.id_r,
                                         crypto_sessions=self.crypto_sessions, csb_id=self.csb_id, rand=self.rand)
        return self.initiator.create_message(now)

    def _ini(self) -> TicketInitiator:
        if self.initiator is None:
            raise StateError("the TRANSFER_INIT has not been built yet")
        return self.initiator

    @property
    def state(self) -> State:
        return self._ini().state

    def receive(self, data: bytes, now: float) -> ExchangeResult:
        return self._ini().receive(data, now)

    @property
    def result(self) -> ExchangeResult:
        return self._ini().result


class HttpTicketResponder:
    """A Responder that resolves the ticket at the KMS (over HTTP, §4.2.3), then answers TRANSFER_RESP."""

    def __init__(self, kms: KmsTransport, responder: TicketResponder) -> None:
        self.kms = kms
        self.responder = responder

    def __repr__(self) -> str:
        return f"HttpTicketResponder({self.responder!r})"

    def receive(self, data: bytes, now: float) -> ResponderOutcome:
        step = self.responder.receive(data, now)
        if step.outcome is not None:
            return step.outcome
        if step.resolve_init is None:  # pragma: no cover - a step is one or the other
            raise StateError("the Responder neither resolved the ticket nor asked the KMS")
        try:
            answer = self.kms(step.resolve_init, now)
        except MikeyError:
            self.responder.state = State.FAILED
            raise
        return self.responder.receive_resolve(answer, now)


def _admin_post(kms_url: str, token: str, path: str, body: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    from ..kms.mikey_client import KmsMikeyError

    request = urllib.request.Request(kms_url.rstrip("/") + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer: dict[str, Any] = json.loads(response.read(1 << 20))
            return answer
    except urllib.error.HTTPError as exc:
        raise KmsMikeyError(f"{path}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise KmsMikeyError(f"cannot provision at {kms_url}: {getattr(exc, 'reason', exc)}") from None


def provision_ticket_user(kms_url: str, admin_token: str, identity: str, psk: bytes, *, key_id: str | None = None,
                          may_request: bool = True, may_resolve: bool = True, peer_kms: bool = False,
                          url: str | None = None) -> dict[str, Any]:
    """Provision a MIKEY-TICKET party's PSK at a running KMS (admin route ``ticket-users``); with *peer_kms*
    the party is another KMS, and with *url* also where Resolves of its tickets are forwarded (§10)."""
    body: dict[str, Any] = {"identity": identity, "psk": psk.hex(), "may_request": may_request,
                            "may_resolve": may_resolve, "peer_kms": peer_kms}
    if key_id is not None:
        body["key_id"] = key_id
    if url is not None:
        body["url"] = url
    return _admin_post(kms_url, admin_token, _ADMIN_TICKET_USERS, body)


class TicketPlugin(ModePlugin):
    name = "ticket"
    help = "MIKEY-TICKET (RFC 6043): a ticket from the KMS, resolved by the Responder at the KMS"
    initiate_options = frozenset()

    def add_arguments(self, parser: argparse._ActionsContainer, command: str) -> None:
        if command == "complete":
            parser.add_argument("--grant-keys", type=hex_bytes, required=True, metavar="HEX",
                                help="the grant's secrets 'initiate --show-keys' printed (grant_keys)")
            return
        parser.add_argument("--kms", required=True, metavar="URL", help="the KMS base URL (http(s)://host:port)")
        parser.add_argument("--psk", type=hex_bytes, required=True, metavar="HEX", help="the PSK shared with the KMS")
        parser.add_argument("--psk-id", metavar="ID", help="IDRpsk: the id of that PSK at the KMS (one per device)")
        parser.add_argument("--kms-id", metavar="ID", help="IDRkms: the KMS's identity (its KMS URI), sent and MACed")
        parser.add_argument("--ca", metavar="PEM", help="CA certificates trusted for an https:// --kms")
        if command == "initiate":
            parser.add_argument("--id-i", required=True, metavar="URI", help="own identity (IDRi)")
            parser.add_argument("--to", required=True, action="append", metavar="URI",
                                help="the Responder (IDRr; repeat for several, or a group)")
            parser.add_argument("--flags", default=DEFAULT_FLAGS, metavar="LETTERS",
                                help=f"Ticket Policy flags asked for (RFC 6043 §6.10, default {DEFAULT_FLAGS}; "
                                "I: key forking, J: reuse, M: Responder-supplied keys)")
            parser.add_argument("--lifetime", type=float, default=DEFAULT_LIFETIME, metavar="SECONDS",
                                help=f"validity of the ticket asked for (default {DEFAULT_LIFETIME:g})")
        else:
            parser.add_argument("--id-r", required=True, metavar="URI", help="own identity (IDRr)")

    def initiate(self, args: argparse.Namespace, now: float) -> InitiateOutput:
        suite = _suite(int(args.prf))
        policy = ticket_policy(list(args.to), args.flags, args.lifetime, now)
        id_i = args.id_i.encode("utf-8")
        requester = TicketRequester(args.psk, policy, id_i=id_i, kms_id=_bytes_id(args.kms_id),
                                    psk_id=_bytes_id(args.psk_id), suite=suite)
        http = HttpTicketInitiator(http_transport(args.kms, ca=args.ca), requester, id_i=id_i,
                                   id_r=args.to[0].encode("utf-8") if len(args.to) == 1 else None,
                                   crypto_sessions=crypto_session_specs(args.ssrc), csb_id=args.csb_id,
                                   rand=args.rand)
        i_message = http.create_message(now)
        ini, grant = http._ini(), http.grant
        if grant is None:  # pragma: no cover - set by create_message
            raise StateError("no grant")
        if ini.state == State.DONE:
            result = ini.result
        else:
            header = ini.header
            if header is None:  # pragma: no cover - set by create_message
                raise StateError("no TRANSFER_INIT header")
            result = ExchangeResult(mode="ticket", csb_id=ini.csb_id, tgk=b"", rand=ini.rand, prf=ini.prf,
                                    crypto_sessions=(), authenticated=False, header=header,
                                    policies=tuple(ini.policies), initiator_id=id_i, responder_id=ini.id_r.data
                                    if ini.id_r is not None else None)
        extra = {"ticket_flags": grant.policy.flag_string, "kms": args.kms,
                 "policy_changed": grant.changed, "awaits_transfer_resp": ini.state == State.WAIT_RESPONSE}
        return InitiateOutput(i_message, result, extra, {"grant_keys": grant.key_blob().hex()})

    def respond(self, args: argparse.Namespace, i_message: bytes, now: float) -> ResponderOutcome:
        responder = TicketResponder(args.psk, id_r=args.id_r.encode("utf-8"), kms_id=_bytes_id(args.kms_id),
                                    psk_id=_bytes_id(args.psk_id), suite=_suite(_prf_of(i_message)),
                                    **responder_keywords(args))
        return HttpTicketResponder(http_transport(args.kms, ca=args.ca), responder).receive(i_message, now)

    def complete(self, args: argparse.Namespace, i_message: bytes, r_message: bytes | None,
                 now: float) -> ExchangeResult:
        initiator = TicketInitiator.resume(args.grant_keys, i_message)
        if r_message is None:
            if initiator.state == State.WAIT_RESPONSE:
                raise UsageError("the Ticket Policy asks for a TRANSFER_RESP (F): pass it with --rmsg")
            return initiator.result
        return initiator.receive(r_message, now)

    # -- demo ---------------------------------------------------------------------------------

    def demo_credentials(self, workdir: Path) -> dict[str, Any]:
        """Both parties' PSKs in a KMS database file under *workdir*, whose TICKET role each party runs in
        its own process (no server; ``mikey demo`` uses :meth:`demo_credentials_at_kms` with a server)."""
        from ..kms.store import AtRestKey, KmsStore

        key = os.urandom(32).hex()
        db = workdir / "ticket-kms.sqlite3"
        # J (reuse allowed): in-process harnesses hand one TRANSFER_INIT to several fresh Responders.
        creds: dict[str, Any] = {"kms_db": str(db), "at_rest_key": key, "kms_id": _DEMO_KMS_ID, "flags": "DEFHJNO"}
        with KmsStore(f"sqlite:///{db}", AtRestKey.from_text(key, source="demo")) as store:
            for name, may_request in (("alice", True), ("bob", False)):
                uri, psk = f"sip:{name}@demo.example", os.urandom(16)
                store.add_ticket_user(uri.encode(), psk, key_id=f"{name}-demo".encode(), may_request=may_request)
                creds[name] = {"uri": uri, "psk": psk.hex(), "psk_id": f"{name}-demo"}
        return creds

    @staticmethod
    def _transport(creds: dict[str, Any]) -> KmsTransport:
        if creds.get("kms_url"):
            return http_transport(creds["kms_url"])
        return local_transport(creds["kms_db"], creds["at_rest_key"], creds["kms_id"].encode())

    def demo_credentials_at_kms(self, workdir: Path, kms_url: str, admin_token: str) -> dict[str, Any]:
        """Both parties' PSKs, provisioned at the running KMS through its admin route."""
        creds: dict[str, Any] = {"kms_url": kms_url}
        for name, may_request in (("alice", True), ("bob", False)):
            uri, psk = f"sip:{name}@demo.example", os.urandom(16)
            provision_ticket_user(kms_url, admin_token, uri, psk, key_id=f"{name}-demo", may_request=may_request)
            creds[name] = {"uri": uri, "psk": psk.hex(), "psk_id": f"{name}-demo"}
        return creds

    def demo_initiator(self, creds: dict[str, Any], ssrc: int) -> DemoInitiator:
        alice, bob = creds["alice"], creds["bob"]
        policy = ticket_policy([bob["uri"]], creds.get("flags", DEFAULT_FLAGS), DEFAULT_LIFETIME, time.time())
        requester = TicketRequester(bytes.fromhex(alice["psk"]), policy, id_i=alice["uri"].encode(),
                                    psk_id=alice["psk_id"].encode())
        specs = [CryptoSessionSpec(ssrc=ssrc), CryptoSessionSpec(ssrc=0)]
        return HttpTicketInitiator(self._transport(creds), requester, id_i=alice["uri"].encode(),
                                   id_r=bob["uri"].encode(), crypto_sessions=specs)

    def demo_responder(self, creds: dict[str, Any], ssrc: int) -> DemoResponder:
        bob = creds["bob"]
        responder = TicketResponder(bytes.fromhex(bob["psk"]), id_r=bob["uri"].encode(), psk_id=bob["psk_id"].encode(),
                                    own_ssrcs=[ssrc])
        return HttpTicketResponder(self._transport(creds), responder)

    def demo_description(self, creds: dict[str, Any]) -> str:
        where = (f"the KMS server at {creds['kms_url']} (Ticket Request and Resolve over HTTP, application/mikey)"
                 if creds.get("kms_url") else "a KMS database file (the TICKET KMS role in each process)")
        return (f"MIKEY-TICKET: base ticket from {where}, PSKs with the KMS, MIKEY-1 PRF, "
                "AES-CM-128 + HMAC-SHA-1")

    # -- speed ----------------------------------------------------------------------------------

    def speed_cases(self) -> list[SpeedCase]:
        now = SPEED_NOW
        psk_a, psk_b, tpk = bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 64))
        alice, bob, kms_id = b"sip:alice@speed.example", b"sip:bob@speed.example", b"kms.speed.example"
        store = InMemoryTicketStore()
        store.add_credential(TicketCredential(alice, psk_a, b"alice"))
        store.add_credential(TicketCredential(bob, psk_b, b"bob"))
        store.add_protection_key(TicketProtectionKey(b"tpk", tpk))
        policy = ticket_policy([bob.decode()], "DEFHJNO", DEFAULT_LIFETIME, now)  # J: the same resolve, timed again
        requester = TicketRequester(psk_a, policy, id_i=alice, kms_id=kms_id, psk_id=b"alice")
        request_init = requester.create_message(now)
        kms = TicketKms(store, identity=kms_id)
        request_resp = kms.handle(request_init, now)
        if request_resp is None:
            raise StateError("the speed row's KMS refused the Ticket Request")
        grant = requester.receive(request_resp, now)
        specs = [CryptoSessionSpec(ssrc=0x11223344), CryptoSessionSpec(ssrc=0x55667788)]

        def initiator() -> bytes:
            return TicketInitiator(grant, id_i=alice, id_r=bob, crypto_sessions=specs).create_message(now)

        transfer_init = initiator()

        def bob_side() -> TicketResponder:  # the same RESOLVE_INIT (CSB ID, RANDRr) every time
            return TicketResponder(psk_b, id_r=bob, kms_id=kms_id, psk_id=b"bob", rng=random.Random(5).randbytes)

        step = bob_side().receive(transfer_init, now)
        resolve_init = step.resolve_init
        if resolve_init is None:
            raise StateError("the speed row's Responder did not ask the KMS")

        def resolve() -> bytes | None:
            # A fresh KMS object (fresh replay cache) over the same store: the same RESOLVE_INIT is new each time.
            return TicketKms(store, identity=kms_id).handle(resolve_init, now)

        resolve_resp = resolve()
        if resolve_resp is None:
            raise StateError("the speed row's KMS refused the Ticket Resolve")

        def request() -> bytes | None:
            return TicketKms(store, identity=kms_id).handle(request_init, now)

        def responder() -> ResponderOutcome:
            r = bob_side()
            r.receive(transfer_init, now)
            return r.receive_resolve(resolve_resp, now)

        base = "psk-responder"  # issue 10: a PSK Resolve at the KMS core within 2x of the PSK Responder
        return [
            SpeedCase("TICKET initiator (TRANSFER_INIT)", initiator, base),
            SpeedCase("TICKET responder (TRANSFER_INIT + RESOLVE_RESP)", responder, base),
            SpeedCase("TICKET KMS core: Request", request, base),
            SpeedCase("TICKET KMS core: Resolve", resolve, base),
        ]


def _prf_of(message: bytes) -> int:
    """The PRF func of a message's common header (RFC 3830 §6.1: the low 7 bits of its fourth octet)."""
    return message[3] & 0x7F if len(message) > 3 else PRF.MIKEY_1


PLUGIN = TicketPlugin()
