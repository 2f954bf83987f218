"""``mikey srtp-decrypt``: SRTP/SRTCP in a capture decrypted with keys recovered from its MIKEY exchange."""

from __future__ import annotations

import io
import json
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import pylibsrtp  # type: ignore[import-untyped]
import pytest
from test_capture import NOW, PSK, A, B, pcap, sip, udp
from test_capture_keys import SSRCS, exchange

from mikey.cli.main import main
from mikey.cli.srtp_decrypt import PROFILE_PARAMS
from mikey.modes.base import CryptoSessionSpec
from mikey.modes.psk import PskInitiator
from mikey.offer_answer import make_answer, make_offer
from mikey.session import CryptoSessionBundle
from mikey.srtp import srtp_profile


def rtp(ssrc: int, seq: int, payload: bytes) -> bytes:
    return bytes([0x80, 0]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big") + ssrc.to_bytes(4, "big") + payload


def rtcp_sr(ssrc: int) -> bytes:
    return bytes([0x80, 200, 0, 6]) + ssrc.to_bytes(4, "big") + bytes(20)


def media_capture(tmp_path: Path, *, tamper: int | None = None) -> tuple[Path, list[bytes], bytes]:
    i_msg, r_msg, result = exchange()
    bundle = CryptoSessionBundle(result)
    frames = [udp(A, 5060, B, 5060, sip("INVITE sip:bob@example.org SIP/2.0", "c1", make_offer(i_msg))),
              udp(B, 5060, A, 5060, sip("SIP/2.0 200 OK", "c1", make_answer(r_msg)))]
    plain = [rtp(SSRCS[0], 1000 + i, bytes([i]) * (20 + i)) for i in range(5)]
    for i, pkt in enumerate(plain):
        protected = bundle.sender(1).protect(pkt)
        if i == tamper:
            protected = protected[:-1] + bytes([protected[-1] ^ 1])
        frames.append(udp(A, 40000, B, 40002, protected))
    sr = rtcp_sr(SSRCS[0])
    frames.append(udp(A, 40001, B, 40003, bundle.sender(1).protect_rtcp(sr)))
    frames.append(udp(A, 40000, B, 40002, rtp(0x12345678, 1, b"not keyed")))
    path = tmp_path / "media.pcap"
    path.write_bytes(pcap(frames))
    return path, plain, sr


def read_out(path: Path) -> list[tuple[float, bytes, dpkt.ip.IP]]:
    out = []
    for ts, buf in dpkt.pcap.Reader(io.BytesIO(path.read_bytes())):
        ip = dpkt.ethernet.Ethernet(buf).data
        out.append((ts, bytes(ip.data.data), ip))
    return out


def test_round_trip_byte_for_byte(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, plain, sr = media_capture(tmp_path)
    out = tmp_path / "plain.pcap"
    args = ["srtp-decrypt", str(path), "--keys-from", str(path), "--mode", "psk", "--psk", PSK.hex(), "--out", str(out)]
    assert main(args) == 0
    assert "SSRC aaaa0001: 5 RTP, 1 RTCP decrypted; 0 RTP, 0 RTCP authentication failures" in capsys.readouterr().out
    rows = read_out(out)
    assert [p for _, p, _ in rows] == plain + [sr]
    assert [ts for ts, _, _ in rows] == [pytest.approx(NOW + 2 + i) for i in range(6)]
    for _, p, ip in rows:  # lengths and checksums consistent: dpkt re-reading them gives the same bytes
        assert ip.len == len(bytes(ip)) and ip.data.ulen == 8 + len(p)
        udp_copy = dpkt.ip.IP(bytes(ip)).data
        sum_before = udp_copy.sum
        udp_copy.sum = 0
        assert sum_before != 0 and dpkt.ip.IP(bytes(dpkt.ip.IP(src=ip.src, dst=ip.dst, p=17, data=udp_copy))).data.sum == sum_before


def test_tampered_packet_counted_and_not_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, plain, sr = media_capture(tmp_path, tamper=2)
    out = tmp_path / "plain.pcap"
    args = ["--json", "srtp-decrypt", str(path), "--keys-from", str(path), "--mode", "psk", "--psk", PSK.hex(),
            "--out", str(out)]
    assert main(args) == 1
    obj = json.loads(capsys.readouterr().out)
    assert obj["streams"] == {"aaaa0001": {"rtp": 4, "rtcp": 1, "rtp_auth_failures": 1, "rtcp_auth_failures": 0}}
    assert [p for _, p, _ in read_out(out)] == plain[:2] + plain[3:] + [sr]


def test_bad_capture_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _, _ = media_capture(tmp_path)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 5)
    args = ["srtp-decrypt", str(bad), "--keys-from", str(path), "--mode", "psk", "--psk", PSK.hex(),
            "--out", str(tmp_path / "o.pcap")]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert out.startswith("cannot decrypt: ") and out.count("\n") == 1


def test_keys_from_json_of_mikey_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, plain, sr = media_capture(tmp_path)
    assert main(["keys", str(path), "--mode", "psk", "--psk", PSK.hex(), "--json", "--show-keys"]) == 0
    keys_json = tmp_path / "keys.json"
    keys_json.write_text(capsys.readouterr().out)
    out = tmp_path / "plain.pcap"
    assert main(["srtp-decrypt", str(path), "--keys-from", str(keys_json), "--out", str(out)]) == 0
    assert [p for _, p, _ in read_out(out)] == plain + [sr]
    capsys.readouterr()
    hidden = tmp_path / "hidden.json"
    assert main(["keys", str(path), "--mode", "psk", "--psk", PSK.hex(), "--json"]) == 0
    hidden.write_text(capsys.readouterr().out)
    assert main(["srtp-decrypt", str(path), "--keys-from", str(hidden), "--out", str(out)]) == 2
    assert "holds no keys: run 'mikey keys' with --show-keys" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(PROFILE_PARAMS))
