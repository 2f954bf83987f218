"""The buffer decoders (``pull``) of the RFC 6043 payloads TR, IDR, RANDR and TICKET against the RFC layouts.

A reference reader written straight from RFC 6043 §6.4, §6.6, §6.8 and §6.10 decodes random bodies;
``pull`` must give the same fields and end, and every truncation must be refused (never read short).
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mikey.constants import TS_LENGTHS
from mikey.errors import MikeyDecodeError
from mikey.wire import IdrPayload, RandrPayload, TicketPayload, TrPayload
from mikey.wire.buffer import Writer
from mikey.wire.payloads.base import FieldError, ReadPastEnd, decode_chain


def ref_tr(b: bytes) -> tuple[tuple[int, int, bytes], int]:
    role, t = b[0], b[1]  # TS Role, TS Type (§6.4)
    n = TS_LENGTHS[t]
    return (role, t, b[2:2 + n]), 2 + n


def ref_idr(b: bytes) -> tuple[tuple[int, int, bytes], int]:
    role, t, n = struct.unpack(">BBH", b[:4])  # ID Role, ID Type, ID len (§6.6)
    return (role, t, b[4:4 + n]), 4 + n


def ref_randr(b: bytes) -> tuple[tuple[int, bytes], int]:
    role, n = b[0], b[1]  # RAND Role, RAND len (§6.8)
    return (role, b[2:2 + n]), 2 + n


def ref_ticket(b: bytes) -> tuple[tuple[int, ...] | tuple[object, ...], int]:
    tt, st_, ver = struct.unpack(">HBB", b[:4])  # Ticket type, subtype, version (§6.10)
    word = int.from_bytes(b[4:7], "big")  # PRF Func (7) | Flags (12) | Reserved (5)
    pos, parts = 7, []
    for _ in range(3):  # TP Data, Ticket Data, Initiator Data
        (n,) = struct.unpack(">H", b[pos:pos + 2])
        parts.append(b[pos + 2:pos + 2 + n])
        pos += 2 + n
    return (tt, st_, ver, word >> 17, (word >> 5) & 0xFFF, *parts, word & 0x1F), pos


def bodies(fixed: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.tuples(fixed, st.binary(max_size=4)).map(lambda t: t[0] + t[1])  # trailing bytes after the body


tr_bodies = st.builds(lambda r, t, v: bytes([r, t]) + v[:TS_LENGTHS[t]].ljust(TS_LENGTHS[t], b"\0"),
                      st.integers(0, 255), st.sampled_from(sorted(TS_LENGTHS)), st.binary(min_size=8, max_size=8))
idr_bodies = st.builds(lambda r, t, d: struct.pack(">BBH", r, t, len(d)) + d,
                       st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40))
randr_bodies = st.builds(lambda r, d: bytes([r, len(d)]) + d, st.integers(0, 255), st.binary(max_size=40))
ticket_bodies = st.builds(
    lambda tt, s, v, word, a, b, c: struct.pack(">HBB", tt, s, v) + word.to_bytes(3, "big")
    + b"".join(struct.pack(">H", len(x)) + x for x in (a, b, c)),
    st.integers(0, 0xFFFF), st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFFFF),
    st.binary(max_size=30), st.binary(max_size=30), st.binary(max_size=30))


def fields(p: object) -> tuple[object, ...]:
    if isinstance(p, TrPayload):
        return (int(p.ts_role), int(p.ts_type), p.ts_value)
    if isinstance(p, IdrPayload):
        return (int(p.id_role), int(p.id_type), p.data)
    if isinstance(p, RandrPayload):
        return (int(p.rand_role), p.rand)
    assert isinstance(p, TicketPayload)
    return (int(p.ticket_type), p.subtype, p.version, int(p.prf_func), p.flags, p.tp_data, p.ticket_data,
            p.initiator_data, p.reserved)


CASES = [(TrPayload, ref_tr, tr_bodies), (IdrPayload, ref_idr, idr_bodies), (RandrPayload, ref_randr, randr_bodies),
         (TicketPayload, ref_ticket, ticket_bodies)]


@pytest.mark.parametrize(("cls", "ref", "strategy"), CASES, ids=[c[0].__name__ for c in CASES])
def test_pull_matches_the_rfc_layout(cls: type, ref: object, strategy: st.SearchStrategy[bytes]) -> None:
    @given(bodies(strategy))
    def check(body: bytes) -> None:
        expected, used = ref(body)  # type: ignore[operator]
        payload, end = cls.pull(body, 0, len(body))
        assert fields(payload) == expected and end == used
        w = Writer()
        payload.encode_body(w)
        assert bytes(w.buf) == body[:used]  # and it encodes back to the same octets
        for cut in range(used):  # every truncation is refused
            with pytest.raises((ReadPastEnd, FieldError)):
                cls.pull(body[:cut], 0, cut)

    check()


def test_unknown_ts_type_in_tr_is_a_decode_error() -> None:
    with pytest.raises(FieldError, match="unknown TS type 9"):
        TrPayload.pull(bytes([1, 9, 0, 0]), 0, 4)
    chain = bytes([0]) + bytes([1, 9]) + bytes(8)  # next payload: last; TR with TS type 9
    with pytest.raises((MikeyDecodeError, FieldError, ReadPastEnd)):
        decode_chain(chain, 0, int(TrPayload.TYPE), "test")
