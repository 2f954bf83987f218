"""SRTP media of the SIP user agents (mikey.sip.media, .g711, .rtp): RTP over UDP on loopback, keyed by real
in-memory MIKEY exchanges (tests/twoparty.py).

Tone level and frequency measured at the receiver, wrong keys, packet loss through a lossy UDP shim, re-keying
mid-stream, group broadcast across a ROC wrap with a late joiner (and one told the wrong ROC), fan-out, a
conference relay, the voicemail pcap decrypted later by ``mikey srtp-decrypt`` and read by tshark.
"""

from __future__ import annotations

import io
import json
import math
import os
import socket
import struct
import subprocess
import sys
import threading
import wave
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import pytest
from tshark_util import TSHARK
from twoparty import run

from mikey.cli.main import main
from mikey.constants import ProtType
from mikey.errors import MikeyError, StateError
from mikey.modes.base import CryptoSessionSpec
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.modes.results import ExchangeResult
from mikey.offer_answer import make_offer
from mikey.session import CryptoSessionBundle
from mikey.sip.g711 import ULAW_TO_LINEAR, ulaw_decode, ulaw_decode_sample, ulaw_encode, ulaw_encode_sample
from mikey.sip.media import (
    SILENCE_DBFS,
    AudioFormatError,
    MediaError,
    MediaReport,
    MediaSession,
    SrtpRelay,
    ToneSource,
    WavSource,
    goertzel_power,
    level_dbfs,
    tone_frequency,
)
from mikey.sip.rtp import (
    RTCP_BYE,
    RTCP_SR,
    SequenceStats,
    bye,
    parse_rtcp,
    parse_rtp,
    rtp_header,
    sender_report,
)
from mikey.srtp import SrtpPolicyParams
from mikey.wire import SecurityPolicyPayload

NOW = 1_800_000_000.0
PSK = bytes(range(32))
SSRC_A = 0xA0A0A0A1
SSRC_B = 0xB0B0B0B2
WAIT = 20.0  # generous: two cores shared by many test processes


# --- helpers ---------------------------------------------------------------------------------------------


def psk_exchange(
    specs: Sequence[CryptoSessionSpec] = (CryptoSessionSpec(ssrc=SSRC_A), CryptoSessionSpec(ssrc=0)),
    *, psk: bytes = PSK, own_ssrcs: Sequence[int] = (SSRC_B,), **options: object,
) -> tuple[ExchangeResult, ExchangeResult, bytes]:
    """A MIKEY-PSK exchange in memory: (Initiator's result, Responder's result, I_MESSAGE)."""
    ex = run(PskInitiator(psk, crypto_sessions=list(specs), v=True, **options),  # type: ignore[arg-type]
             PskResponder(psk, own_ssrcs=list(own_ssrcs)), NOW)
    assert ex.result is not None and ex.outcome.result is not None
    return ex.result, ex.outcome.result, ex.i_message


def bundles(**kw: object) -> tuple[CryptoSessionBundle, CryptoSessionBundle]:
    res_i, res_r, _ = psk_exchange(**kw)  # type: ignore[arg-type]
    return CryptoSessionBundle(res_i), CryptoSessionBundle(res_r)


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """Sessions, relays and shims entered here are stopped when the test ends, pass or fail."""
    with ExitStack() as s:
        yield s


def session(stack: ExitStack, ssrc: int) -> MediaSession:
    return stack.enter_context(MediaSession(ssrc))


class GatedSource:
    """A tone that pauses after given packet counts until the test opens the gate: deterministic mid-stream steps."""

    def __init__(self, hz: float, gates: Sequence[int], amplitude: float = 0.5) -> None:
        self.tone = ToneSource(hz, amplitude)
        self.gates = list(gates)
        self.packets = 0
        self.opened = threading.Event()
        self.waiting = threading.Event()

    def read(self, n: int) -> list[int] | None:
        if self.gates and self.packets == self.gates[0]:
            self.gates.pop(0)
            self.waiting.set()
            if not self.opened.wait(WAIT):
                return None
            self.opened.clear()
        self.packets += 1
        return self.tone.read(n)

    def reached_gate(self) -> None:
        assert self.waiting.wait(WAIT), "the sender never reached its gate"
        self.waiting.clear()


class LossyShim:
    """A UDP forwarder between two sessions that drops the RTP packets at the given positions (0-based),
    and sends those at the *repeat* positions twice (a replay)."""

    def __init__(self, target: tuple[str, int], drop: set[int], repeat: frozenset[int] = frozenset()) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.address = self.sock.getsockname()
        self.target, self.drop, self.repeat = target, drop, repeat
        self.rtp_seen = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if not 192 <= data[1] <= 223:
                index, self.rtp_seen = self.rtp_seen, self.rtp_seen + 1
                if index in self.drop:
                    self.dropped += 1
                    continue
                if index in self.repeat:
                    self.sock.sendto(data, self.target)
            self.sock.sendto(data, self.target)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def __enter__(self) -> LossyShim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clean(report: MediaReport) -> None:
    assert report.errors == () and report.malformed == 0


# --- G.711 µ-law ----------------------------------------------------------------------------------------