def test_profile_params_match_their_names(name: str) -> None:
    assert srtp_profile(PROFILE_PARAMS[name]) == getattr(pylibsrtp.Policy, name)


def test_ssrc_left_open_is_learned_by_authentication(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SSRC 0 in an I_MESSAGE nobody answered: the stream the key authenticates is decrypted, others left alone."""
    initiator = PskInitiator(PSK, crypto_sessions=[CryptoSessionSpec(ssrc=0)])
    i_msg = initiator.create_message(NOW)
    bundle = CryptoSessionBundle(initiator.result)
    stranger = CryptoSessionBundle(exchange()[2])  # another exchange's keys: never authenticates here
    plain = [rtp(0xCAFE0001, 7 + i, bytes([i]) * 30) for i in range(3)]
    frames = [udp(A, 5060, B, 5060, sip("INVITE sip:bob@example.org SIP/2.0", "c2", make_offer(i_msg)))]
    frames += [udp(A, 40000, B, 40002, bundle.sender(1, ssrc=0xCAFE0001).protect(p)) for p in plain]
    frames += [udp(A, 41000, B, 41002, stranger.sender(1).protect(rtp(SSRCS[0], 5 + i, b"x" * 20))) for i in range(12)]
    frames.append(udp(A, 40001, B, 40003, bundle.sender(1, ssrc=0xCAFE0001).protect_rtcp(rtcp_sr(0xCAFE0001))))
    path = tmp_path / "open.pcap"
    path.write_bytes(pcap(frames))
    out = tmp_path / "plain.pcap"
    args = ["srtp-decrypt", str(path), "--keys-from", str(path), "--mode", "psk", "--psk", PSK.hex(), "--out", str(out)]
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["streams"] == {
        "cafe0001": {"rtp": 3, "rtcp": 1, "rtp_auth_failures": 0, "rtcp_auth_failures": 0, "learned": True}}
    assert [p for _, p, _ in read_out(out)] == plain + [rtcp_sr(0xCAFE0001)]
    assert main(args) == 0
    assert "SSRC cafe0001 (not in the CS ID map: keyed by authentication): 3 RTP, 1 RTCP" in capsys.readouterr().out
