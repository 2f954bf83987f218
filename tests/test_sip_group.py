"""One group key for a focus and three members, in memory (mikey.sip.group; RFC 3830 §8, RFC 4738 §3.2,
RFC 6509 + 3GPP TS 33.180 §7.3, RFC 6043 §9): every member derives the same SRTP keys for every stream
and decrypts every other member's SRTP; the Diffie-Hellman methods give pairwise keys and are not served."""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import pytest

from mikey.cli.plugins import PLUGINS
from mikey.crypto import prf
from mikey.errors import AuthenticationError, UnspecifiedError
from mikey.session import CryptoSessionBundle
from mikey.sip.group import (
    NOT_SERVED,
    SERVED,
    GroupKey,
    GroupKeyingError,
    GroupKeyServer,
    GroupStream,
    focus_dials_out,
    group_support,
    make_group_credentials,
    member_initiator,
    member_responder,
    member_view,
    session_fingerprints,
)

FOCUS = "sip:focus@mikey.test"
MEMBERS = ("sip:alice@mikey.test", "sip:bob@mikey.test", "sip:carol@mikey.test")
LATE = "sip:dave@mikey.test"
SSRCS = {MEMBERS[0]: 0x0A11CE01, MEMBERS[1]: 0x0B0B0B02, MEMBERS[2]: 0x0CA201E3}
NOW = time.time()


def rtp(ssrc: int, seq: int, payload: bytes, ts: int = 0) -> bytes:
    """A minimal RTP packet (RFC 3550 §5.1): V=2, PT 0 (PCMU)."""
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts, ssrc) + payload