def test_ulaw_known_answers() -> None:
    # Decoder output of ITU-T G.711 Table 2a/G.191 ulaw_expand (scaled to 16 bits), as in every G.711 table.
    expected = {0x00: -32124, 0x01: -31100, 0x0F: -16764, 0x10: -15996, 0x20: -7932, 0x30: -3900, 0x40: -1884,
                0x50: -876, 0x60: -372, 0x70: -120, 0x7E: -8, 0x7F: 0, 0x80: 32124, 0x90: 15996, 0xF0: 120,
                0xFE: 8, 0xFF: 0}
    assert {c: ULAW_TO_LINEAR[c] for c in expected} == expected
    # Encoder (G.191 ulaw_compress): zero, the smallest steps, clipping, a mid value and both signs.
    assert [ulaw_encode_sample(s) for s in (0, -1, 100, -100, 32767, -32768, 40000, -40000, 1000, -1000)] == [
        0xFF, 0x7F, 0xF2, 0x73, 0x80, 0x00, 0x80, 0x00, 0xCE, 0x4E]
    # Every code but negative zero (0x7F) survives decode -> encode; decoding is odd-symmetric.
    for code in range(256):
        assert ulaw_encode_sample(ulaw_decode_sample(code)) == (0xFF if code == 0x7F else code)
        assert ulaw_decode_sample(code ^ 0x80) == -ulaw_decode_sample(code)
    samples = [0, 5, -5, 1234, -1234, 32000, -32000]
    assert list(ulaw_decode(ulaw_encode(samples))) == [ULAW_TO_LINEAR[ulaw_encode_sample(s)] for s in samples]


def test_ulaw_encoder_is_monotonic_and_within_half_a_step() -> None:
    codes = [ulaw_encode_sample(s) for s in range(-32768, 32768, 7)]
    values = [ULAW_TO_LINEAR[c] for c in codes]
    assert values == sorted(values)
    for s in range(-32000, 32000, 997):
        step = 4 << (((~ulaw_encode_sample(s)) >> 4 & 7) + 1)
        assert abs(ULAW_TO_LINEAR[ulaw_encode_sample(s)] - s) <= step // 2 + 4


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="audioop left the standard library in 3.13")
def test_ulaw_agrees_with_audioop_on_non_negative_samples() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    pcm = struct.pack("<32768h", *range(32768))
    assert audioop.lin2ulaw(pcm, 2) == ulaw_encode(range(32768))
    assert struct.unpack("<256h", audioop.ulaw2lin(bytes(range(256)), 2)) == ULAW_TO_LINEAR


# --- RTP / RTCP ------------------------------------------------------------------------------------------


def test_rtp_header_and_parse_with_csrc_extension_and_padding() -> None:
    header = rtp_header(0, 0xFFFF, 0x12345678, SSRC_A, marker=True)
    assert header == bytes.fromhex("8080ffff12345678a0a0a0a1")
    p = parse_rtp(header + b"abc")
    assert (p.payload_type, p.marker, p.seq, p.timestamp, p.ssrc, p.payload) == (0, True, 0xFFFF, 0x12345678,
                                                                                   SSRC_A, b"abc")
    # V=2, P=1, X=1, CC=1; one CSRC, an extension of one word, two octets of padding.
    raw = bytes([0xB1, 8]) + struct.pack("!HII", 7, 160, SSRC_B) + struct.pack("!I", 0xCAFE)
    raw += struct.pack("!HHI", 0xBEDE, 1, 0) + b"\x55" * 4 + b"\x00\x02"
    p = parse_rtp(raw)
    assert (p.payload_type, p.csrcs, p.payload) == (8, (0xCAFE,), b"\x55" * 4)
    bad_packets = (
        b"\x80" * 11,  # shorter than the fixed header
        bytes([0x40]) + header[1:],  # version 1
        bytes([0x8F]) + header[1:],  # 15 CSRCs announced, none there
        bytes([0x90]) + header[1:] + b"\xbe\xde",  # extension header cut short
        bytes([0x90]) + header[1:] + b"\xbe\xde\x00\x05",  # extension longer than the packet
        bytes([0xA0]) + header[1:] + b"\x09",  # padding count beyond the packet
        bytes([0xA0]) + header[1:] + b"\x00",  # padding count zero
    )
    for bad in bad_packets:
        with pytest.raises(MikeyError, match="RTP"):
            parse_rtp(bad)


def test_rtcp_sr_and_bye_round_trip() -> None:
    stats = SequenceStats(100)
    for seq in (100, 101, 102, 105):
        stats.update(seq)
    block = stats.report_block(SSRC_B, lsr=0x11112222, dlsr=65536)
    packet = sender_report(SSRC_A, 48000, 300, 48000, (block,), now=1_700_000_000.5) + bye(SSRC_A)
    sr, end = parse_rtcp(packet)
    assert (sr.packet_type, sr.ssrc, sr.sender_packets, sr.sender_octets, sr.rtp_timestamp) == (
        RTCP_SR, SSRC_A, 300, 48000, 48000)
    assert sr.ntp == (1_700_000_000 + 2_208_988_800, 1 << 31)
    (b,) = sr.blocks
    # 6 expected (100..105), 3 received + the first = 4: 2 lost; fraction 2/6 in 1/256 units.
    assert (b.ssrc, b.cumulative_lost, b.fraction_lost, b.highest_seq, b.lsr, b.dlsr) == (
        SSRC_B, 2, (2 << 8) // 6, 105, 0x11112222, 65536)
    assert (end.packet_type, end.ssrc) == (RTCP_BYE, SSRC_A)
    with pytest.raises(MikeyError):
        parse_rtcp(packet[:-2])


def test_sequence_stats_wrap_loss_and_restart() -> None:
    s = SequenceStats(65530)
    for seq in [65530, 65531, 65533, 65535, 0, 1, 3]:  # 65532, 65534, 2 lost across the wrap
        s.update(seq)
    assert (s.extended_max, s.expected, s.received, s.lost) == (65536 + 3, 10, 7, 3)
    assert not s.update(30000)  # a big jump: one packet is not yet a restart
    assert not s.update(30001)  # the next one in sequence is: counts start again there
    assert (s.base_seq, s.received, s.lost) == (30001, 1, 0)


# --- audio sources and measurements ---------------------------------------------------------------------


def test_tone_measurements() -> None:
    tone = ToneSource(1000, 0.5).read(8000)
    assert tone_frequency(tone) == pytest.approx(1000, abs=0.5)
    level = level_dbfs(math.fsum(x * x for x in tone), len(tone))
    assert level == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.05)  # -9.03 dBFS
    assert goertzel_power(tone, 1000) > 100 * goertzel_power(tone, 1200)
    assert tone_frequency([0] * 800) is None and level_dbfs(0, 0) is None
    with pytest.raises(MediaError, match="Nyquist"):
        ToneSource(4000)
    with pytest.raises(MediaError, match="amplitude"):
        ToneSource(400, 1.5)


