"""MIKEY-TICKET receive paths fed mutated messages (hypothesis): only MikeyError escapes, quickly, and
no mutation of an authenticated message is accepted (RFC 6043 §5.5: every octet is MAC-covered)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mikey.constants import IDRole, IDType, TSRole, TSType
from mikey.errors import MikeyError
from mikey.modes.ticket import (
    InMemoryTicketStore,
    TicketCredential,
    TicketInitiator,
    TicketKms,
    TicketPolicy,
    TicketProtectionKey,
    TicketRequester,
    TicketResponder,
    ticket_flags,
)
from mikey.wire import IdrPayload, Message, TrPayload

NOW = 1_700_000_000.0
ALICE, BOB, KMS_ID = b"sip:alice@example.com", b"sip:bob@example.com", b"kms.example.com"
PSK_A, PSK_B, TPK = bytes(range(16)), bytes(range(16, 32)), bytes(range(100, 116))
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def store() -> InMemoryTicketStore:
    s = InMemoryTicketStore()
    s.add_credential(TicketCredential(ALICE, PSK_A, b"alice"))
    s.add_credential(TicketCredential(BOB, PSK_B, b"bob"))
    s.add_protection_key(TicketProtectionKey(b"tpk", TPK))
    return s


def kms(s: InMemoryTicketStore | None = None) -> TicketKms:
    return TicketKms(s or store(), identity=KMS_ID, rng=seeded(7))


def policy() -> TicketPolicy:
    end = TrPayload(TSRole.END_OF_VALIDITY, TSType.NTP_UTC_32, (int(NOW) + 2208988800 + 3600).to_bytes(4, "big"))
    # forking (I) and reuse allowed (J): every fresh exchange may resolve the same ticket again
    return TicketPolicy(ticket_flags("DEFGHIJNO"), (IdrPayload(IDRole.RESPONDER, IDType.URI, BOB),), end=end)


def requester(seed: int = 1) -> TicketRequester:
    return TicketRequester(PSK_A, policy(), id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice", rng=seeded(seed))


def responder(seed: int = 3) -> TicketResponder:
    return TicketResponder(PSK_B, id_r=BOB, kms_id=KMS_ID, psk_id=b"bob", rng=seeded(seed))


@dataclass(frozen=True)
class Flow:
    request_init: bytes
    request_resp: bytes
    transfer_init: bytes
    resolve_init: bytes
    resolve_resp: bytes
    transfer_resp: bytes


def _flow() -> Flow:
    k = kms()
    req = requester()
    ri = req.create_message(NOW)
    rr = k.handle(ri, NOW) or b""
    grant = req.receive(rr, NOW)
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2))
    ti = ini.create_message(NOW)
    r = responder()
    rs = r.receive(ti, NOW).resolve_init or b""
    rsr = k.handle(rs, NOW) or b""
    tr = r.receive_resolve(rsr, NOW).response or b""
    ini.receive(tr, NOW)
    return Flow(ri, rr, ti, rs, rsr, tr)


FLOW = _flow()


def mutate(data: bytes, kind: int, pos: int, value: int, length: int) -> bytes:
    b = bytearray(data)
    pos %= len(b)
    if kind == 0:
        b[pos] ^= 1 << (value % 8)
    elif kind == 1:
        b[pos] = value
    elif kind == 2:
        b[pos:pos] = bytes([value]) * length
    elif kind == 3:
        del b[pos : pos + length]
    elif kind == 4:
        del b[pos:]
    else:
        other = value % len(b)
        b[pos:pos] = b[other : other + length]
    return bytes(b)


MUTATIONS = st.tuples(st.integers(0, 5), st.integers(0, 1 << 16), st.integers(0, 255), st.integers(1, 16))


def _accepts(run: Callable[[bytes], object], original: bytes, m: tuple[int, int, int, int]) -> None:
    data = mutate(original, *m)
    try:
        run(data)
    except MikeyError:
        return
    assert data == original, "a mutated message was accepted"


@FUZZ
@given(MUTATIONS)
def test_kms_request_init(m: tuple[int, int, int, int]) -> None:
    _accepts(lambda d: kms().receive(d, NOW), FLOW.request_init, m)


@FUZZ
@given(MUTATIONS)
def test_kms_resolve_init(m: tuple[int, int, int, int]) -> None:
    _accepts(lambda d: kms().receive(d, NOW), FLOW.resolve_init, m)


@FUZZ
@given(MUTATIONS)
def test_requester_request_resp(m: tuple[int, int, int, int]) -> None:
    def run(d: bytes) -> object:
        r = requester()
        r.create_message(NOW)
        return r.receive(d, NOW)

    _accepts(run, FLOW.request_resp, m)


@FUZZ
@given(MUTATIONS)
def test_responder_transfer_init_through_resolve(m: tuple[int, int, int, int]) -> None:
    def run(d: bytes) -> object:
        r = responder()
        step = r.receive(d, NOW)
        resolved = kms().handle(step.resolve_init or b"", NOW)
        return r.receive_resolve(resolved or b"", NOW)

    _accepts(run, FLOW.transfer_init, m)


@FUZZ
@given(MUTATIONS)
def test_responder_resolve_resp(m: tuple[int, int, int, int]) -> None:
    def run(d: bytes) -> object:
        r = responder()
        r.receive(FLOW.transfer_init, NOW)
        return r.receive_resolve(d, NOW)

    _accepts(run, FLOW.resolve_resp, m)


@FUZZ
@given(MUTATIONS)
def test_initiator_transfer_resp(m: tuple[int, int, int, int]) -> None:
    req = requester()
    k = kms()
    grant = req.receive(k.handle(req.create_message(NOW), NOW) or b"", NOW)

    def run(d: bytes) -> object:
        ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2))
        ini.create_message(NOW)
        return ini.receive(d, NOW)

    _accepts(run, FLOW.transfer_resp, m)


@pytest.mark.parametrize("field", ["request_init", "request_resp", "transfer_init", "resolve_init", "resolve_resp",
                                   "transfer_resp"])
def test_random_bytes_and_truncations(field: str) -> None:
    """Every prefix of every message, and random garbage, only raise MikeyError at every receive path."""
    data = getattr(FLOW, field)
    rng = random.Random(field)
    inputs = [data[:n] for n in range(0, len(data), 7)] + [rng.randbytes(rng.randrange(1, 300)) for _ in range(20)]
    for d in inputs:
        for run in (lambda x: kms().receive(x, NOW), lambda x: responder().receive(x, NOW)):
            with pytest.raises(MikeyError):
                run(d)


def _routed() -> tuple[TicketKms, object, bytes]:
    """KMS R with a forwarded Resolve pending, and the peer's genuine answer (§10)."""
    from mikey.modes.ticket import TicketPeer

    peer_psk = bytes(range(80, 96))
    s_i = store()
    s_i.add_credential(TicketCredential(b"kms-r", peer_psk, b"kms-r", peer_kms=True))
    k_i = kms(s_i)
    s_r = InMemoryTicketStore()
    s_r.add_credential(TicketCredential(BOB, PSK_B, b"bob"))
    k_r = TicketKms(s_r, identity=b"kms-r", peers=[TicketPeer(KMS_ID, peer_psk, b"kms-r")], rng=seeded(8))
    req = requester()
    grant = req.receive(k_i.handle(req.create_message(NOW), NOW) or b"", NOW)
    r = TicketResponder(PSK_B, id_r=BOB, kms_id=b"kms-r", psk_id=b"bob", rng=seeded(3))
    resolve = r.receive(TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2)).create_message(NOW), NOW)
    fwd = k_r.receive(resolve.resolve_init or b"", NOW).forward
    assert fwd is not None
    return k_r, fwd, k_i.handle(fwd.message, NOW) or b""


