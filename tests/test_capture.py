"""Finding MIKEY messages in pcap/pcapng captures (RFC 4567 §3.1, §3.2; RFC 3830 §7) and ``mikey decode CAPTURE``."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mikey.capture import find_mikey, is_capture
from mikey.cli.main import main
from mikey.errors import MikeyDecodeError
from mikey.modes.base import CryptoSessionSpec
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.offer_answer import make_answer, make_offer, rtsp_keymgmt_header

NOW = 1_700_000_000.0
PSK = b"k" * 16
A, B = "10.0.0.1", "10.0.0.2"


def _ip(src: str, dst: str, l4: dpkt.Packet, proto: int) -> bytes:
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, data=l4, ttl=64)
    eth = dpkt.ethernet.Ethernet(src=b"\x02\x00\x00\x00\x00\x01", dst=b"\x02\x00\x00\x00\x00\x02",
                                 type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
    return bytes(eth)


def udp(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    seg = dpkt.udp.UDP(sport=sport, dport=dport, ulen=8 + len(payload), data=payload)
    return _ip(src, dst, seg, dpkt.ip.IP_PROTO_UDP)


def tcp(src: str, sport: int, dst: str, dport: int, seq: int, payload: bytes) -> bytes:
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, flags=dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, data=payload)
    return _ip(src, dst, seg, dpkt.ip.IP_PROTO_TCP)


def pcap(frames: list[bytes], *, ng: bool = False, t0: float = NOW) -> bytes:
    out = io.BytesIO()
    writer = dpkt.pcapng.Writer(out) if ng else dpkt.pcap.Writer(out)
    for i, f in enumerate(frames):
        writer.writepkt(f, ts=t0 + i)
    return out.getvalue()


def sip(first: str, call_id: str, sdp: str) -> bytes:
    body = sdp.encode()
    return (
        f"{first}\r\nVia: SIP/2.0/UDP {A}:5060;branch=z9hG4bK1\r\nFrom: <sip:alice@example.org>;tag=1\r\n"
        f"To: <sip:bob@example.org>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def psk_exchange() -> tuple[bytes, bytes]:
    initiator = PskInitiator(PSK, crypto_sessions=[CryptoSessionSpec(ssrc=0xAAAA0001)], v=True)
    i_message = initiator.create_message(NOW)
    outcome = PskResponder(PSK).receive(i_message, NOW)
    assert outcome.response is not None
    return i_message, outcome.response


def sip_capture() -> tuple[bytes, bytes, bytes]:
    i_msg, r_msg = psk_exchange()
    invite = sip("INVITE sip:bob@example.org SIP/2.0", "call-42@example.org", make_offer(i_msg))
    ok = sip("SIP/2.0 200 OK", "call-42@example.org", make_answer(r_msg))
    return pcap([udp(A, 5060, B, 5060, invite), udp(B, 5060, A, 5060, ok)]), i_msg, r_msg


def rtsp_capture() -> tuple[bytes, bytes, bytes]:
    """DESCRIBE reply with the SDP offer split over three TCP segments (one out of order), then SETUP with KeyMgmt."""
    i_msg, r_msg = psk_exchange()
    sdp = make_offer(i_msg).encode()
    reply = (
        "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Base: rtsp://cam.example/s1/\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n"
    ).encode() + sdp
    setup = (
        "SETUP rtsp://cam.example/s1/trackID=0 RTSP/1.0\r\nCSeq: 3\r\n"
        "Transport: RTP/SAVP;unicast;client_port=4588-4589\r\n"
        f"KeyMgmt: {rtsp_keymgmt_header(r_msg, 'rtsp://cam.example/s1')}\r\n\r\n"
    ).encode()
    setup_reply = b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 12345678;timeout=60\r\n\r\n"
    s_seq, c_seq = 1000, 5000
    n1, n2 = 40, 120
    frames = [
        tcp(B, 554, A, 40000, s_seq, reply[:n1]),
        tcp(B, 554, A, 40000, s_seq + n2, reply[n2:]),  # out of order
        tcp(B, 554, A, 40000, s_seq + n1, reply[n1:n2]),
        tcp(B, 554, A, 40000, s_seq + n1, reply[n1:n2]),  # retransmission
        tcp(A, 40000, B, 554, c_seq, setup[:30]),
        tcp(A, 40000, B, 554, c_seq + 30, setup[30:]),
        tcp(B, 554, A, 40000, s_seq + len(reply), setup_reply),
    ]
    return pcap(frames), i_msg, r_msg


def test_magic_numbers() -> None:
    data, _, _ = sip_capture()
    assert is_capture(data)
    assert is_capture(pcap([], ng=True))
    assert is_capture(bytes.fromhex("a1b23c4d") + bytes(20))
    assert not is_capture(b"\x01\x00\x00\x00")


@pytest.mark.parametrize("ng", [False, True])
def test_sip_over_udp(ng: bool) -> None:
    i_msg, r_msg = psk_exchange()
    invite = sip("INVITE sip:bob@example.org SIP/2.0", "call-42@example.org", make_offer(i_msg))
    ok = sip("SIP/2.0 200 OK", "call-42@example.org", make_answer(r_msg))
    found = find_mikey(pcap([udp(A, 5060, B, 5060, invite), udp(B, 5060, A, 5060, ok)], ng=ng))
    assert [f.data for f in found] == [i_msg, r_msg]
    assert [(f.packet, f.carrier, f.call_id, f.location) for f in found] == [
        (1, "SIP", "call-42@example.org", "SDP session level"),
        (2, "SIP", "call-42@example.org", "SDP session level"),
    ]
    assert found[0].to_dict()["src"] == "10.0.0.1:5060"
    assert found[1].time == pytest.approx(NOW + 1)


def test_rtsp_over_tcp_reassembled_and_session_attached() -> None:
    data, i_msg, r_msg = rtsp_capture()
    found = find_mikey(data)
    assert [f.data for f in found] == [i_msg, r_msg]
    assert found[0].carrier == "RTSP" and found[0].location == "SDP session level"
    assert found[0].packet == 3  # the segment that completed the message
    assert found[1].location == "KeyMgmt header (rtsp://cam.example/s1)"
    assert [f.rtsp_session for f in found] == ["12345678", "12345678"]


def test_raw_udp_2269() -> None:
    i_msg, r_msg = psk_exchange()
    found = find_mikey(pcap([udp(A, 30000, B, 2269, i_msg), udp(B, 2269, A, 30000, r_msg),
                             udp(A, 2270, B, 2271, i_msg)]))
    assert [(f.packet, f.carrier, f.data) for f in found] == [(1, "UDP", i_msg), (2, "UDP", r_msg)]


def test_cli_decode_capture_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, _, _ = sip_capture()
    path = tmp_path / "call.pcap"
    path.write_bytes(data)
    assert main(["decode", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: 2 MIKEY messages" in out
    assert "packet 1, 2023-11-14T22:13:20.000000+00:00, 10.0.0.1:5060 -> 10.0.0.2:5060 (udp), " \
           "SIP SDP session level, Call-ID call-42@example.org" in out
    assert out.count("MIKEY message, ") == 2
    assert main(["--json", "decode", f"@{path}"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["ok"] is True
    assert [(m["packet"], m["call_id"], m["payloads"][0]["type"]) for m in obj["messages"]] == [
        (1, "call-42@example.org", "HDR"), (2, "call-42@example.org", "HDR")]


def test_cli_decode_empty_and_bad_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(pcap([udp(A, 1, B, 2, b"hello")]))
    assert main(["decode", str(empty)]) == 1
    assert "0 MIKEY messages" in capsys.readouterr().out
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(bytes.fromhex("a1b2c3d4") + b"\x00" * 7)
    assert main(["decode", str(bad)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("cannot read capture: ") and out.count("\n") == 1


def test_tcp_flow_memory_bounded() -> None:
    junk = b"X" * 1400
    frames = [tcp(A, 1, B, 2, 10_000 + 3000 * i, junk) for i in range(1000)]  # all out of order: never contiguous
    assert find_mikey(pcap(frames)) == []


_SEED, _, _ = sip_capture()
_RTSP, _, _ = rtsp_capture()


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([_SEED, _RTSP, pcap([], ng=True)]), st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)),
                                                           max_size=8), st.integers(0, 5000))
def test_fuzz_mutated_captures(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed[: max(4, len(seed) - cut)])
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    try:
        find_mikey(bytes(data))
    except MikeyDecodeError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([bytes.fromhex("a1b2c3d4"), bytes.fromhex("d4c3b2a1"), bytes.fromhex("0a0d0d0a")]),
       st.binary(max_size=300))
def test_fuzz_random_captures(magic: bytes, rest: bytes) -> None:
    try:
        find_mikey(magic + rest)
    except MikeyDecodeError:
        pass