def write_wav(path: Path, samples: Sequence[int], *, rate: int = 8000, channels: int = 1, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        if width == 2:
            w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
        else:
            w.writeframes(bytes((s >> 8) + 128 for s in samples))
    return path


def test_wav_source_resamples_mixes_down_and_refuses_other_widths(tmp_path: Path) -> None:
    tone = [round(16000 * math.sin(2 * math.pi * 600 * i / 48000)) for i in range(48000)]
    stereo = [s for x in tone for s in (x, x)]
    src = WavSource(write_wav(tmp_path / "s48k.wav", stereo, rate=48000, channels=2))
    assert len(src.samples) == 8000 and src.source_rate == 48000
    assert tone_frequency(src.samples) == pytest.approx(600, abs=1)
    mono = WavSource(write_wav(tmp_path / "m8k.wav", tone[:320]))
    assert mono.read(160) == tone[:160] and mono.read(160) == tone[160:320] and mono.read(160) is None
    looped = WavSource(tmp_path / "m8k.wav", loop=True)
    assert [looped.read(200) for _ in range(2)] == [tone[:200], tone[200:320] + tone[:80]]
    with pytest.raises(AudioFormatError, match="8-bit samples; only 16-bit"):
        WavSource(write_wav(tmp_path / "u8.wav", tone[:100], width=1))
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AudioFormatError, match="not a PCM WAV"):
        WavSource(tmp_path / "junk.wav")
    with pytest.raises(AudioFormatError, match="cannot read"):
        WavSource(tmp_path / "missing.wav")


# --- two sessions on loopback -----------------------------------------------------------------------------


def test_tone_both_ways_right_frequency_and_level(stack: ExitStack) -> None:
    bi, br = bundles()
    a, b = session(stack, SSRC_A), session(stack, SSRC_B)
    a.start(bi, b.address, source=ToneSource(1000, 0.5), packets=200, pace=False, rtcp_every=50)
    b.start(br, a.address, source=ToneSource(440, 0.25), packets=200, pace=False, rtcp_every=50)
    assert b.wait_received(200, WAIT) and a.wait_received(200, WAIT)
    assert a.wait_sent(WAIT) and b.wait_sent(WAIT) and a.wait_idle(0.3, WAIT)
    ra = a.stop()
    assert b.wait_idle(0.3, WAIT)
    rb = b.stop()
    for report, peer, hz, amplitude in ((rb, SSRC_A, 1000, 0.5), (ra, SSRC_B, 440, 0.25)):
        clean(report)
        assert (report.sent, report.received, report.lost, report.auth_failures, report.replays) == (200, 200, 0, 0, 0)
        (stream,) = report.streams
        assert stream.ssrc == peer and stream.decoded_samples == 200 * 160 and stream.expected == 200
        assert report.tone_hz == pytest.approx(hz, abs=1)
        assert report.level_dbfs == pytest.approx(20 * math.log10(amplitude / math.sqrt(2)), abs=0.2)
        assert stream.rtcp_auth_failures == 0 and stream.sender_packets == 200
        assert (stream.reported_lost, stream.reported_jitter_ms is not None) == (0, True)  # SR report blocks
    # Four SRs each way (every 50 packets); a stopped first: its SR + BYE reached b.
    assert [(s.rtcp_received, s.byes) for s in (ra.streams[0], rb.streams[0])] == [(4, 0), (5, 1)]
    # Set-up timing marks (wall clock, comparable across processes): start <= first sent <= first verified there.
    assert ra.started_unix is not None and ra.first_tx_unix is not None and rb.streams[0].first_rx_unix is not None
    assert ra.started_unix <= ra.first_tx_unix <= rb.streams[0].first_rx_unix
    d = json.loads(json.dumps(rb.to_dict()))
    assert d["local_ssrc"] == f"{SSRC_B:08x}" and d["streams"][0]["ssrc"] == f"{SSRC_A:08x}"
    assert d["received"] == 200 and d["tone_hz"] == pytest.approx(1000, abs=1)
    # What went over the wire was SRTP: payload + 10-octet tag, never the plain µ-law (checked with tshark below).
    assert ra.sent_octets == 200 * 160


def test_wrong_keys_all_fail_authentication_nothing_decoded(stack: ExitStack) -> None:
    bi, _ = bundles()
    _, br_other = bundles()  # another exchange, same SSRCs: other keys
    a, b = session(stack, SSRC_A), session(stack, SSRC_B)
    b.start(br_other, None)
    a.start(bi, b.address, source=ToneSource(1000), packets=100, pace=False, rtcp_every=25)
    assert a.wait_sent(WAIT) and b.wait_idle(0.3, WAIT)
    a.stop()
    assert b.wait_idle(0.3, WAIT)
    rb = b.stop()
    clean(rb)
    (stream,) = rb.streams
    assert (stream.auth_failures, stream.received, stream.decoded_samples, stream.rtcp_received) == (100, 0, 0, 0)
    assert stream.rtcp_auth_failures == 5  # 4 SRs and the SR + BYE of stop()
    assert rb.level_dbfs is None and rb.tone_hz is None and stream.roc is None
    assert rb.sent == 0 and rb.rtcp_sent == 0  # nothing verified: no address learnt, nothing sent back