ROUTED = _routed()


@FUZZ
@given(MUTATIONS)
def test_kms_complete_forward(m: tuple[int, int, int, int]) -> None:
    k_r, fwd, answer = ROUTED
    _accepts(lambda d: k_r.complete_forward(fwd, d, NOW), answer, m)  # type: ignore[arg-type]


def _update() -> tuple[object, bytes]:
    """A finished exchange's Responder bundle and a CSB update message for it (§5.2)."""
    from mikey.modes.ticket import TicketUpdater

    k = kms()
    req = requester()
    grant = req.receive(k.handle(req.create_message(NOW), NOW) or b"", NOW)
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2))
    r = responder()
    step = r.receive(ini.create_message(NOW), NOW)
    ini.receive(r.receive_resolve(k.handle(step.resolve_init or b"", NOW) or b"", NOW).response or b"", NOW)
    return r.bundle, TicketUpdater(ini.bundles[0], rng=seeded(9)).create_message(NOW)


UPDATE = _update()


@FUZZ
@given(MUTATIONS)
def test_update_responder(m: tuple[int, int, int, int]) -> None:
    from mikey.modes.ticket import TicketUpdateResponder

    bundle, message = UPDATE
    _accepts(lambda d: TicketUpdateResponder(bundle).receive(d, NOW), message, m)  # type: ignore[arg-type]


