"""Fuzzing the decoder: random and mutated bytes raise only MikeyDecodeError, and what decodes re-encodes exactly.

Whatever decodes must also survive validate() and to_dict() (raising nothing but
MikeyError), since both run on untrusted input in the responders.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_samples import sample_messages, sample_sub_payload_chains

from mikey.errors import MikeyDecodeError, MikeyError
from mikey.wire import (
    GeneralExtensionPayload,
    Message,
    TicketPayload,
    decode_sub_payloads,
    encode_sub_payloads,
    parse_text,
)
from mikey.wire.validate import violations

SEEDS = [m.encode() for m in sample_messages().values()]
SUB_SEEDS = [(encode_sub_payloads(c), c[0].TYPE) for c in sample_sub_payload_chains().values()]
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(raw: bytes) -> None:
    """Decode *raw*; on success, re-encode exactly and run the untrusted-input consumers."""
    try:
        m = Message.decode(raw)
    except MikeyDecodeError as e:
        assert e.err_no == 12
        return
    assert m.encode() == raw
    assert m.raw == raw and len(m.offsets) == len(m.payloads)
    try:
        json.dumps(m.to_dict())
        violations(m)
        for p in m.payloads:
            # typed views reachable from a decoded message
            if hasattr(p, "key_data"):
                try:
                    p.key_data()
                except MikeyDecodeError:
                    pass
            if isinstance(p, GeneralExtensionPayload):
                p.parsed()
            if isinstance(p, TicketPayload):
                try:
                    p.tp_payloads()
                except MikeyDecodeError:
                    pass
    except MikeyError:
        pass


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid message with a few bit flips, octet changes, insertions, deletions or a truncation."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice"]))
        n = len(data)
        if kind == "flip" and n:
            i = draw(st.integers(0, n - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and n:
            data[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
        elif kind == "insert":
            i = draw(st.integers(0, n))
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and n:
            i = draw(st.integers(0, n - 1))
            del data[i : i + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[draw(st.integers(0, n)) :]
        elif kind == "splice":
            other = draw(st.sampled_from(SEEDS))
            i = draw(st.integers(0, n))
            j = draw(st.integers(0, len(other)))
            data[i:] = other[j:]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(raw: bytes) -> None:
    _check(raw)


@FUZZ
@given(st.binary(min_size=1, max_size=200))
def test_random_bytes_after_a_plausible_header(tail: bytes) -> None:
    # version 1, a registered data type, any next payload, SRTP-ID map with #CS 0: reach the chain.
    _check(bytes([1, tail[0] % 27, tail[0] % 27, 0, 0, 0, 0, 1, 0, 0]) + tail[1:])


@FUZZ
@given(mutated())
def test_mutated_messages(raw: bytes) -> None:
    _check(raw)


@FUZZ
@given(st.sampled_from(SEEDS), st.integers(0, 10_000))
def test_every_cut_of_a_message(seed: bytes, cut: int) -> None:
    _check(seed[: cut % (len(seed) + 1)])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SUB_SEEDS), st.binary(max_size=8), st.integers(0, 200), st.integers(0, 255))
def test_sub_payload_chains(seed: tuple[bytes, int], extra: bytes, cut: int, first: int) -> None:
    raw, ptype = seed
    for data, t in ((raw[: cut % (len(raw) + 1)] + extra, ptype), (raw, first), (extra, ptype)):
        try:
            subs = decode_sub_payloads(data, t)
        except MikeyDecodeError:
            continue
        assert encode_sub_payloads(subs) == data
        for s in subs:
            json.dumps(s.to_dict())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_key_id_view(data: bytes) -> None:
    g = GeneralExtensionPayload(3, data)
    try:
        entries = g.parse_key_ids()
    except MikeyDecodeError:
        assert g.parsed() is None
        return
    assert GeneralExtensionPayload.key_ids(entries).data == data


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.text(alphabet="0123456789abcdefABCDEF+/= \nmikey:", max_size=60)))
def test_parse_text(text: str) -> None:
    try:
        out = parse_text(text)
    except MikeyDecodeError:
        return
    assert isinstance(out, bytes)