def test_packet_loss_and_replays_counted_and_recording_keeps_time(stack: ExitStack, tmp_path: Path) -> None:
    bi, br = bundles()
    a, b = session(stack, SSRC_A), session(stack, SSRC_B)
    drop = {10, 11, 12, 50, 199}  # the last one is never known to be lost: no later packet shows the gap
    shim = stack.enter_context(LossyShim(b.address, drop, repeat=frozenset({20, 21})))
    wav = tmp_path / "call.wav"
    b.start(br, a.address, record=wav, rtcp_every=50)  # a receiver only: an RR every 50 packets, straight to a
    a.start(bi, shim.address, source=ToneSource(800, 0.5), packets=200, pace=False, start_seq=65500)
    assert a.wait_sent(WAIT) and b.wait_received(195, WAIT) and b.wait_idle(0.3, WAIT) and a.wait_idle(0.3, WAIT)
    ra = a.stop()
    rb = b.stop()
    clean(rb)
    clean(ra)
    # What b's RRs told a (RFC 3550 §6.4.2): after 150 packets, the 4 lost so far, up to packet 153 (ext. SEQ).
    (about_a,) = ra.streams
    assert (about_a.ssrc, about_a.received, about_a.rtcp_received, rb.rtcp_sent) == (SSRC_B, 0, 3, 4)
    assert (about_a.reported_lost, about_a.reported_highest_seq) == (4, 65500 + 153)
    assert shim.dropped == 5
    (stream,) = rb.streams
    assert (stream.received, stream.expected, stream.lost, stream.auth_failures) == (195, 199, 4, 0)
    assert stream.replays == 2  # the repeated packets: refused by SRTP's replay list (RFC 3711 §3.3.2)
    assert (stream.first_seq, stream.highest_seq) == (65500, 65500 + 198)  # extended across the wrap
    assert stream.tone_hz == pytest.approx(800, abs=2)
    assert stream.recording == str(wav) and not wav.with_name("call.wav.part").exists()
    with wave.open(str(wav), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert w.getnframes() == 199 * 160  # the 4 lost packets as 20 ms of silence each
        samples = struct.unpack(f"<{w.getnframes()}h", w.readframes(w.getnframes()))
    assert samples[10 * 160:13 * 160] == (0,) * 480 and max(samples[13 * 160:14 * 160]) > 10000
    assert tone_frequency(samples[:10 * 160]) == pytest.approx(800, abs=2)


def test_rekey_mid_stream_old_keys_until_new_ones_verify(stack: ExitStack) -> None:
    first_i, first_r, _ = psk_exchange()
    bi, br = CryptoSessionBundle(first_i), CryptoSessionBundle(first_r)
    old_sender = CryptoSessionBundle(first_i).sender(1)  # to forge a late packet under the old keys
    source = GatedSource(1000, gates=[100, 150])
    a, b = session(stack, SSRC_A), session(stack, SSRC_B)
    b.start(br, None)
    a.start(bi, b.address, source=source, packets=300, pace=False)
    source.reached_gate()
    assert b.wait_received(100, WAIT)
    # The re-INVITE's MIKEY update (RFC 3830 §4.5): same CSB ID, new TGK; both ends re-key their bundle in place.
    upd = PskInitiator(PSK, update=first_i, v=True)
    out = PskResponder(PSK, bundles={first_r.csb_id: first_r}).receive(upd.create_message(NOW + 30), NOW + 30)
    new_i = upd.receive(out.response, NOW + 30)  # type: ignore[arg-type]
    bi.rekey(new_i)
    br.rekey(out.result)
    assert bi.fingerprints() == br.fingerprints() != CryptoSessionBundle(first_i).fingerprints()
    b.rekey(br)  # the answerer first: it takes both keys until the new ones verify
    source.opened.set()
    source.reached_gate()
    assert b.wait_received(150, WAIT)
    a.rekey(bi)  # the offerer switches when it has the answer
    seq_now, roc_now = a.send_position()
    source.opened.set()
    assert a.wait_sent(WAIT) and b.wait_received(300, WAIT)
    # A packet under the old keys after the new ones took over is refused.
    late = old_sender.protect(rtp_header(0, seq_now + 200, 0, SSRC_A) + bytes(160))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(late, b.address)
    assert b.wait_idle(0.3, WAIT)
    a.stop()
    rb = b.stop()
    clean(rb)
    (stream,) = rb.streams
    assert (stream.received, stream.lost, stream.replays) == (300, 0, 0)
    assert (stream.old_key_packets, stream.key_switches, stream.auth_failures) == (50, 1, 1)
    assert rb.rekeys == 1 and stream.tone_hz == pytest.approx(1000, abs=1) and roc_now == 0


def test_broadcast_roc_wrap_late_joiner_and_wrong_roc(stack: ExitStack) -> None:
    """One sender, fan-out to receivers sharing the group key; SEQ 65500 at ROC 3 wraps to ROC 4 during the test.

    Each receiver gets its own MIKEY-PSK exchange carrying the same TGK, RAND and CSB ID (the group key) and the
    stream's ROC at the time (RFC 3830 §6.1.1); the late joiner is keyed with ROC 4 and decrypts from its first
    packet, one keyed with the stale ROC 3 fails every packet.
    """
    tgk, rand, csb = bytes(range(100, 116)), bytes(range(16)), 0x0B0ADCA5
    sender_ssrc = 0x5E4D0001

    def group_keys(roc: int, psk: bytes) -> tuple[CryptoSessionBundle, CryptoSessionBundle]:
        res_i, res_r, _ = psk_exchange([CryptoSessionSpec(ssrc=sender_ssrc, roc=roc)], psk=psk, own_ssrcs=(),
                                       tgk=tgk, rand=rand, csb_id=csb)
        return CryptoSessionBundle(res_i), CryptoSessionBundle(res_r)

    send_bundle, early_bundle = group_keys(3, bytes(32))
    source = GatedSource(1200, gates=[20, 100])
    tx = session(stack, sender_ssrc)
    early, late, stale, hinted, unhinted = (session(stack, 0x100 + i) for i in range(5))
    early.start(early_bundle, None)
    tx.start(send_bundle, [early.address], source=source, packets=200, pace=False, start_seq=65500)
    # Two receivers keyed at SEQ 65520 (ROC 3) whose first packet comes after the wrap (ROC 4): the one told the
    # SEQ the ROC was read at estimates ROC 4 (RFC 3711 §3.3.1), the other takes ROC 3 and fails.
    source.reached_gate()
    assert tx.send_position() == (65520, 3)
    _, racing_bundle = group_keys(3, bytes([3]) * 32)
    source.opened.set()
    source.reached_gate()
    seq, roc = tx.send_position()
    assert (seq, roc) == ((65500 + 100) & 0xFFFF, 4)
    _, late_bundle = group_keys(roc, bytes([1]) * 32)  # a receiver with its own PSK, same group key
    _, stale_bundle = group_keys(3, bytes([2]) * 32)
    assert late_bundle.fingerprints() == early_bundle.fingerprints() == stale_bundle.fingerprints()
    late.start(late_bundle, None)
    stale.start(stale_bundle, None)
    hinted.start(racing_bundle, None, roc_seq=65520)
    unhinted.start(racing_bundle, None)
    for s in (late, stale, hinted, unhinted):
        tx.add_remote(s.address)
    source.opened.set()
    assert tx.wait_sent(WAIT) and early.wait_received(200, WAIT) and late.wait_received(100, WAIT)
    assert hinted.wait_received(100, WAIT) and stale.wait_idle(0.3, WAIT) and unhinted.wait_idle(0.3, WAIT)
    reports = {name: s.stop() for name, s in (("early", early), ("late", late), ("stale", stale),
                                                ("hinted", hinted), ("unhinted", unhinted))}
    tx.stop()
    for r in reports.values():
        clean(r)
    hi, un = (reports[k].stream(sender_ssrc) for k in ("hinted", "unhinted"))
    assert hi is not None and un is not None
    assert (hi.received, hi.auth_failures, hi.roc, un.received, un.auth_failures) == (100, 0, 4, 0, 100)
    e, lt, st = (reports[k].stream(sender_ssrc) for k in ("early", "late", "stale"))
    assert e is not None and lt is not None and st is not None
    assert (e.received, e.lost, e.auth_failures, e.roc, e.first_seq) == (200, 0, 0, 4, 65500)
    assert (lt.received, lt.lost, lt.auth_failures, lt.roc, lt.first_seq) == (100, 0, 0, 4, seq)
    assert lt.tone_hz == pytest.approx(1200, abs=1)
    assert (st.received, st.auth_failures, st.decoded_samples) == (0, 100, 0)
    assert st.rtcp_received >= 1  # SRTCP has its own index: the ROC does not matter there (RFC 3711 §3.4)


def test_symmetric_rtp_learns_the_peer_address(stack: ExitStack, tmp_path: Path) -> None:
    bi, br = bundles()
    a, b = session(stack, SSRC_A), session(stack, SSRC_B)
    tone = ToneSource(300, 0.5).read(50 * 160)
    wav = write_wav(tmp_path / "b.wav", tone)
    b.start(br, None, source=WavSource(wav), pace=False)  # sends once it knows where; the file's end ends it
    a.start(bi, b.address, source=ToneSource(700), packets=50, pace=False, record=tmp_path / "a-heard.wav")
    assert a.wait_received(50, WAIT) and b.wait_received(50, WAIT) and b.wait_sent(WAIT)
    ra, rb = a.stop(), b.stop()
    assert rb.sent == 50 and ra.tone_hz == pytest.approx(300, abs=1) and rb.tone_hz == pytest.approx(700, abs=1)
    with wave.open(str(tmp_path / "a-heard.wav"), "rb") as w:  # from the file's first sample: none lost waiting
        heard = struct.unpack(f"<{w.getnframes()}h", w.readframes(w.getnframes()))
    assert list(heard) == list(ulaw_decode(ulaw_encode(tone)))


def test_conference_relay_forwards_srtp_between_participants(stack: ExitStack) -> None:
    """A focus relays without keys; each participant has the group's crypto sessions (one per participant's SSRC)."""
    ssrcs, tones = [0xC0000001, 0xC0000002, 0xC0000003], [500.0, 1000.0, 1500.0]
    specs = [CryptoSessionSpec(ssrc=s) for s in ssrcs]
    group = {"tgk": bytes(range(16)), "rand": bytes(range(50, 66)), "csb_id": 0x00C0FFEE}
    keyed = [CryptoSessionBundle(psk_exchange(specs, psk=bytes([i]) * 32, own_ssrcs=(), **group)[1])  # type: ignore[arg-type]
             for i in range(3)]
    relay = stack.enter_context(SrtpRelay())
    people = [session(stack, s) for s in ssrcs]
    legs = [relay.add_leg(p.address) for p in people]
    for p, bundle, leg, hz in zip(people, keyed, legs, tones, strict=True):
        p.start(bundle, ("127.0.0.1", leg), source=ToneSource(hz), packets=100, pace=False)
    for p in people:
        assert p.wait_received(200, WAIT)
    counts = relay.stop()
    reports = [p.stop() for p in people]
    for me, report in enumerate(reports):
        clean(report)
        assert {s.ssrc for s in report.streams} == {s for i, s in enumerate(ssrcs) if i != me}
        for s in report.streams:
            assert (s.received, s.lost, s.auth_failures) == (100, 0, 0)
            assert s.tone_hz == pytest.approx(tones[ssrcs.index(s.ssrc)], abs=1)
    assert all(counts["forwarded"][leg] >= 100 for leg in legs)


def test_voicemail_pcap_decrypts_later_with_the_callee_keys_only(stack: ExitStack, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The voicemail UA stores SRTP it has no keys for; the callee decrypts it later with `mikey srtp-decrypt`."""
    initiator = PskInitiator(PSK, crypto_sessions=[CryptoSessionSpec(ssrc=SSRC_A)])  # no answer: nobody online
    i_message = initiator.create_message(NOW)
    caller_bundle = CryptoSessionBundle(initiator.result)
    (tmp_path / "invite.mikey").write_bytes(i_message)
    vm, caller = session(stack, 0x7777), session(stack, SSRC_A)
    store = tmp_path / "vm.pcap"
    vm.start(None, None, store_srtp=store)
    caller.start(caller_bundle, vm.address, source=ToneSource(650, 0.5), packets=120, pace=False, rtcp_every=40)
    assert caller.wait_sent(WAIT)
    caller.stop()
    assert vm.wait_idle(0.3, WAIT)
    rv = vm.stop()
    clean(rv)
    (stream,) = rv.streams
    assert (stream.undecrypted, stream.received, rv.stored_packets) == (120, 0, 120 + 4)
    assert rv.sent == 0 and store.exists() and not store.with_name("vm.pcap.part").exists()

    out = tmp_path / "plain.pcap"
    args = ["--json", "srtp-decrypt", str(store), "--keys-from", f"@{tmp_path / 'invite.mikey'}", "--mode", "psk",
            "--out", str(out)]
    assert main([*args, "--psk", PSK.hex()]) == 0
    assert json.loads(capsys.readouterr().out)["streams"] == {
        f"{SSRC_A:08x}": {"rtp": 120, "rtcp": 4, "rtp_auth_failures": 0, "rtcp_auth_failures": 0}}
    audio: list[int] = []
    for _, buf in dpkt.pcap.Reader(io.BytesIO(out.read_bytes())):
        payload = bytes(dpkt.ethernet.Ethernet(buf).data.data.data)
        if not 192 <= payload[1] <= 223:
            audio += ulaw_decode(parse_rtp(payload).payload)
    assert len(audio) == 120 * 160 and tone_frequency(audio) == pytest.approx(650, abs=1)

    # Someone else's PSK recovers no keys from the I_MESSAGE; a wrong key given directly fails every packet.
    assert main([*args, "--psk", bytes(32).hex()]) != 0
    assert "MAC verification failed" in capsys.readouterr().err
    wrong = {"crypto_sessions": [{"ssrc": f"{SSRC_A:08x}", "roc": 0, "profile": "SRTP_PROFILE_AES128_CM_SHA1_80",
                                  "master_key": "00" * 16, "master_salt": "00" * 14}]}
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    out.unlink()
    assert main(["--json", "srtp-decrypt", str(store), "--keys-from", str(tmp_path / "wrong.json"),
                 "--out", str(out)]) == 1
    assert json.loads(capsys.readouterr().out)["streams"][f"{SSRC_A:08x}"] == {
        "rtp": 0, "rtcp": 0, "rtp_auth_failures": 120, "rtcp_auth_failures": 4}
    assert len(list(dpkt.pcap.Reader(io.BytesIO(out.read_bytes())))) == 0


def sip_invite_frame(sdp: str, when: float) -> tuple[float, bytes]:
    """A SIP INVITE carrying *sdp* (RFC 3261 §7, RFC 4567 key-mgmt in it) as an Ethernet/IPv4/UDP frame."""
    message = (
        "INVITE sip:bob@mikey.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKmedia1\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:alice@mikey.test>;tag=1\r\nTo: <sip:bob@mikey.test>\r\n"
        "Call-ID: media-1@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5062>\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
    ).encode()
    udp = dpkt.udp.UDP(sport=5062, dport=5060, data=message, ulen=8 + len(message))
    ip = dpkt.ip.IP(src=bytes([127, 0, 0, 1]), dst=bytes([127, 0, 0, 1]), p=17, len=28 + len(message), data=udp)
    return when, bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x02" * 6, type=0x0800, data=ip))


def run_tshark(tmp_path: Path, *args: str) -> list[list[str]]:
    assert TSHARK is not None
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    proc = subprocess.run([TSHARK, "-n", *args], capture_output=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return [line.split("\t") for line in proc.stdout.decode().splitlines()]


@pytest.mark.skipif(TSHARK is None and not os.environ.get("CI"), reason="tshark (Wireshark) is not installed")
def test_tshark_sees_mikey_then_srtp_and_the_decrypted_capture_is_the_plain_ulaw(
        stack: ExitStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The media as stored, behind the INVITE whose SDP keyed it: Wireshark calls the stream SRTP/SRTCP (RTP/SAVP
    set up by the SDP) and its payload is not the µ-law sent; `mikey srtp-decrypt` with the keys from the same
    capture gives back exactly the µ-law, which tshark then reads as plain RTP."""
    assert TSHARK is not None, "CI is set: tshark must be installed"
    res_i, res_r, i_message = psk_exchange()
    rx, tx = session(stack, SSRC_B), session(stack, SSRC_A)
    store = tmp_path / "media.pcap"
    rx.start(CryptoSessionBundle(res_r), None, store_srtp=store)
    tx.start(CryptoSessionBundle(res_i), rx.address, source=ToneSource(1000), packets=60, pace=False,
             start_seq=1000, rtcp_every=20)
    assert tx.wait_sent(WAIT) and rx.wait_received(60, WAIT)
    tx.stop()
    assert rx.wait_idle(0.3, WAIT)
    rx.stop()
    plain_tone = ToneSource(1000)
    plain = [ulaw_encode(plain_tone.read(160)) for _ in range(60)]

    frames = list(dpkt.pcap.Reader(io.BytesIO(store.read_bytes())))
    call = tmp_path / "call.pcap"
    with call.open("wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, buf in [sip_invite_frame(make_offer(i_message, port=rx.port), frames[0][0] - 0.1), *frames]:
            writer.writepkt(buf, ts=ts)
    summary = run_tshark(tmp_path, "-r", str(call), "-T", "fields", "-e", "frame.protocols", "-e", "rtp.ssrc",
                         "-e", "rtp.seq", "-e", "rtp.p_type", "-e", "srtp.enc_payload")
    assert "mikey" in summary[0][0].split(":") and "sdp" in summary[0][0].split(":")
    media = summary[1:]
    srtp = [r for r in media if r[4]]
    assert len(srtp) == 60 and len(media) == 60 + 4  # and 3 SRs, SR + BYE: SRTCP
    for i, (_, ssrc, seq, ptype, enc) in enumerate(srtp):
        assert (int(ssrc, 16), int(seq), ptype) == (SSRC_A, 1000 + i, "0")
        payload = bytes.fromhex(enc.replace(":", ""))
        assert len(payload) == 160 + 10  # encrypted PCMU and the 80-bit authentication tag
        assert payload[:160] not in plain and sum(a == b for a, b in zip(payload, plain[i], strict=False)) < 16
    lines = [" ".join(r) for r in run_tshark(tmp_path, "-r", str(call))]
    assert sum(" SRTP " in x for x in lines) == 60 and sum(" SRTCP " in x for x in lines) == 4

    out = tmp_path / "plain.pcap"
    assert main(["srtp-decrypt", str(call), "--keys-from", str(call), "--mode", "psk", "--psk", PSK.hex(),
                 "--out", str(out)]) == 0
    assert f"SSRC {SSRC_A:08x}: 60 RTP, 4 RTCP decrypted; 0 RTP, 0 RTCP authentication failures" in (
        capsys.readouterr().out)
    rows = run_tshark(tmp_path, "-r", str(out), "-d", f"udp.port=={rx.port},rtp", "-Y", "rtp && !rtcp",
                      "-T", "fields", "-e", "rtp.seq", "-e", "rtp.payload")
    assert [(int(seq), bytes.fromhex(p.replace(":", ""))) for seq, p in rows] == [
        (1000 + i, plain[i]) for i in range(60)]


def test_misuse_and_bad_datagrams(stack: ExitStack) -> None:
    bi, br = bundles()
    a = session(stack, SSRC_A)
    with pytest.raises(MediaError, match="only store"):
        a.start(None, None)
    with pytest.raises(MediaError, match="16 bits"):
        a.start(bi, None, start_seq=70000)
    with pytest.raises(MediaError, match="roc_seq 70000"):
        a.start(bi, None, roc_seq=70000)
    with pytest.raises(MediaError, match="pace"):
        a.start(bi, None, source=ToneSource(440), pace=-0.5)
    with pytest.raises(MediaError, match="not a writable directory"):
        a.start(bi, None, record=Path("/nonexistent-dir/x.wav"))
    with pytest.raises(MediaError, match="no crypto session to send SSRC 00000999"):
        session(stack, 0x999).start(bi, None, source=ToneSource(440))  # both CSs are mapped to other SSRCs
    b = session(stack, SSRC_B)
    b.start(br, None)
    with pytest.raises(StateError):
        b.start(br, None)
    with pytest.raises(MediaError, match="32 bits"):
        MediaSession(1 << 32)
    for bad_bind in (("127.0.0.1", 70000), ("256.1.1.1", 0)):
        with pytest.raises(MediaError, match="cannot bind UDP"):
            MediaSession(1, bind=bad_bind)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (b"", b"\x00" * 40, b"\x80\x00\x00", b"\x80\xc8" + bytes(30), rtp_header(0, 1, 2, 0x999) + b"x",
                     rtp_header(0, 1, 2, SSRC_B) + b"mine"):
            s.sendto(junk, b.address)
    assert b.wait_idle(0.3, WAIT)
    rb = b.stop()
    assert rb.errors == () and rb.malformed == 3 and rb.received == 0
    # RTCP of SSRC 0 and RTP of SSRC 0x999: not in the CS ID map, no open crypto session: counted, nothing kept.
    assert rb.unkeyed_packets == 2 and rb.streams == () and rb.own_ssrc_packets == 1
    # Refused starts changed nothing: the session still starts and runs.
    a.start(bi, b.address, source=ToneSource(440), packets=5, pace=False)
    assert a.wait_sent(WAIT) and a.stop().sent == 5


def test_streams_keyed_by_separate_bundles_and_ipv6(stack: ExitStack) -> None:
    """accept(): a receiver takes two peers' streams, each keyed by its own exchange; here on IPv6 loopback."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    ssrc_c = 0xC0C0C0C3
    b1_i, b1_r = bundles()
    b2_i, b2_r = bundles(specs=(CryptoSessionSpec(ssrc=ssrc_c), CryptoSessionSpec(ssrc=0)))
    rx = stack.enter_context(MediaSession(SSRC_B, bind=("::1", 0)))
    a = stack.enter_context(MediaSession(SSRC_A, bind=("::1", 0)))
    c = stack.enter_context(MediaSession(ssrc_c, bind=("::1", 0)))
    rx.start(b1_r, None)
    rx.accept(b2_r)
    a.start(b1_i, rx.address, source=ToneSource(400), packets=60, pace=False)
    c.start(b2_i, rx.address, source=ToneSource(900), packets=60, pace=False)
    assert rx.wait_received(120, WAIT)
    report = rx.stop()
    clean(report)
    assert {(s.ssrc, s.received, s.auth_failures) for s in report.streams} == {(SSRC_A, 60, 0), (ssrc_c, 60, 0)}
    assert report.stream(ssrc_c).tone_hz == pytest.approx(900, abs=1)  # type: ignore[union-attr]


def test_paced_sending_takes_20_ms_per_packet_and_silence_has_a_floor(stack: ExitStack) -> None:
    bi, br = bundles()
    a, b = session(stack, SSRC_A), session(stack, SSRC_B)
    b.start(br, None)
    a.start(bi, b.address, source=ToneSource(1000, 0.0), packets=10)  # real time; amplitude 0: digital silence
    assert a.wait_sent(WAIT) and b.wait_received(10, WAIT)
    ra, rb = a.stop(), b.stop()
    assert ra.duration_s >= 9 * 0.020 * 0.9  # nine intervals between ten packets, at least
    assert rb.level_dbfs == SILENCE_DBFS == -120.0 and rb.tone_hz is None
    assert json.loads(json.dumps(rb.to_dict()))["level_dbfs"] == -120.0


def test_relay_learns_addresses_and_forwards_bytes_unchanged() -> None:
    with ExitStack() as s:
        relay = s.enter_context(SrtpRelay())
        x, y = (s.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) for _ in range(2))
        for sock in (x, y):
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(WAIT)
        leg_x, leg_y = relay.add_leg(), relay.add_leg()
        x.sendto(b"\x80first", ("127.0.0.1", leg_x))  # nobody to deliver to yet; leg x learns x's address
        y.sendto(b"\x80from-y", ("127.0.0.1", leg_y))
        assert x.recvfrom(100) == (b"\x80from-y", ("127.0.0.1", leg_x))
        x.sendto(b"\x80from-x", ("127.0.0.1", leg_x))
        assert y.recvfrom(100) == (b"\x80from-x", ("127.0.0.1", leg_y))
        with pytest.raises(MediaError, match="no leg on port"):
            relay.set_remote(1, ("127.0.0.1", 9))
        counts = relay.stop()
        assert counts == {"forwarded": {leg_x: 2, leg_y: 1}, "delivered": {leg_x: 1, leg_y: 1}}
        assert relay.stop() == counts
        with pytest.raises(MediaError, match="stopped"):
            relay.add_leg()


@pytest.mark.parametrize("params", [SrtpPolicyParams(), SrtpPolicyParams(auth_tag_len=4), SrtpPolicyParams.aes_gcm(),
                                    SrtpPolicyParams.aes_gcm(32)],
                         ids=["AES-CM-128-HMAC-SHA1-80", "AES-CM-128-HMAC-SHA1-32", "AEAD-AES-128-GCM",
                              "AEAD-AES-256-GCM"])
def test_every_libsrtp_profile_from_the_sp_payload(stack: ExitStack, params: SrtpPolicyParams) -> None:
    """The SRTP policy the exchange negotiated (SP payload, RFC 3830 §6.10.1, RFC 7714 §15) protects the media."""
    policy = SecurityPolicyPayload(policy_no=0, prot_type=ProtType.SRTP, params=tuple(params.to_params()))
    bi, br = bundles(policies=[policy])
    assert br.params(1) == bi.params(1) and br.params(1).is_aead == params.is_aead
    a, b = session(stack, SSRC_A), session(stack, SSRC_B)
    b.start(br, None)
    a.start(bi, b.address, source=ToneSource(1000), packets=50, pace=False)
    assert b.wait_received(50, WAIT)
    rb = b.stop()
    clean(rb)
    assert (rb.received, rb.auth_failures, rb.lost) == (50, 0, 0)
    assert rb.tone_hz == pytest.approx(1000, abs=1)


def test_crypto_session_left_open_keys_any_ssrc_both_ways(stack: ExitStack) -> None:
    """One CS with SSRC 0 in the map (as MIKEY-SAKKE's empty map leaves it): each end sends its own SSRC under it."""
    bi, br = bundles(specs=(CryptoSessionSpec(ssrc=0),), own_ssrcs=())
    assert [cs.ssrc for cs in bi.crypto_sessions] == [cs.ssrc for cs in br.crypto_sessions] == [0]
    a, b = session(stack, SSRC_A), session(stack, SSRC_B)
    b.start(br, a.address, source=ToneSource(700), packets=40, pace=False)
    a.start(bi, b.address, source=ToneSource(1300), packets=40, pace=False)
    assert a.wait_received(40, WAIT) and b.wait_received(40, WAIT)
    ra, rb = a.stop(), b.stop()
    assert [(s.ssrc, s.received, s.auth_failures) for s in ra.streams] == [(SSRC_B, 40, 0)]
    assert [(s.ssrc, s.received, s.auth_failures) for s in rb.streams] == [(SSRC_A, 40, 0)]
    assert ra.tone_hz == pytest.approx(700, abs=1) and rb.tone_hz == pytest.approx(1300, abs=1)