def _update_answer() -> tuple[object, bytes]:
    """A CSB update started by the Initiator and the Responder's genuine answer."""
    from mikey.modes.ticket import TicketUpdater, TicketUpdateResponder

    k = kms()
    req = requester()
    grant = req.receive(k.handle(req.create_message(NOW), NOW) or b"", NOW)
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2))
    r = responder()
    step = r.receive(ini.create_message(NOW), NOW)
    ini.receive(r.receive_resolve(k.handle(step.resolve_init or b"", NOW) or b"", NOW).response or b"", NOW)
    message = TicketUpdater(ini.bundles[0], rng=seeded(9)).create_message(NOW)
    answer = TicketUpdateResponder(r.bundle).receive(message, NOW).response  # type: ignore[arg-type]
    return ini.bundles[0], answer or b""


UPDATE_ANSWER = _update_answer()


@FUZZ
@given(MUTATIONS)
def test_updater_receive(m: tuple[int, int, int, int]) -> None:
    from mikey.modes.ticket import TicketUpdater

    bundle, answer = UPDATE_ANSWER

    def run(d: bytes) -> object:
        up = TicketUpdater(bundle, rng=seeded(9))  # type: ignore[arg-type]
        up.create_message(NOW)
        return up.receive(d, NOW)

    _accepts(run, answer, m)


@FUZZ
@given(MUTATIONS)
def test_initiator_receive_fork(m: tuple[int, int, int, int]) -> None:
    """A second device's TRANSFER_RESP, mutated, at receive_fork."""
    k = kms()
    req = requester()
    grant = req.receive(k.handle(req.create_message(NOW), NOW) or b"", NOW)
    ini = TicketInitiator(grant, id_i=ALICE, id_r=BOB, rng=seeded(2))
    ti = ini.create_message(NOW)
    answers = []
    for seed in (3, 4):
        r = responder(seed)
        step = r.receive(ti, NOW)
        answers.append(r.receive_resolve(k.handle(step.resolve_init or b"", NOW) or b"", NOW).response or b"")
    ini.receive(answers[0], NOW)
    data = mutate(answers[1], *m)
    try:
        ini.receive_fork(data, NOW)
    except MikeyError:
        return
    assert data == answers[1], "a mutated message was accepted"


def _grant_blob() -> bytes:
    req = requester()
    grant = req.receive(kms().handle(req.create_message(NOW), NOW) or b"", NOW)
    return grant.key_blob()