@pytest.fixture(scope="module", params=sorted(SERVED))
def group(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    method: str = request.param
    creds = make_group_credentials(method, tmp_path_factory.mktemp(method), FOCUS, [*MEMBERS, LATE], now=NOW)
    return method, creds


def key_member(server: GroupKeyServer, method: str, creds: dict[str, Any], member: str, now: float,
               key: GroupKey | None = None) -> Any:
    """One member keyed by the focus, as the SIP offer/answer would carry it; the member's view of the group."""
    key = key or server.key
    if focus_dials_out(method):
        initiator = server.initiator(member, now, key=key)
        outcome = member_responder(method, creds, member).receive(initiator.create_message(now), now)
        if outcome.response is not None:
            server.note_member_result(initiator.receive(outcome.response, now))
        return member_view(method, outcome.result, key.streams)
    request = member_initiator(method, creds, member)
    outcome = server.respond(request.create_message(now), now, key=key)
    assert outcome.response is not None
    return member_view(method, request.receive(outcome.response, now), key.streams)


def test_every_member_decrypts_every_other(group: tuple[str, dict[str, Any]]) -> None:
    method, creds = group
    key = GroupKey.new([GroupStream(m, SSRCS[m]) for m in MEMBERS])
    server = GroupKeyServer(method, key, creds)
    views = {m: key_member(server, method, creds, m, NOW) for m in MEMBERS}
    focus = server.focus_view()
    expected = session_fingerprints(focus)
    assert sorted(expected) == sorted(SSRCS.values())
    for m, view in views.items():
        assert session_fingerprints(view) == expected, m
    # Distinct streams have distinct keys (CS ID in the RFC 3830 §4.1.3 label; SAKKE: the sender's GUK-ID).
    assert len(set(expected.values())) == len(MEMBERS)
    bundles = {m: CryptoSessionBundle(v) for m, v in views.items()}
    for sender in MEMBERS:
        send_cs = bundles[sender].find(SSRCS[sender])
        assert send_cs is not None
        payload = f"{sender} speaking".encode()
        packet = bundles[sender].sender(send_cs.cs_id).protect(rtp(SSRCS[sender], 7, payload))
        assert payload not in packet
        for receiver in MEMBERS:
            if receiver == sender:
                continue
            cs = bundles[receiver].find(SSRCS[sender])
            assert cs is not None
            assert bundles[receiver].receiver(cs.cs_id).unprotect(packet)[12:] == payload


def test_sakke_gmk_uses_the_senders_guk_id(tmp_path: Path) -> None:
    """TS 33.180 §7.3.2: each member's I_MESSAGE has its own GUK-ID as CSB ID; a stream's keys use the sender's."""
    creds = make_group_credentials("sakke", tmp_path, FOCUS, MEMBERS, now=NOW)
    key = GroupKey.new([GroupStream(m, SSRCS[m]) for m in MEMBERS])
    server = GroupKeyServer("sakke", key, creds)
    for m in MEMBERS:
        initiator = server.initiator(m, NOW)
        outcome = member_responder("sakke", creds, m).receive(initiator.create_message(NOW), NOW)
        assert outcome.result.csb_id == prf.guk_id(key.tgk, key.gmk_id, m)
        assert outcome.result.extras["key_id"] == f"{key.gmk_id:08x}"
        view = member_view("sakke", outcome.result, key.streams)
        for i, m2 in enumerate(MEMBERS, 1):
            # The member's own stream keys under its own GUK-ID; the others' under theirs, not the member's CSB.
            same = view.session(i).fingerprint() == outcome.result.session(i).fingerprint()
            assert same == (m2 == m)
            assert view.session(i).ssrc == SSRCS[m2]


def test_broadcast_late_joiner_gets_the_current_roc(group: tuple[str, dict[str, Any]]) -> None:
    """One sender near the SEQ wrap with ROC 5; a member keyed after the wrap with ROC 6 decrypts its first
    packet; one keyed with the stale ROC 5 fails authentication on every packet (RFC 3711 §3.3.1)."""
    method, creds = group
    sender = GroupStream(FOCUS, 0x5E4D0001, roc=5)
    key = GroupKey.new([sender])
    server = GroupKeyServer(method, key, creds)
    early = {m: key_member(server, method, creds, m, NOW) for m in MEMBERS}
    if method == "ticket":
        assert server.focus_view().crypto_sessions[0].roc == 5
    out = CryptoSessionBundle(server.focus_view()).sender(1)
    inbound = {m: CryptoSessionBundle(v).receiver(1) for m, v in early.items()}
    packets = [out.protect(rtp(sender.ssrc, seq, b"tone %d" % seq)) for seq in range(65530, 65536 + 12)]
    for m, ctx in inbound.items():
        assert [ctx.unprotect(p)[12:] for p in packets] == [b"tone %d" % s for s in range(65530, 65548)], m
    assert out.roc() == 6
    current = key.with_roc(sender.ssrc, out.roc())
    late = key_member(server, method, creds, LATE, NOW + 1, key=current)
    assert late.crypto_sessions[0].roc == 6
    assert session_fingerprints(late) == session_fingerprints(early[MEMBERS[0]])
    more = [out.protect(rtp(sender.ssrc, seq & 0xFFFF, b"tone %d" % seq)) for seq in range(65536 + 12, 65536 + 20)]
    late_ctx = CryptoSessionBundle(late).receiver(1)
    assert [late_ctx.unprotect(p)[12:] for p in more] == [b"tone %d" % s for s in range(65548, 65556)]
    stale = key_member(server, method, creds, LATE, NOW + 2, key=key)  # the ROC of the call's start
    stale_ctx = CryptoSessionBundle(stale).receiver(1)
    failures = 0
    for p in more:
        try:
            stale_ctx.unprotect(p)
        except AuthenticationError:
            failures += 1
    assert failures == len(more)


@pytest.mark.parametrize("method", sorted(NOT_SERVED))
def test_pairwise_methods_are_not_served(method: str, tmp_path: Path) -> None:
    reason = group_support(method)
    assert reason is not None and "relay focus" in reason and "RFC" in reason
    with pytest.raises(GroupKeyingError, match="relay focus"):
        focus_dials_out(method)
    with pytest.raises(GroupKeyingError):
        make_group_credentials(method, tmp_path, FOCUS, MEMBERS)
    with pytest.raises(GroupKeyingError):
        GroupKeyServer(method, GroupKey.new([GroupStream(FOCUS, 1)]), {"method": method, "focus": FOCUS})


@pytest.mark.parametrize("method", ["dh", "dhhmac"])
def test_dh_focus_would_hold_a_different_key_per_member(method: str, tmp_path: Path) -> None:
    """Why: two exchanges of the focus with two members give two TGKs (RFC 3830 §3.3, RFC 4650 §1)."""
    plugin = next(p for p in PLUGINS if p.name == method)
    creds = plugin.demo_credentials(tmp_path)
    tgks = []
    for ssrc in (0x1111, 0x2222):
        initiator = plugin.demo_initiator(creds, ssrc)
        outcome = plugin.demo_responder(creds, ssrc + 1).receive(initiator.create_message(NOW), NOW)
        assert outcome.response is not None
        result = initiator.receive(outcome.response, NOW)
        assert result.tgk == outcome.result.tgk
        tgks.append(result.tgk)
    assert tgks[0] != tgks[1]


def test_bad_group_input(tmp_path: Path) -> None:
    with pytest.raises(GroupKeyingError, match="unknown method"):
        group_support("sdes")
    with pytest.raises(GroupKeyingError, match="share an SSRC"):
        GroupKey.new([GroupStream(MEMBERS[0], 5), GroupStream(MEMBERS[1], 5)])
    with pytest.raises(GroupKeyingError, match="32-bit"):
        GroupStream(MEMBERS[0], 1 << 32)
    learning = GroupKey.new([GroupStream(MEMBERS[0], 5), GroupStream(MEMBERS[1], 0)])  # 0: learnt from the SDP
    assert learning.with_ssrc(MEMBERS[1], 9).stream(9).uri == MEMBERS[1]
    with pytest.raises(GroupKeyingError, match="another member's"):
        learning.with_ssrc(MEMBERS[1], 5)
    with pytest.raises(GroupKeyingError, match="non-zero"):
        learning.with_ssrc(MEMBERS[1], 0)
    with pytest.raises(GroupKeyingError, match="sends no stream"):
        learning.with_ssrc(LATE, 7)
    key = GroupKey.new([GroupStream(MEMBERS[0], 5)])
    with pytest.raises(GroupKeyingError, match="not a stream"):
        key.with_roc(6, 1)
    assert key.tgk.hex() not in repr(key)
    creds = make_group_credentials("psk", tmp_path, FOCUS, MEMBERS[:2])
    server = GroupKeyServer("psk", key, creds)
    with pytest.raises(GroupKeyingError, match="no psk credentials"):
        server.initiator(LATE, NOW)
    with pytest.raises(GroupKeyingError, match="not 'pk'"):
        GroupKeyServer("pk", key, creds)
    with pytest.raises(GroupKeyingError, match="does not respond"):
        server.respond(b"\x01", NOW)
    # A member whose exchange did not key the group's streams is refused by member_view.
    other = GroupKey.new([GroupStream(MEMBERS[1], 9)])
    initiator = GroupKeyServer("psk", other, creds).initiator(MEMBERS[0], NOW)
    outcome = member_responder("psk", creds, MEMBERS[0]).receive(initiator.create_message(NOW), NOW)
    with pytest.raises(UnspecifiedError, match="did not key"):
        member_view("psk", outcome.result, key.streams)
