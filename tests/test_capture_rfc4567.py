"""The RFC 4567 §5.3 and §5.4 RTSP examples as captures, through the three commands of issue 13.

The RTSP messages are the RFC's text (DESCRIBE, its 200 OK with the SDP, SETUP with the folded,
lower-case ``keymgmt`` header, the 200 OK naming the Session) with real MIKEY-PSK messages in
place of the elided base64: the server is the Initiator (its I_MESSAGE in the SDP, session level
in §5.3 keying audio and video, one per medium in §5.4) and the client answers with a
verification message in each SETUP.  Then the server's SRTP and SRTCP to the client ports.
``mikey decode`` finds the messages, ``mikey keys`` recovers the keys, ``mikey srtp-decrypt``
writes the original RTP and RTCP, byte for byte.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import pytest
from test_capture import NOW, PSK, A, B, pcap, tcp, udp
from test_capture_srtp import rtcp_sr, rtp

from mikey.cli.main import main
from mikey.modes.base import CryptoSessionSpec
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.session import CryptoSessionBundle

SERVER, CLIENT = B, A
AUDIO, VIDEO = 0x0A0D1001, 0x0F1D2002
URI = "rtsp://movie.example.com/action"


def psk_exchange(ssrcs: list[int]) -> tuple[bytes, bytes, CryptoSessionBundle]:
    server = PskInitiator(PSK, crypto_sessions=[CryptoSessionSpec(ssrc=s) for s in ssrcs], v=True)
    i_msg = server.create_message(NOW)
    r_msg = PskResponder(PSK).receive(i_msg, NOW).response
    assert r_msg is not None
    return i_msg, r_msg, CryptoSessionBundle(server.receive(r_msg, NOW))


def b64(message: bytes) -> str:
    return base64.b64encode(message).decode()


def sdp(session_km: bytes | None, audio_km: bytes | None, video_km: bytes | None) -> bytes:
    lines = ["v=0", "o=actionmovie 2891092738 2891092738 IN IP4 movie.example.com", "s=Action Movie",
             "e=action@movie.example.com", "t=0 0", "c=IN IP4 movie.example.com", f"a=control:{URI}"]
    if session_km is not None:
        lines.append(f"a=key-mgmt:mikey {b64(session_km)}")
    lines += ["m=audio 0 RTP/SAVP 98", "a=rtpmap:98 AMR/8000"]
    if audio_km is not None:
        lines.append(f"a=key-mgmt:mikey {b64(audio_km)}")
    lines += [f"a=control:{URI}/audio", "m=video 0 RTP/SAVP 31", "a=rtpmap:31 H261/90000"]
    if video_km is not None:
        lines.append(f"a=key-mgmt:mikey {b64(video_km)}")
    lines.append(f"a=control:{URI}/video")
    return ("\r\n".join(lines) + "\r\n").encode()


def setup(track: str, cseq: int, port: int, r_msg: bytes | None, uri: str) -> bytes:
    head = f"SETUP {URI}/{track} RTSP/1.0\r\nCSeq: {cseq}\r\nTransport: RTP/SAVP/UDP;unicast;client_port={port}-{port + 1}\r\n"
    if r_msg is not None:  # folded over two lines, as printed in the RFC
        head += f'keymgmt: prot=mikey; uri="{uri}";\r\n         data="{b64(r_msg)}"\r\n'
    return (head + "\r\n").encode()


def setup_ok(cseq: int, port: int, server_port: int) -> bytes:
    return (f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 12345678\r\nTransport: RTP/SAVP/UDP;unicast;"
            f"client_port={port}-{port + 1};\r\n                         server_port={server_port}-{server_port + 1}"
            "\r\n\r\n").encode()


def rtsp_capture(example: int, tmp_path: Path) -> tuple[Path, dict[int, list[bytes]]]:
    """The §5.3 (example 3) or §5.4 (example 4) session, then 4 SRTP packets and one SRTCP SR per medium."""
    if example == 3:
        i_msg, r_msg, bundle = psk_exchange([AUDIO, VIDEO])
        body = sdp(i_msg, None, None)
        setups = [setup("audio", 313, 3056, r_msg, URI), setup("video", 314, 3058, None, URI)]
        senders = {AUDIO: bundle.sender(1), VIDEO: bundle.sender(2)}
    else:
        ia, ra, ba = psk_exchange([AUDIO])
        iv, rv, bv = psk_exchange([VIDEO])
        body = sdp(None, ia, iv)
        setups = [setup("audio", 313, 3056, ra, f"{URI}/audio"), setup("video", 315, 3058, rv, f"{URI}/video")]
        senders = {AUDIO: ba.sender(1), VIDEO: bv.sender(1)}
    describe = "DESCRIBE rtsp://server.example.com/fizzle/foo RTSP/1.0\r\nCSeq: 312\r\nAccept: application/sdp\r\n" \
               "From: user@example.com\r\n\r\n"
    ok = ("RTSP/1.0 200 OK\r\nCSeq: 312\r\nDate: 23 Jan 1997 15:35:06 GMT\r\nContent-Type: application/sdp\r\n"
          f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    c_seq, s_seq = 7000, 9000
    frames = [tcp(CLIENT, 40554, SERVER, 554, c_seq, describe.encode())]
    c_seq += len(describe)
    frames += [tcp(SERVER, 554, CLIENT, 40554, s_seq, ok[:300]), tcp(SERVER, 554, CLIENT, 40554, s_seq + 300, ok[300:])]
    s_seq += len(ok)
    for n, (msg, port) in enumerate(zip(setups, (3056, 3058), strict=True)):
        frames.append(tcp(CLIENT, 40554, SERVER, 554, c_seq, msg))
        c_seq += len(msg)
        reply = setup_ok(313 + n, port, 5000 + 2 * n)
        frames.append(tcp(SERVER, 554, CLIENT, 40554, s_seq, reply))
        s_seq += len(reply)
    plain: dict[int, list[bytes]] = {}
    for ssrc, port in ((AUDIO, 3056), (VIDEO, 3058)):
        plain[ssrc] = [rtp(ssrc, 100 + i, bytes([ssrc & 0xFF, i]) * (10 + i)) for i in range(4)]
        frames += [udp(SERVER, 5000, CLIENT, port, senders[ssrc].protect(p)) for p in plain[ssrc]]
        plain[ssrc].append(rtcp_sr(ssrc))
        frames.append(udp(SERVER, 5001, CLIENT, port + 1, senders[ssrc].protect_rtcp(plain[ssrc][-1])))
    path = tmp_path / f"rfc4567-example{example}.pcap"
    path.write_bytes(pcap(frames, t0=NOW + 1))
    return path, plain


@pytest.mark.parametrize("example", [3, 4])
def test_three_commands(example: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, plain = rtsp_capture(example, tmp_path)

    # 1. mikey decode CAPTURE: every message, where it was, the RTSP session
    assert main(["--json", "decode", str(path), "--lint"]) == 0
    found = json.loads(capsys.readouterr().out)["messages"]
    where = [(m["carrier"], m["location"], m["rtsp_session"], m["payloads"][0]["data_type_name"]) for m in found]
    if example == 3:
        assert where == [("RTSP", "SDP session level", "12345678", "PSK_INIT"),
                         ("RTSP", f"KeyMgmt header ({URI})", "12345678", "PSK_RESP")]
    else:
        assert where == [("RTSP", "SDP media 0", "12345678", "PSK_INIT"), ("RTSP", "SDP media 1", "12345678", "PSK_INIT"),
                         ("RTSP", f"KeyMgmt header ({URI}/audio)", "12345678", "PSK_RESP"),
                         ("RTSP", f"KeyMgmt header ({URI}/video)", "12345678", "PSK_RESP")]
    assert all(m["warnings"] == [] for m in found)

    # 2. mikey keys CAPTURE --mode psk --psk HEX --show-keys --format gst
    assert main(["keys", str(path), "--mode", "psk", "--psk", PSK.hex(), "--show-keys", "--format", "gst"]) == 0
    caps = capsys.readouterr().out.splitlines()
    assert [c.split(",", 1)[0] for c in caps] == [f"ssrc=(uint){AUDIO}", f"ssrc=(uint){VIDEO}"]

    # 3. mikey srtp-decrypt CAPTURE --keys-from CAPTURE --mode psk --psk HEX --out OUT
    out = tmp_path / "decrypted.pcap"
    assert main(["srtp-decrypt", str(path), "--keys-from", str(path), "--mode", "psk", "--psk", PSK.hex(),
                 "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        f"SSRC {AUDIO:08x}: 4 RTP, 1 RTCP decrypted; 0 RTP, 0 RTCP authentication failures",
        f"SSRC {VIDEO:08x}: 4 RTP, 1 RTCP decrypted; 0 RTP, 0 RTCP authentication failures"]
    written = [bytes(dpkt.ethernet.Ethernet(buf).data.data.data) for _, buf in dpkt.pcap.Reader(io.BytesIO(out.read_bytes()))]
    assert written == plain[AUDIO] + plain[VIDEO]
