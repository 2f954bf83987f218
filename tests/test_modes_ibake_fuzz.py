"""MIKEY-IBAKE receive paths under mutated input (hypothesis): only MikeyError escapes, and no mutation of
a MAC-covered message (R_MESSAGE_2, REQUEST_KEY_PSK, REQUEST_KEY_RESP) or of an IBE ciphertext is accepted.

The first three IBAKE messages carry T, RAND and the HDR in the clear without a MAC (RFC 6267 §4.2.2
protects only what is IBE-encrypted), so a mutation there may be accepted; R_MESSAGE_2's V then exposes it.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mikey.crypto import ibe
from mikey.errors import MikeyError
from mikey.modes.ibake import (
    IbakeCredentials,
    IbakeInitiator,
    IbakeResponder,
    IbakeUpdateInitiator,
    IbakeUpdateResponder,
    answer_policy,
    open_deferred,
)
from mikey.modes.ibake_keys import IbakeKeyRequest, IbakeKms
from mikey.modes.results import ExchangeResult
from mikey.wire import EskPayload, IbakePayload, Message

NOW = 1_700_000_000.0
WHEN = dt.datetime.fromtimestamp(NOW, dt.UTC)
ALICE, BOB, VM = b"sip:alice@example.org", b"sip:bob@example.org", b"sip:vm@example.org"
KMS_ID = b"kms.example.org"
PSKS = {ALICE: b"a" * 16, BOB: b"b" * 16}
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

PARAMS, MASTER = ibe.bf_setup(1024)
CREDS = {n: IbakeCredentials(PARAMS, [ibe.bf_extract_for_period(MASTER, n, WHEN)]) for n in (ALICE, BOB, VM)}


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """A seeded bit flip, octet change, insertion, deletion, truncation or splice of *data*."""
    b = bytearray(data)
    kind = draw(st.integers(0, 5))
    pos = draw(st.integers(0, len(b) - 1))
    if kind == 0:
        b[pos] ^= 1 << draw(st.integers(0, 7))
    elif kind == 1:
        b[pos] = draw(st.integers(0, 255))
    elif kind == 2:
        b[pos:pos] = draw(st.binary(min_size=1, max_size=4))
    elif kind == 3:
        del b[pos : pos + draw(st.integers(1, 8))]
    elif kind == 4:
        del b[pos:]
    else:
        other = draw(st.integers(0, len(b) - 1))
        b[pos:pos] = b[other : other + draw(st.integers(1, 16))]
    return bytes(b)


def _ibake(raw: bytes) -> bytes | None:
    p = Message.decode(raw).find(IbakePayload)
    return p.encr_data if p is not None else None


def _pair() -> tuple[IbakeInitiator, IbakeResponder, bytes, bytes, bytes]:
    i, r = IbakeInitiator(CREDS[ALICE], ALICE, BOB), IbakeResponder(CREDS[BOB])
    m1 = i.create_message(NOW)
    r1 = r.receive(m1, NOW).response
    assert r1 is not None
    i2 = i.receive(r1, NOW).response
    assert i2 is not None
    return i, r, m1, r1, i2


M1 = _pair()[2]


@FUZZ
@given(st.data())
def test_responder_i_message_1(data: st.DataObject) -> None:
    bad = data.draw(mutated(M1))
    try:
        IbakeResponder(CREDS[BOB]).receive(bad, NOW)
    except MikeyError as exc:
        assert exc.error_message is not None or exc.err_no is None
        return
    assert _ibake(bad) == _ibake(M1)  # the ciphertext itself cannot change and still be accepted


_INITIATOR = IbakeInitiator(CREDS[ALICE], ALICE, BOB)
_R1 = IbakeResponder(CREDS[BOB]).receive(_INITIATOR.create_message(NOW), NOW).response or b""


@FUZZ
@given(st.data())
def test_initiator_r_message_1(data: st.DataObject) -> None:
    bad = data.draw(mutated(_R1))
    if bad == _R1:
        return
    try:
        _INITIATOR.receive(bad, NOW)
    except MikeyError:
        return
    assert _ibake(bad) == _ibake(_R1)


@FUZZ
@given(st.data())
def test_responder_i_message_2(data: st.DataObject) -> None:
    _, r, _, _, i2 = _pair()
    bad = data.draw(mutated(i2))
    try:
        r.receive(bad, NOW)
    except MikeyError:
        return
    assert _ibake(bad) == _ibake(i2)


_PENDING = IbakeInitiator(CREDS[ALICE], ALICE, BOB)
_RESP = IbakeResponder(CREDS[BOB])
_I2 = _PENDING.receive(_RESP.receive(_PENDING.create_message(NOW), NOW).response or b"", NOW).response or b""
_R2 = _RESP.receive(_I2, NOW).response or b""


@FUZZ
@given(st.data())
def test_initiator_r_message_2_never_accepts_a_mutation(data: st.DataObject) -> None:
    bad = data.draw(mutated(_R2))
    if bad == _R2:
        return
    with pytest.raises(MikeyError):
        _PENDING.receive(bad, NOW)


_KMS = IbakeKms(MASTER, PSKS, identity=KMS_ID, periods=1)
_REQUEST = IbakeKeyRequest(PSKS[ALICE], [ALICE], KMS_ID, PARAMS).create_message(NOW)


@FUZZ
@given(st.data())
def test_kms_never_accepts_a_mutated_request(data: st.DataObject) -> None:
    bad = data.draw(mutated(_REQUEST))
    if bad == _REQUEST:
        return
    with pytest.raises(MikeyError) as e:
        _KMS.receive(bad, NOW)
    assert e.value.error_message is not None  # the KMS answers every refusal with an Error message


@FUZZ
@given(st.data())
def test_user_never_accepts_a_mutated_key_response(data: st.DataObject) -> None:
    req = IbakeKeyRequest(PSKS[BOB], [BOB], KMS_ID, PARAMS)
    good = _KMS.handle(req.create_message(NOW), NOW)
    assert good is not None
    bad = data.draw(mutated(good))
    if bad == good:
        return
    with pytest.raises(MikeyError):
        req.receive(bad, NOW)


def _deferred() -> tuple[bytes, bytes]:
    i = IbakeInitiator(CREDS[ALICE], ALICE, BOB, answers=answer_policy(mailboxes={VM}))
    vm = IbakeResponder(CREDS[VM], VM, mailbox=True)
    m1 = i.create_message(NOW)
    i2 = i.receive(vm.receive(m1, NOW).response or b"", NOW).response or b""
    return m1, i2


D1, D2 = _deferred()


@FUZZ
@given(st.data())
def test_open_deferred(data: st.DataObject) -> None:
    bad = data.draw(mutated(D2))
    try:
        open_deferred([D1, bad], CREDS[BOB], BOB, now=NOW)
    except MikeyError:
        return
    esk = Message.decode(bad).find(EskPayload)
    good = Message.decode(D2).find(EskPayload)
    assert esk is not None and good is not None and esk.encr_data == good.encr_data


def _established() -> tuple[ExchangeResult, ExchangeResult]:
    i, r = IbakeInitiator(CREDS[ALICE], ALICE, BOB), IbakeResponder(CREDS[BOB])
    r1 = r.receive(i.create_message(NOW), NOW).response or b""
    i2 = i.receive(r1, NOW).response or b""
    i.receive(r.receive(i2, NOW).response or b"", NOW)
    assert r.result is not None
    return i.results[0], r.result


EST_I, EST_R = _established()


def _update() -> tuple[IbakeUpdateInitiator, bytes, bytes]:
    up = IbakeUpdateInitiator(CREDS[ALICE], EST_I, ALICE)
    m = up.create_message(NOW)
    return up, m, IbakeUpdateResponder(CREDS[BOB], EST_R, BOB).receive(m, NOW).response or b""


UPDATE = _update()[1]


@FUZZ
@given(st.data())
def test_update_responder(data: st.DataObject) -> None:
    bad = data.draw(mutated(UPDATE))
    try:
        IbakeUpdateResponder(CREDS[BOB], EST_R, BOB).receive(bad, NOW)
    except MikeyError:
        return
    assert _ibake(bad) == _ibake(UPDATE)


@FUZZ
@given(st.data())
def test_update_initiator_never_accepts_a_mutation(data: st.DataObject) -> None:
    up, _, answer = _update()
    bad = data.draw(mutated(answer))
    if bad == answer:
        return
    with pytest.raises(MikeyError):
        up.receive(bad, NOW)
