"""RTSP over TCP with the media interleaved in the connection (RFC 2326 §10.12): decode, keys, srtp-decrypt.

Cameras (ONVIF) often send RTP over the RTSP connection: ``$``, channel, 16-bit length, packet.
The capture here has the DESCRIBE reply with the I_MESSAGE, the SETUP with the KeyMgmt
verification message and ``interleaved=0-1``, then SRTP on channel 0 and SRTCP on channel 1 in
segments that split frames and hold several, and one more RTSP message carrying MIKEY between them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_capture import NOW, PSK, A, B, pcap, tcp
from test_capture_rfc4567 import psk_exchange
from test_capture_srtp import rtcp_sr, rtp

from mikey.capture import InterleavedStreams, find_mikey, read_packets
from mikey.cli.main import main
from mikey.cli.srtp_decrypt import StreamKey, decrypt_capture
from mikey.errors import MikeyDecodeError
from mikey.offer_answer import make_offer, rtsp_keymgmt_header
from mikey.srtp import SrtpPolicyParams

CAM, CLIENT = B, A
SSRC = 0xCA3E0001


def frame(channel: int, data: bytes) -> bytes:
    return b"$" + bytes([channel]) + len(data).to_bytes(2, "big") + data


def camera_capture() -> tuple[bytes, list[bytes], bytes]:
    i_msg, r_msg, bundle = psk_exchange([SSRC])
    i2, _, _ = psk_exchange([SSRC + 1])
    sdp = make_offer(i_msg).encode()
    describe_ok = (b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(sdp)) + sdp
    setup = (f"SETUP rtsp://cam.example/s1/track1 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/SAVP/TCP;interleaved=0-1\r\n"
             f"KeyMgmt: {rtsp_keymgmt_header(r_msg, 'rtsp://cam.example/s1')}\r\n\r\n").encode()
    setup_ok = b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 0A1B2C3D\r\nTransport: RTP/SAVP/TCP;interleaved=0-1\r\n\r\n"
    later = (f"SET_PARAMETER rtsp://cam.example/s1 RTSP/1.0\r\nCSeq: 5\r\nSession: 0A1B2C3D\r\n"
             f"KeyMgmt: {rtsp_keymgmt_header(i2, 'rtsp://cam.example/s1')}\r\n\r\n").encode()
    sender = bundle.sender(1)
    plain = [rtp(SSRC, 500 + i, bytes([0x10 + i]) * (100 + 7 * i)) for i in range(6)]
    sr = rtcp_sr(SSRC)
    media = b"".join(frame(0, sender.protect(p)) for p in plain[:3]) + frame(1, sender.protect_rtcp(sr))
    media2 = b"".join(frame(0, sender.protect(p)) for p in plain[3:])
    downstream = describe_ok + setup_ok + media + later + media2  # camera -> client, one TCP direction
    cuts = [0, 150, len(describe_ok), len(describe_ok) + len(setup_ok) + 5, len(describe_ok) + len(setup_ok) + 200,
            len(downstream) - len(media2) - len(later) + 10, len(downstream) - 50, len(downstream)]
    frames = [tcp(CAM, 554, CLIENT, 50000, 9000 + a, downstream[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]
    frames.insert(2, tcp(CLIENT, 50000, CAM, 554, 100, setup))  # after the DESCRIBE reply, before its answer
    return pcap(frames, t0=NOW + 1), plain, sr


def test_find_mikey_steps_over_interleaved_frames() -> None:
    data, _, _ = camera_capture()
    found = find_mikey(data)
    assert [(f.location, f.rtsp_session) for f in found] == [
        ("SDP session level", "0A1B2C3D"), ("KeyMgmt header (rtsp://cam.example/s1)", "0A1B2C3D"),
        ("KeyMgmt header (rtsp://cam.example/s1)", "0A1B2C3D")]
    assert found[2].start_line.startswith("SET_PARAMETER")  # after interleaved data, in the middle of a segment


def test_interleaved_streams_give_the_frames() -> None:
    data, _, _ = camera_capture()
    streams = InterleavedStreams()
    got = [(f.channel, len(f.data)) for p in read_packets(io.BytesIO(data)) for f in streams.feed(p)]
    assert [c for c, _ in got] == [0, 0, 0, 1, 0, 0, 0]
    assert [n for c, n in got if c == 0] == [100 + 7 * i + 12 + 10 for i in range(6)]


def test_srtp_decrypt_writes_interleaved_media_as_udp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, plain, sr = camera_capture()
    path = tmp_path / "camera.pcap"
    path.write_bytes(data)
    out = tmp_path / "plain.pcap"
    assert main(["--json", "srtp-decrypt", str(path), "--keys-from", str(path), "--mode", "psk", "--psk", PSK.hex(),
                 "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["streams"] == {
        f"{SSRC:08x}": {"rtp": 6, "rtcp": 1, "rtp_auth_failures": 0, "rtcp_auth_failures": 0}}
    rows = []
    for _, buf in dpkt.pcap.Reader(io.BytesIO(out.read_bytes())):
        ip = dpkt.ethernet.Ethernet(buf).data
        assert isinstance(ip.data, dpkt.udp.UDP) and (ip.data.sport, ip.data.dport) == (554, 50000)
        assert ip.len == len(bytes(ip)) and ip.data.ulen == 8 + len(ip.data.data)
        rows.append(bytes(ip.data.data))
    assert rows == plain[:3] + [sr] + plain[3:]


_SEED, _, _ = camera_capture()
_KEYS = [StreamKey(SSRC, 0, bytes(16), bytes(14), SrtpPolicyParams()), StreamKey(0, 0, bytes(16), bytes(14),
                                                                                 SrtpPolicyParams())]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_SEED) - 1), st.integers(0, 255)), max_size=8), st.integers(0, 3000))
def test_fuzz_srtp_decrypt_mutated_camera_capture(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_SEED[: max(24, len(_SEED) - cut)])
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    try:
        counts = decrypt_capture(io.BytesIO(bytes(data)), io.BytesIO(), _KEYS)
    except MikeyDecodeError:
        return
    assert all(0 <= s < 1 << 32 for s in counts)  # only SSRCs come out; no other exception