GRANT_BLOB = _grant_blob()  # the same seeds as FLOW: the grant FLOW.transfer_init was made with


def test_resume_takes_its_own_transfer_init() -> None:
    """The stateless Initiator (``mikey complete``) rebuilt from its TRANSFER_INIT and grant keys gets the keys."""
    ini = TicketInitiator.resume(GRANT_BLOB, FLOW.transfer_init)
    result = ini.receive(FLOW.transfer_resp, NOW)
    assert result.authenticated and result.extras["forked"]
    assert result.csb_id == Message.decode(FLOW.transfer_init).csb_id
    other = TicketRequester(PSK_A, policy(), id_i=ALICE, kms_id=KMS_ID, psk_id=b"alice", rng=seeded(9))
    other_kms = TicketKms(store(), identity=KMS_ID, rng=seeded(8))  # other MPKs
    other_blob = other.receive(other_kms.handle(other.create_message(NOW), NOW) or b"", NOW).key_blob()
    with pytest.raises(MikeyError, match="grant keys"):
        TicketInitiator.resume(other_blob, FLOW.transfer_init)


@FUZZ
@given(MUTATIONS)
def test_resume_transfer_init(m: tuple[int, int, int, int]) -> None:
    _accepts(lambda d: TicketInitiator.resume(GRANT_BLOB, d), FLOW.transfer_init, m)


def test_describe_ticket_dissects_and_opens_a_base_ticket() -> None:
    """``mikey decode`` material: Ticket Policy, Ticket Data chain, Initiator Data; opened with the TPK (A.1)."""
    from mikey.modes.ticket import describe_ticket
    from mikey.wire import TicketPayload

    ticket = Message.decode(FLOW.transfer_init).find(TicketPayload)
    assert ticket is not None
    d = describe_ticket(ticket)
    assert d["problems"] == [] and "opened" not in d
    assert d["policy"]["flags"] == "DEFGHIJNO" and d["policy"]["responders"] == [BOB.decode()]
    assert d["policy"]["kms"] == KMS_ID.decode() and d["policy"]["violations"] == []
    assert [p["type"] for p in d["ticket_data"]["payloads"]] == ["T", "RAND", "KEMAC", "IDR", "V"]
    assert [p["type"] for p in d["initiator_data"]] == ["V", "V"]  # Vi, Vr (forking)
    opened = describe_ticket(ticket, TPK)["opened"]
    assert opened["mac_verified"] and opened["tpk_id"] == "tpk" and "mpk_i" not in opened
    assert [(k["key_type_name"], k["length"]) for k in opened["session_keys"]] == [("TGK", 16)]
    assert "key" not in opened["session_keys"][0]
    shown = describe_ticket(ticket, TPK, show_keys=True)["opened"]
    from mikey.modes.ticket import TicketGrant

    grant = TicketGrant.from_key_blob(ticket, GRANT_BLOB)
    assert shown["mpk_i"] == grant.mpk_i.hex() and shown["session_keys"][0]["key"] == grant.session_keys[0].key.hex()
    wrong = describe_ticket(ticket, bytes(16))
    assert "opened" not in wrong and "does not open with this TPK" in wrong["problems"][0]
    import dataclasses

    broken = describe_ticket(dataclasses.replace(ticket, ticket_data=ticket.ticket_data[:7]), TPK)
    assert broken["problems"] and "opened" not in broken


@FUZZ
@given(MUTATIONS)
def test_describe_ticket_never_raises(m: tuple[int, int, int, int]) -> None:
    import dataclasses

    from mikey.modes.ticket import describe_ticket
    from mikey.wire import TicketPayload

    ticket = Message.decode(FLOW.transfer_init).find(TicketPayload)
    assert ticket is not None
    bad = dataclasses.replace(ticket, ticket_data=mutate(ticket.ticket_data, *m))
    d = describe_ticket(bad, TPK)
    assert ("opened" in d) == (bad.ticket_data == ticket.ticket_data)
