"""Audio over SRTP for the SIP user agents: RTP (RFC 3550) on UDP, protected with libsrtp, keyed by MIKEY.

A :class:`MediaSession` owns one UDP socket that carries RTP and RTCP together (RFC 5761 §4).
It sends G.711 µ-law (PT 0, RFC 3551 §4.5.14) in 20 ms packets of 160 samples from an
:class:`AudioSource` (:class:`ToneSource`, :class:`WavSource`), with RTCP sender reports
(RFC 3550 §6.4.1) and a BYE at the end (§6.6), all protected with SRTP/SRTCP (RFC 3711)
from a :class:`~mikey.session.CryptoSessionBundle`.  It receives every SSRC its bundles
hold keys for (a focus relaying a conference brings several), and counts per SSRC what
arrived, what was lost (Appendix A.3), what failed authentication or was a replay; it
decodes the audio and measures its level (dBFS RMS) and dominant frequency, and can
record it to a WAV file.

* Re-keying (RFC 3830 §4.5, a re-INVITE): :meth:`MediaSession.rekey` takes the new bundle;
  the receiver keeps the old keys of each stream until a packet under the new ones verifies.
* Group broadcast: the sender can start at any SEQ, with the ROC of the CS ID map (RFC 3830
  §6.1.1), send to several addresses (fan-out), and tell where the stream is
  (:meth:`MediaSession.send_position`) so a late joiner is keyed with the current ROC.
* Delayed delivery: ``store_srtp`` writes what arrives, undecrypted, to a pcap (Ethernet,
  IPv4/IPv6, UDP) that ``mikey srtp-decrypt`` and tshark read.
* A conference focus forwards SRTP between participants without keys: :class:`SrtpRelay`
  (an RTP translator that leaves packets unchanged, RFC 3550 §7.1, RFC 7667 §3.7).

The SRTP contexts are the session's own (built from the bundle's keys, policy and ROC, as
:meth:`CryptoSessionBundle.sender` builds them), so a bundle shared with other code or
re-keyed in place does not disturb a running stream.
"""

from __future__ import annotations

import math
import os
import selectors
import socket
import struct
import sys
import threading
import time
import wave
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol

import dpkt  # type: ignore[import-untyped]

try:  # POSIX: how many octets wait in a socket (FIONREAD), for wait_idle
    import fcntl
    import termios

    _FIONREAD: int | None = termios.FIONREAD
except ImportError:  # pragma: no cover - Windows
    _FIONREAD = None

from ..errors import AuthenticationError, CryptoError, MikeyDecodeError, MikeyError, StateError
from ..modes.results import CryptoSessionKeys
from ..session import CryptoSessionBundle
from ..srtp import SrtpContext
from .g711 import ulaw_decode, ulaw_encode
from .rtp import (
    RTCP_BYE,
    RTCP_SR,
    ReportBlock,
    SequenceStats,
    bye,
    is_rtcp,
    parse_rtcp,
    parse_rtp,
    receiver_report,
    rtp_header,
    sender_report,
)

__all__ = [
    "SAMPLE_RATE",
    "PTIME",
    "SAMPLES_PER_PACKET",
    "PT_PCMU",
    "MediaError",
    "AudioFormatError",
    "AudioSource",
    "ToneSource",
    "WavSource",
    "level_dbfs",
    "SILENCE_DBFS",
    "tone_frequency",
    "goertzel_power",
    "StreamReport",
    "MediaReport",
    "MediaSession",
    "SrtpRelay",
    "Address",
]

SAMPLE_RATE: Final = 8000  # G.711 (RFC 3551 §4.5.14)
PTIME: Final = 0.020  # 20 ms packets (RFC 3551 §4.5: the default packetisation of PCMU)
SAMPLES_PER_PACKET: Final = 160
PT_PCMU: Final = 0
#: Sender reports every this many RTP packets: 5 s of audio, RFC 3550 §6.2's minimum interval.
RTCP_EVERY: Final = 250
#: Remote SSRCs one session keeps state for; packets of further SSRCs are counted, not kept.
MAX_STREAMS: Final = 64
#: Samples kept per stream for the frequency estimate (1 s of audio).
ANALYSIS_SAMPLES: Final = SAMPLE_RATE
#: Silence inserted into a recording for a gap of lost packets, at most (in packets).
MAX_GAP_FILL: Final = 50
#: The longest stretch of a WAV file a WavSource reads (ten minutes).
WAV_MAX_SECONDS: Final = 600
#: Error lines a report keeps.
MAX_ERRORS: Final = 20
_RECV_BUFFER: Final = 1 << 21

Address = tuple[str, int]


class MediaError(MikeyError):
    """A media session used wrongly, or a socket/file it needs that cannot be used."""

    kind = "media"


class AudioFormatError(MediaError):
    """An audio file this module cannot send (not a 16-bit PCM WAV)."""

    kind = "audio-format"


# --- audio sources ---------------------------------------------------------------------------


class AudioSource(Protocol):
    """Signed 16-bit samples at 8 kHz, *n* at a time; ``None`` when the source has ended."""

    def read(self, n: int) -> Sequence[int] | None: ...


class ToneSource:
    """A sine tone of *hz* at *amplitude* (fraction of full scale; RMS level 20·log10(a/√2) dBFS)."""

    def __init__(self, hz: float, amplitude: float = 0.5) -> None:
        if not 0 < hz < SAMPLE_RATE / 2:
            raise MediaError(f"tone frequency {hz} Hz is not between 0 and {SAMPLE_RATE // 2} Hz (Nyquist)")
        if not 0 <= amplitude <= 1:
            raise MediaError(f"tone amplitude {amplitude} is not between 0 and 1 (of full scale)")
        self.hz = hz
        self.amplitude = amplitude
        self._n = 0

    def __repr__(self) -> str:
        return f"ToneSource({self.hz:g} Hz, amplitude {self.amplitude:g})"

    def read(self, n: int) -> list[int]:
        step = 2 * math.pi * self.hz / SAMPLE_RATE
        scale = 32767 * self.amplitude
        start = self._n
        self._n += n
        return [round(scale * math.sin(step * (start + i))) for i in range(n)]


class WavSource:
    """The audio of a PCM WAV file: 16-bit, mono or stereo (mixed down), any rate (resampled to 8 kHz).

    Other sample widths and compressed WAVs raise :class:`AudioFormatError`.  At most the
    first :data:`WAV_MAX_SECONDS` are read (memory stays bounded whatever the file).  With ``loop``
    the file starts again at its end; otherwise the source ends with it.
    """

    def __init__(self, path: Path | str, *, loop: bool = False) -> None:
        self.path = Path(path)
        self.loop = loop
        try:
            with wave.open(str(self.path), "rb") as w:
                channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
                raw = w.readframes(min(frames, rate * WAV_MAX_SECONDS))
        except (OSError, EOFError) as exc:
            raise AudioFormatError(f"cannot read {self.path}: {exc}") from None
        except wave.Error as exc:
            raise AudioFormatError(f"{self.path} is not a PCM WAV file ({exc})") from None
        if width != 2:
            raise AudioFormatError(f"{self.path}: {8 * width}-bit samples; only 16-bit PCM WAV is supported")
        if channels not in (1, 2):
            raise AudioFormatError(f"{self.path}: {channels} channels; only mono or stereo is supported")
        samples = array("h")
        samples.frombytes(raw[: len(raw) // 2 * 2])
        if sys.byteorder == "big":
            samples.byteswap()
        if channels == 2:
            samples = array("h", [(samples[i] + samples[i + 1]) // 2 for i in range(0, len(samples) - 1, 2)])
        self.source_rate = rate
        self.samples = samples if rate == SAMPLE_RATE else _resample(samples, rate, SAMPLE_RATE)
        if not self.samples:
            raise AudioFormatError(f"{self.path} holds no audio")
        self._pos = 0

    def __repr__(self) -> str:
        return f"WavSource({str(self.path)!r}, {len(self.samples)} samples)"

    def read(self, n: int) -> list[int] | None:
        if self._pos >= len(self.samples):
            if not self.loop:
                return None
            self._pos = 0
        out = list(self.samples[self._pos:self._pos + n])
        self._pos += n
        while self.loop and len(out) < n:
            self._pos = n - len(out)
            out += self.samples[: self._pos]
        return out + [0] * (n - len(out))


def _resample(samples: array[int], rate: int, target: int) -> array[int]:
    """Linear interpolation to *target* Hz, after a moving-average low-pass when decimating."""
    if rate <= 0:
        raise AudioFormatError(f"WAV sample rate {rate} Hz")
    data: Sequence[float] | array[int] = samples
    width = rate // target
    if width > 1:  # box filter over one output period: first null at the new sample rate
        acc = [0.0] * (len(samples) + 1)
        for i, s in enumerate(samples):
            acc[i + 1] = acc[i] + s
        data = [(acc[min(len(samples), i + width)] - acc[i]) / (min(len(samples), i + width) - i)
                for i in range(len(samples))]
    count = int(len(samples) * target / rate)
    out = array("h")
    ratio = rate / target
    last = len(data) - 1
    for k in range(count):
        x = k * ratio
        i = int(x)
        frac = x - i
        a = data[min(i, last)]
        b = data[min(i + 1, last)]
        out.append(max(-32768, min(32767, round(a + (b - a) * frac))))
    return out


# --- audio measurements -------------------------------------------------------------------------


#: The level reported for digital silence (all samples zero).
SILENCE_DBFS: Final = -120.0


def level_dbfs(sum_squares: float, count: int) -> float | None:
    """RMS level in dB relative to full scale (32768): a full-scale sine is -3.01 dBFS, digital silence
    :data:`SILENCE_DBFS`.  None without samples."""
    if count <= 0:
        return None
    rms = math.sqrt(sum_squares / count)
    return max(SILENCE_DBFS, round(20 * math.log10(rms / 32768), 2)) if rms > 0 else SILENCE_DBFS


def tone_frequency(samples: Sequence[int], rate: int = SAMPLE_RATE) -> float | None:
    """The frequency of the dominant tone, from the zero crossings (interpolated between samples).

    Exact for a single tone; for other audio it is the mean crossing rate.  None for fewer
    than three crossings (silence, or too short).
    """
    first = last = -1.0
    crossings = 0
    prev = samples[0] if samples else 0
    for i in range(1, len(samples)):
        cur = samples[i]
        if (prev < 0) != (cur < 0):
            at = i - 1 + prev / (prev - cur)
            if crossings == 0:
                first = at
            last = at
            crossings += 1
        prev = cur
    if crossings < 3 or last <= first:
        return None
    return round((crossings - 1) / 2 / ((last - first) / rate), 2)


def goertzel_power(samples: Sequence[int], hz: float, rate: int = SAMPLE_RATE) -> float:
    """Power of *samples* at *hz* (Goertzel), normalised so a full-scale sine there gives about 0.25."""
    n = len(samples)
    if n == 0:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x / 32768 + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * n)


# --- files: pcap of what arrived, WAV of what was decoded --------------------------------------------


class _PcapStore:
    """Received datagrams as Ethernet/IP/UDP frames in a classic pcap, written to ``<path>.part`` then renamed."""

    def __init__(self, path: Path, local: Address) -> None:
        self.path = path
        self.part = path.with_name(path.name + ".part")
        self.local = local
        self.packets = 0
        try:
            self._file: BinaryIO = open(self.part, "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise MediaError(f"cannot write {self.part}: {exc.strerror or exc}") from None
        self._writer = dpkt.pcap.Writer(self._file, linktype=dpkt.pcap.DLT_EN10MB, nano=False)
        self._ident = 0

    def write(self, data: bytes, source: Address, when: float) -> None:
        udp = dpkt.udp.UDP(sport=source[1], dport=self.local[1], data=data)
        udp.ulen = 8 + len(data)
        if ":" in source[0]:
            ip: Any = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, source[0]),
                                   dst=socket.inet_pton(socket.AF_INET6, self.local[0]),
                                   nxt=dpkt.ip.IP_PROTO_UDP, hlim=64, plen=udp.ulen, data=udp)
            eth_type = dpkt.ethernet.ETH_TYPE_IP6
        else:
            self._ident = (self._ident + 1) & 0xFFFF
            ip = dpkt.ip.IP(src=socket.inet_aton(source[0]), dst=socket.inet_aton(self.local[0]),
                            p=dpkt.ip.IP_PROTO_UDP, ttl=64, id=self._ident, len=20 + udp.ulen, data=udp)
            eth_type = dpkt.ethernet.ETH_TYPE_IP
        frame = dpkt.ethernet.Ethernet(src=b"\x02\x00\x00\x00\x00\x01", dst=b"\x02\x00\x00\x00\x00\x02",
                                       type=eth_type, data=ip)
        self._writer.writepkt(bytes(frame), ts=when)
        self.packets += 1

    def close(self) -> None:
        self._file.close()
        os.replace(self.part, self.path)


class _WavRecorder:
    """Decoded audio of one stream, 16-bit mono 8 kHz, written to ``<path>.part`` then renamed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.part = path.with_name(path.name + ".part")
        try:
            self._wav = wave.open(str(self.part), "wb")
        except OSError as exc:
            raise MediaError(f"cannot write {self.part}: {exc.strerror or exc}") from None
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self.samples = 0

    def write(self, samples: array[int]) -> None:
        if sys.byteorder == "big":
            samples = array("h", samples)
            samples.byteswap()
        self._wav.writeframes(samples.tobytes())
        self.samples += len(samples)

    def close(self) -> None:
        self._wav.close()
        os.replace(self.part, self.path)


# --- reports ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamReport:
    """What one remote SSRC delivered (RFC 3550 A.3 counts; SRTP failures as libsrtp reported them)."""

    ssrc: int
    received: int  # RTP packets that verified
    expected: int  # from the extended highest sequence number (A.3)
    lost: int
    auth_failures: int  # RTP packets failing SRTP authentication (or keyed with the wrong ROC)
    replays: int  # RTP packets libsrtp's replay list refused (RFC 3711 §3.3.2)
    undecrypted: int  # RTP packets kept without keys for them (store_srtp only)
    rtcp_received: int
    rtcp_auth_failures: int
    byes: int
    old_key_packets: int  # packets verified with the previous keys after a rekey
    key_switches: int  # times the stream's new keys took over after a rekey
    first_seq: int | None
    highest_seq: int | None  # extended (cycles + seq)
    roc: int | None  # the receiver's SRTP rollover counter for the stream
    jitter_ms: float
    decoded_samples: int
    other_payloads: int  # packets with a payload type other than PCMU
    level_dbfs: float | None
    tone_hz: float | None
    sender_packets: int | None  # packet count of the last sender report
    recording: str | None
    first_rx_unix: float | None = None  # wall-clock time the first packet verified (to time call set-up)
    # From this source's last RTCP reception report about our stream (RFC 3550 §6.4.1):
    reported_lost: int | None = None  # packets of ours it counts as lost
    reported_highest_seq: int | None = None  # the extended highest sequence number of ours it received
    reported_jitter_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["ssrc"] = f"{self.ssrc:08x}"
        return d


@dataclass(frozen=True)
class MediaReport:
    """The sending and receiving of one :class:`MediaSession`; ``to_dict()`` is JSON-ready.

    The top-level receive figures add up the streams; ``level_dbfs``/``tone_hz`` are those of
    the stream with the most packets.
    """

    local_ssrc: int
    port: int
    sent: int
    sent_octets: int
    rtcp_sent: int
    send_errors: int
    first_seq: int | None  # of the first RTP packet sent
    next_seq: int  # and the ROC it will be sent with (send_position)
    send_roc: int
    received: int
    lost: int
    auth_failures: int
    replays: int
    undecrypted: int
    rtcp_received: int
    level_dbfs: float | None
    tone_hz: float | None
    streams: tuple[StreamReport, ...]
    unkeyed_packets: int  # packets of SSRCs no bundle has keys for
    malformed: int
    rekeys: int
    duration_s: float
    stored_srtp: str | None
    stored_packets: int
    errors: tuple[str, ...] = field(default=())
    own_ssrc_packets: int = 0  # packets carrying our own SSRC (looped back, or a collision: RFC 3550 §8.2)
    started_unix: float | None = None  # wall-clock time of start()
    first_tx_unix: float | None = None  # wall-clock time the first RTP packet was sent

    def stream(self, ssrc: int) -> StreamReport | None:
        return next((s for s in self.streams if s.ssrc == ssrc), None)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["local_ssrc"] = f"{self.local_ssrc:08x}"
        d["streams"] = [s.to_dict() for s in self.streams]
        d["errors"] = list(self.errors)
        return d


# --- receiving ------------------------------------------------------------------------------------


class _Inbound:
    """One remote SSRC: its SRTP contexts (current keys first, then candidates), counts and audio."""

    def __init__(self, ssrc: int, contexts: list[SrtpContext], keyed: bool) -> None:
        self.ssrc = ssrc
        # Contexts that may verify this SSRC; after the first packet verifies, only the one that did.
        self.contexts = contexts
        self.bound = False
        self.keyed = keyed
        # After a rekey: the new keys, tried first; they replace `contexts` once one verifies.
        self.pending: list[SrtpContext] = []
        self.seq: SequenceStats | None = None
        self.auth_failures = self.replays = self.undecrypted = 0
        self.rtcp_received = self.rtcp_auth_failures = self.byes = 0
        self.old_key_packets = self.key_switches = 0
        self.other_payloads = 0
        self.sum_squares = 0.0
        self.samples = 0
        self.analysis = array("h")
        self.sender_packets: int | None = None
        self.last_sr: tuple[int, float] | None = None  # (middle 32 bits of its NTP time, arrival time)
        self.recorder: _WavRecorder | None = None
        self.last_ext_seq: int | None = None
        self.first_rx_unix: float | None = None
        self.about_us: ReportBlock | None = None  # its last reception report about our stream

    def unprotect(self, data: bytes, rtcp: bool) -> tuple[bytes, bool]:
        """(plaintext, verified with old keys after a rekey); AuthenticationError when no context verifies."""
        last: AuthenticationError | None = None
        for ctx in self.pending:
            try:
                plain = ctx.unprotect_rtcp(data) if rtcp else ctx.unprotect(data)
            except AuthenticationError as exc:
                last = exc
                continue
            self.contexts, self.pending, self.bound = [ctx], [], True
            self.key_switches += 1
            return plain, False
        for ctx in self.contexts:
            try:
                plain = ctx.unprotect_rtcp(data) if rtcp else ctx.unprotect(data)
            except AuthenticationError as exc:
                last = exc
                continue
            if not self.bound:
                self.contexts, self.bound = [ctx], True
            return plain, bool(self.pending)
        raise last if last is not None else AuthenticationError("no keys for this SSRC")

    def roc(self) -> int | None:
        if not self.bound:
            return None
        try:
            return self.contexts[0].roc(self.ssrc)
        except MikeyError:
            return None

    def report(self) -> StreamReport:
        seq = self.seq
        return StreamReport(
            ssrc=self.ssrc,
            received=seq.received if seq else 0,
            expected=seq.expected if seq else 0,
            lost=seq.lost if seq else 0,
            auth_failures=self.auth_failures,
            replays=self.replays,
            undecrypted=self.undecrypted,
            rtcp_received=self.rtcp_received,
            rtcp_auth_failures=self.rtcp_auth_failures,
            byes=self.byes,
            old_key_packets=self.old_key_packets,
            key_switches=self.key_switches,
            first_seq=seq.base_seq if seq else None,
            highest_seq=seq.extended_max if seq else None,
            roc=self.roc(),
            jitter_ms=round(seq.jitter / SAMPLE_RATE * 1000, 3) if seq else 0.0,
            decoded_samples=self.samples,
            other_payloads=self.other_payloads,
            level_dbfs=level_dbfs(self.sum_squares, self.samples),
            tone_hz=tone_frequency(self.analysis),
            sender_packets=self.sender_packets,
            recording=str(self.recorder.path) if self.recorder is not None else None,
            first_rx_unix=self.first_rx_unix,
            reported_lost=self.about_us.cumulative_lost if self.about_us else None,
            reported_highest_seq=self.about_us.highest_seq if self.about_us else None,
            reported_jitter_ms=round(self.about_us.jitter / SAMPLE_RATE * 1000, 3) if self.about_us else None,
        )


def _context(bundle: CryptoSessionBundle, cs: CryptoSessionKeys, ssrc: int, *, outbound: bool,
             roc: int | None = None) -> SrtpContext:
    """A context of the session's own for *cs* and *ssrc* (as :meth:`CryptoSessionBundle.sender` builds one)."""
    return SrtpContext(cs.master_key, cs.master_salt, bundle.params(cs.cs_id), ssrc=ssrc, outbound=outbound,
                       roc=cs.roc if roc is None else roc, ignore_rcc=bundle.ignore_rcc)


def _receive_sessions(bundle: CryptoSessionBundle, ssrc: int, local_ssrc: int) -> list[CryptoSessionKeys]:
    """The crypto sessions that may key remote *ssrc*: the one mapped to it, else those left open.

    With neither, the one :meth:`CryptoSessionBundle.stream_pair` picks for receiving (a bundle
    with one crypto session keys both directions, RFC 3711 §8).
    """
    exact = bundle.find(ssrc)
    if exact is not None:
        return [exact]
    sessions = [cs for cs in bundle.crypto_sessions if not cs.ssrc]
    try:
        recv = bundle.keys(bundle.stream_pair(local_ssrc, ssrc)[1])
    except (MikeyError, KeyError):
        return sessions
    if recv.ssrc == ssrc or not recv.ssrc or len(bundle.crypto_sessions) == 1:
        if all(cs.cs_id != recv.cs_id for cs in sessions):
            sessions.append(recv)
    return sessions


# --- the session ------------------------------------------------------------------------------------


class MediaSession:
    """One RTP/RTCP endpoint on one UDP socket, with SRTP/SRTCP keyed from MIKEY.

    ``MediaSession(ssrc)`` binds the socket (``.port``); :meth:`start` keys it and starts
    sending (with a *source* and somewhere to send) and receiving; :meth:`stop` ends both
    and returns the :class:`MediaReport`.  Usable as a context manager (stops on exit).
    """

    def __init__(self, local_ssrc: int, *, bind: Address = ("127.0.0.1", 0)) -> None:
        if not 0 <= local_ssrc <= 0xFFFFFFFF:
            raise MediaError(f"SSRC {local_ssrc} does not fit in 32 bits")
        self.local_ssrc = local_ssrc
        family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECV_BUFFER)
            self._sock.bind(bind)
        except (OSError, OverflowError) as exc:
            self._sock.close()
            raise MediaError(f"cannot bind UDP {bind[0]}:{bind[1]}: {getattr(exc, 'strerror', None) or exc}") from None
        self._sock.settimeout(0.05)
        name = self._sock.getsockname()
        self.address: Address = (name[0], name[1])
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._send_done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._stopped: MediaReport | None = None
        self._t0 = 0.0
        self._started_unix: float | None = None
        self._first_tx_unix: float | None = None
        # keys
        self._bundles: list[CryptoSessionBundle] = []
        self._send_ctx: SrtpContext | None = None
        self._next_send: SrtpContext | None = None
        self._next_roc = 0
        self.rekeys = 0
        # sending
        self._remotes: list[Address] = []
        self._learn_remote = False
        self._seq = 0
        self._roc = 0
        self._first_seq: int | None = None
        self._timestamp = 0
        self.sent = self.sent_octets = self.rtcp_sent = self.send_errors = 0
        # receiving
        self._streams: dict[int, _Inbound] = {}
        self.unkeyed_packets = self.malformed = self.own_ssrc_packets = 0
        self._record: Path | None = None
        self._store: _PcapStore | None = None
        self._errors: list[str] = []
        self._arrivals = 0
        self._verified_rtp = 0
        self._sending = False
        self._rtcp_every = RTCP_EVERY
        self._roc_seq: int | None = None

    def __repr__(self) -> str:
        return f"MediaSession(ssrc={self.local_ssrc:08x}, port={self.port}, sent={self.sent})"

    def __enter__(self) -> MediaSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self.address[1]

    # -- keys --------------------------------------------------------------------------------------

    def _sender_for(self, bundle: CryptoSessionBundle, roc: int | None) -> tuple[SrtpContext, int] | None:
        """The outbound context for the local SSRC and the ROC it starts at, or None if the bundle sends nothing."""
        try:
            cs = bundle.keys(bundle.stream_pair(self.local_ssrc)[0])
        except MikeyError:
            return None
        start_roc = cs.roc if roc is None else roc
        return _context(bundle, cs, self.local_ssrc, outbound=True, roc=start_roc), start_roc

    def accept(self, bundle: CryptoSessionBundle) -> None:
        """Also receive the SSRCs *bundle* has keys for (a focus relaying others' streams, each keyed apart)."""
        with self._lock:
            self._bundles.append(bundle)

    def rekey(self, bundle: CryptoSessionBundle, *, send: bool = True) -> None:
        """Switch to the keys of *bundle* (RFC 3830 §4.5 update, e.g. by re-INVITE) without stopping the stream.

        Each stream received keeps its old keys until a packet under the new ones verifies.
        The sender switches now, or with ``send=False`` at :meth:`switch_sender` (an answerer
        can wait until the offerer has the new keys).  The sending ROC is the new bundle's
        (the CS ID map of the update, RFC 3830 §6.1.1); the sequence numbers go on.
        """
        with self._lock:
            index = next((i for i, b in enumerate(self._bundles) if b.csb_id == bundle.csb_id), 0)
            # Every new context first (a policy libsrtp refuses raises here, changing nothing), then the switch.
            pending = {stream.ssrc: [_context(bundle, cs, stream.ssrc, outbound=False)
                                     for cs in _receive_sessions(bundle, stream.ssrc, self.local_ssrc)]
                       for stream in self._streams.values()}
            sender = self._sender_for(bundle, None) if index == 0 else None
            if self._bundles:
                self._bundles[index] = bundle
            else:
                self._bundles.append(bundle)
            for stream in self._streams.values():
                stream.pending = pending[stream.ssrc]
                stream.keyed = stream.keyed or bool(stream.pending)
            self._next_send, self._next_roc = (sender[0], sender[1]) if sender else (None, 0)
            self.rekeys += 1
        if send:
            self.switch_sender()

    def switch_sender(self) -> None:
        """Start protecting with the keys of the last :meth:`rekey` (no-op when there are none pending)."""
        with self._lock:
            if self._next_send is not None:
                self._send_ctx, self._roc = self._next_send, self._next_roc
                self._next_send = None

    def send_position(self) -> tuple[int, int]:
        """(SEQ, ROC) of the next RTP packet sent: what a late joiner's CS ID map needs (RFC 3830 §6.1.1)."""
        with self._lock:
            return self._seq, self._roc

    # -- start / stop -----------------------------------------------------------------------------------

    def start(
        self,
        bundle: CryptoSessionBundle | None,
        remote: Address | Sequence[Address] | None,
        *,
        source: AudioSource | None = None,
        packets: int | None = None,
        pace: bool | float = True,
        record: Path | None = None,
        store_srtp: Path | None = None,
        start_seq: int | None = None,
        roc: int | None = None,
        timestamp: int | None = None,
        rtcp_every: int = RTCP_EVERY,
        roc_seq: int | None = None,
    ) -> None:
        """Key the session with *bundle* and start receiving, and sending when there is a *source*.

        *remote*: one address or several (fan-out: every packet goes to each); None sends to
        where the first authenticated packet came from (symmetric RTP, RFC 4961).  *packets*
        stops sending after that many (else at the source's end or :meth:`stop`); *pace* is
        True for real time (20 ms), False for as fast as possible, or seconds per packet.
        *start_seq*/*timestamp* default to random (RFC 3550 §5.1); *roc* defaults to the CS
        ID map's.  *bundle* None receives without keys (only with *store_srtp*: a voicemail
        that keeps the SRTP it cannot decrypt).  *record* writes the decoded audio of the
        first stream to that WAV file (further streams next to it, ``<stem>-<ssrc>.wav``).
        *roc_seq*: for a late joiner, the SEQ the sender was at when the ROC of the CS ID map
        was read (:meth:`send_position`); a stream whose first packet comes after a wrap then
        takes ROC + 1, as RFC 3711 §3.3.1 estimates it from that SEQ.  Without it the ROC of
        the map is taken as is.
        """
        if self._started:
            raise StateError("this media session was started already")
        if bundle is None and store_srtp is None:
            raise MediaError("a media session without keys can only store what it receives (store_srtp)")
        if packets is not None and packets < 0:
            raise MediaError(f"packets must not be negative, got {packets}")
        if start_seq is not None and not 0 <= start_seq <= 0xFFFF:
            raise MediaError(f"start SEQ {start_seq} does not fit in 16 bits")
        if rtcp_every <= 0:
            raise MediaError("rtcp_every must be positive")
        if roc_seq is not None and not 0 <= roc_seq <= 0xFFFF:
            raise MediaError(f"roc_seq {roc_seq} does not fit in 16 bits")
        ptime = PTIME if pace is True else 0.0 if pace is False else float(pace)
        if not ptime >= 0:
            raise MediaError(f"pace must be True, False or seconds per packet (>= 0), got {pace!r}")
        sender = self._sender_for(bundle, roc) if bundle is not None else None
        if source is not None and sender is None:
            raise MediaError(f"the bundle has no crypto session to send SSRC {self.local_ssrc:08x} with")
        if remote is None:
            remotes: list[Address] = []
        elif isinstance(remote, tuple) and len(remote) == 2 and isinstance(remote[0], str):
            remotes = [(remote[0], int(remote[1]))]
        else:
            remotes = [(str(a[0]), int(a[1])) for a in remote]
        if record is not None and not (record.parent.is_dir() and os.access(record.parent, os.W_OK)):
            raise MediaError(f"cannot record to {record}: {record.parent} is not a writable directory")
        store = _PcapStore(store_srtp, self.address) if store_srtp is not None else None
        # Checked: now the session takes its settings.
        rand = int.from_bytes(os.urandom(6), "big")
        self._seq = (rand & 0x7FFF) if start_seq is None else start_seq  # RFC 3550 §5.1: random start
        self._timestamp = (rand >> 16) if timestamp is None else timestamp & 0xFFFFFFFF
        if bundle is not None:
            self._bundles.insert(0, bundle)  # the primary bundle, before any accept()ed ones
        if sender is not None:
            self._send_ctx, self._roc = sender
        self._remotes, self._learn_remote = remotes, remote is None
        self._record = record
        self._store = store
        self._sending = source is not None
        self._rtcp_every = rtcp_every
        self._roc_seq = roc_seq
        self._started = True
        self._t0 = time.monotonic()
        self._started_unix = time.time()
        receiver = threading.Thread(target=self._receive_loop, name=f"media-rx-{self.local_ssrc:08x}", daemon=True)
        self._threads.append(receiver)
        receiver.start()
        if source is not None:
            sender_thread = threading.Thread(target=self._send_loop, args=(source, packets, ptime, rtcp_every),
                                             name=f"media-tx-{self.local_ssrc:08x}", daemon=True)
            self._threads.append(sender_thread)
            sender_thread.start()
        else:
            self._send_done.set()

    def add_remote(self, remote: Address) -> None:
        """Send to *remote* as well from now on (fan-out to a receiver that joined)."""
        with self._lock:
            if remote not in self._remotes:
                self._remotes.append(remote)

    def wait_sent(self, timeout: float) -> bool:
        """Wait until the sender has sent its *packets* (or its source ended); False on timeout."""
        return self._send_done.wait(timeout)

    def wait_received(self, packets: int, timeout: float, *, ssrc: int | None = None) -> bool:
        """Wait until *packets* RTP packets verified (from *ssrc*, or all streams together); False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                streams = [s for s in self._streams.values() if ssrc is None or s.ssrc == ssrc]
                got = sum(s.seq.received for s in streams if s.seq is not None)
            if got >= packets:
                return True
            if time.monotonic() >= deadline or self._stopping.is_set():
                return False
            time.sleep(0.01)

    def wait_idle(self, quiet: float = 0.2, timeout: float = 10.0) -> bool:
        """Wait until nothing has arrived for *quiet* seconds and nothing waits in the socket; False on timeout."""
        deadline = time.monotonic() + timeout
        last = -1
        still_since = time.monotonic()
        while time.monotonic() < deadline:
            with self._lock:
                now_count = self._arrivals
            if now_count != last or self._queued():
                last, still_since = now_count, time.monotonic()
            elif time.monotonic() - still_since >= quiet:
                return True
            time.sleep(0.02)
        return False

    def _queued(self) -> bool:
        """Whether a datagram waits in the socket's receive queue (FIONREAD; False where there is none)."""
        if _FIONREAD is None or self._sock.fileno() < 0:
            return False
        try:
            raw = fcntl.ioctl(self._sock.fileno(), _FIONREAD, b"\0\0\0\0")
        except OSError:
            return False
        pending: int = struct.unpack("i", raw)[0]
        return pending > 0

    def stop(self) -> MediaReport:
        """Stop sending (SR + BYE, RFC 3550 §6.6) and receiving, close the socket and files; the report."""
        if self._stopped is not None:
            return self._stopped
        self._stopping.set()
        for t in self._threads:
            t.join(timeout=5.0)
            if t.is_alive():
                self._error(f"{t.name} did not stop within 5 s")
        if self._started and self._send_ctx is not None and self._remotes:
            self._send_rtcp(final=True)
        self._sock.close()
        for stream in self._streams.values():
            if stream.recorder is not None:
                self._close_file(stream.recorder)
        if self._store is not None:
            self._close_file(self._store)
        self._stopped = self.report()
        return self._stopped

    def _error(self, text: str) -> None:
        """Note a failure for the report; the first :data:`MAX_ERRORS` are kept, then only counted."""
        if len(self._errors) < MAX_ERRORS:
            self._errors.append(text)
        elif len(self._errors) == MAX_ERRORS:
            self._errors.append("further errors not kept")

    def _close_file(self, f: _PcapStore | _WavRecorder) -> None:
        try:
            f.close()
        except (OSError, wave.Error) as exc:
            self._error(f"cannot finish {f.path}: {exc}")

    def report(self) -> MediaReport:
        """The figures so far (:meth:`stop` returns the final ones)."""
        with self._lock:
            streams = tuple(s.report() for s in sorted(self._streams.values(), key=lambda s: s.ssrc))
        main = max(streams, key=lambda s: s.received, default=None)
        return MediaReport(
            local_ssrc=self.local_ssrc, port=self.port, sent=self.sent, sent_octets=self.sent_octets,
            rtcp_sent=self.rtcp_sent, send_errors=self.send_errors, first_seq=self._first_seq,
            next_seq=self._seq, send_roc=self._roc,
            received=sum(s.received for s in streams), lost=sum(s.lost for s in streams),
            auth_failures=sum(s.auth_failures for s in streams), replays=sum(s.replays for s in streams),
            undecrypted=sum(s.undecrypted for s in streams), rtcp_received=sum(s.rtcp_received for s in streams),
            level_dbfs=main.level_dbfs if main is not None and main.received else None,
            tone_hz=main.tone_hz if main is not None and main.received else None,
            streams=streams, unkeyed_packets=self.unkeyed_packets, malformed=self.malformed, rekeys=self.rekeys,
            duration_s=round(time.monotonic() - self._t0, 3) if self._started else 0.0,
            stored_srtp=str(self._store.path) if self._store is not None else None,
            stored_packets=self._store.packets if self._store is not None else 0,
            errors=tuple(self._errors),
            own_ssrc_packets=self.own_ssrc_packets,
            started_unix=self._started_unix,
            first_tx_unix=self._first_tx_unix,
        )

    # -- sending ----------------------------------------------------------------------------------

    def _send_loop(self, source: AudioSource, packets: int | None, ptime: float, rtcp_every: int) -> None:
        try:
            due = time.monotonic()
            while not self._stopping.is_set() and (packets is None or self.sent < packets):
                if not self._remotes:  # nowhere to send yet (symmetric RTP, or a fan-out with no receiver)
                    self._stopping.wait(0.01)
                    due = time.monotonic()
                    continue
                samples = source.read(SAMPLES_PER_PACKET)
                if samples is None:
                    break
                self._send_rtp(ulaw_encode(samples))
                if self.sent % rtcp_every == 0:
                    self._send_rtcp()
                if ptime:
                    due += ptime
                    delay = due - time.monotonic()
                    if delay > 0:
                        self._stopping.wait(delay)
                    elif delay < -0.2:  # far behind (a busy machine): do not burst to catch up
                        due = time.monotonic()
            if self.sent % rtcp_every and self.sent:
                self._send_rtcp()
        except Exception as exc:  # the report must say what ended the sender
            self._error(f"sender: {type(exc).__name__}: {exc}")
        finally:
            self._send_done.set()

    def _send_rtp(self, payload: bytes) -> None:
        with self._lock:
            ctx = self._send_ctx
            seq, ts = self._seq, self._timestamp
            if ctx is None:
                return
            packet = rtp_header(PT_PCMU, seq, ts, self.local_ssrc, marker=self._first_seq is None) + payload
            wire = ctx.protect(packet)
            if self._first_seq is None:
                self._first_seq = seq
                self._first_tx_unix = time.time()
            self._seq = (seq + 1) & 0xFFFF
            if self._seq == 0:
                self._roc = (self._roc + 1) & 0xFFFFFFFF
            self._timestamp = (ts + SAMPLES_PER_PACKET) & 0xFFFFFFFF
            self.sent += 1
            self.sent_octets += len(payload)
            remotes = list(self._remotes)
        self._sendto(wire, remotes)

    def _sendto(self, wire: bytes, remotes: list[Address]) -> None:
        for addr in remotes:
            try:
                self._sock.sendto(wire, addr)
            except OSError:
                self.send_errors += 1

    def _send_rtcp(self, *, final: bool = False) -> None:
        """SR (RR when nothing was sent) with a report block per stream received; with BYE when *final*."""
        with self._lock:
            ctx = self._send_ctx
            if ctx is None:
                return
            now = time.time()
            blocks = []
            for s in list(self._streams.values())[:31]:
                if s.seq is None:
                    continue
                lsr, dlsr = 0, 0
                if s.last_sr is not None:
                    lsr, dlsr = s.last_sr[0], int((now - s.last_sr[1]) * 65536)
                blocks.append(s.seq.report_block(s.ssrc, lsr, dlsr))
            block_tuple: tuple[ReportBlock, ...] = tuple(blocks)
            if self.sent:
                packet = sender_report(self.local_ssrc, self._timestamp, self.sent, self.sent_octets, block_tuple,
                                       now=now)
            else:
                packet = receiver_report(self.local_ssrc, block_tuple)
            if final:
                packet += bye(self.local_ssrc)
            try:
                wire = ctx.protect_rtcp(packet)
            except CryptoError as exc:
                self._error(f"SRTCP protect: {exc}")
                return
            self.rtcp_sent += 1
            remotes = list(self._remotes)
        self._sendto(wire, remotes)

    # -- receiving -----------------------------------------------------------------------------------

    def _receive_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                data, addr = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError as exc:
                if not self._stopping.is_set():
                    self._error(f"receiver: {exc}")
                return
            try:
                self._on_datagram(data, (addr[0], addr[1]))
            except Exception as exc:  # one bad datagram must not end the receiver
                self._error(f"receiver: {type(exc).__name__}: {exc}")

    def _on_datagram(self, data: bytes, addr: Address) -> None:
        self._arrivals += 1
        if len(data) < 8 or data[0] >> 6 != 2:
            self.malformed += 1
            return
        if self._store is not None:
            self._store.write(data, addr, time.time())
        rtcp = is_rtcp(data)
        if not rtcp and len(data) < 12:
            self.malformed += 1
            return
        ssrc = struct.unpack_from("!I", data, 4 if rtcp else 8)[0]
        if ssrc == self.local_ssrc:  # our own stream looped back, or an SSRC collision (RFC 3550 §8.2)
            self.own_ssrc_packets += 1
            return
        with self._lock:
            stream = self._stream(ssrc, None if rtcp else struct.unpack_from("!H", data, 2)[0])
            if stream is None:
                self.unkeyed_packets += 1
                return
            if not stream.keyed:
                if not rtcp:
                    stream.undecrypted += 1
                return
            try:
                plain, old = stream.unprotect(data, rtcp)
            except AuthenticationError as exc:
                self._count_failure(stream, rtcp, exc)
                return
            if rtcp:
                self._on_rtcp(stream, plain)
            else:
                if old:
                    stream.old_key_packets += 1
                self._on_rtp(stream, plain)
                self._verified_rtp += 1
            if self._learn_remote and not self._remotes:
                self._remotes.append(addr)
            report_now = not rtcp and not self._sending and self._verified_rtp % self._rtcp_every == 0
        if report_now:  # a receiver only: an RR of its own (RFC 3550 §6.4.2)
            self._send_rtcp()

    def _stream(self, ssrc: int, seq: int | None) -> _Inbound | None:
        """The state of remote *ssrc*, made on its first packet (*seq*: its SEQ if RTP) when some bundle keys it."""
        stream = self._streams.get(ssrc)
        if stream is not None:
            return stream
        if len(self._streams) >= MAX_STREAMS:
            return None
        contexts = [_context(b, cs, ssrc, outbound=False, roc=self._join_roc(cs.roc, seq))
                    for b in self._bundles for cs in _receive_sessions(b, ssrc, self.local_ssrc)]
        if not contexts and self._store is None:
            return None
        stream = self._streams[ssrc] = _Inbound(ssrc, contexts, keyed=bool(contexts))
        return stream

    def _join_roc(self, roc: int, seq: int | None) -> int:
        """The ROC of a stream's first packet *seq*, keyed with *roc* read at SEQ ``roc_seq`` (RFC 3711 §3.3.1)."""
        s_l = self._roc_seq
        if s_l is None or seq is None:
            return roc
        if s_l < 0x8000:
            return (roc - 1) & 0xFFFFFFFF if seq - s_l > 0x8000 and roc > 0 else roc
        return (roc + 1) & 0xFFFFFFFF if s_l - 0x8000 > seq else roc

    @staticmethod
    def _count_failure(stream: _Inbound, rtcp: bool, exc: AuthenticationError) -> None:
        if rtcp:
            stream.rtcp_auth_failures += 1
        elif "replay" in exc.message:
            stream.replays += 1
        else:
            stream.auth_failures += 1

    def _on_rtcp(self, stream: _Inbound, plain: bytes) -> None:
        stream.rtcp_received += 1
        try:
            items = parse_rtcp(plain)
        except MikeyDecodeError:
            self.malformed += 1
            return
        for item in items:
            if item.packet_type == RTCP_SR and item.ntp is not None:
                stream.sender_packets = item.sender_packets
                stream.last_sr = ((item.ntp[0] & 0xFFFF) << 16 | item.ntp[1] >> 16, time.time())
            elif item.packet_type == RTCP_BYE:
                stream.byes += 1
            for block in item.blocks:
                if block.ssrc == self.local_ssrc:  # what this source says it received from us
                    stream.about_us = block

    def _on_rtp(self, stream: _Inbound, plain: bytes) -> None:
        try:
            packet = parse_rtp(plain)
        except MikeyDecodeError:
            self.malformed += 1
            return
        if stream.seq is None:
            stream.seq = SequenceStats(packet.seq)
            stream.first_rx_unix = time.time()
        if not stream.seq.update(packet.seq):
            return
        stream.seq.arrival(packet.timestamp, int((time.monotonic() - self._t0) * SAMPLE_RATE))
        if packet.payload_type != PT_PCMU:
            stream.other_payloads += 1
            return
        samples = ulaw_decode(packet.payload)
        stream.samples += len(samples)
        stream.sum_squares += math.fsum(s * s for s in samples)
        stream.analysis.extend(samples)
        if len(stream.analysis) > 2 * ANALYSIS_SAMPLES:
            del stream.analysis[: len(stream.analysis) - ANALYSIS_SAMPLES]
        self._record_audio(stream, samples)

    def _record_audio(self, stream: _Inbound, samples: array[int]) -> None:
        if self._record is None or stream.seq is None:
            return
        if stream.recorder is None:
            path = self._record
            if any(s.recorder is not None for s in self._streams.values()):
                path = path.with_name(f"{path.stem}-{stream.ssrc:08x}{path.suffix}")
            stream.recorder = _WavRecorder(path)
        ext = stream.seq.extended_max
        if stream.last_ext_seq is not None and ext - stream.last_ext_seq > 1:  # lost packets: silence
            gap = min(ext - stream.last_ext_seq - 1, MAX_GAP_FILL)
            stream.recorder.write(array("h", bytes(2 * SAMPLES_PER_PACKET * gap)))
        stream.last_ext_seq = ext
        stream.recorder.write(samples)


# --- a conference focus's relay ------------------------------------------------------------------------


class SrtpRelay:
    """Forwards SRTP/SRTCP between the participants of a conference without decrypting it.

    Each participant has a leg: a UDP socket of the relay (:meth:`add_leg` returns its port,
    for the focus's SDP answer) and the participant's media address (given, or learnt from
    its first datagram, RFC 4961).  What arrives on one leg goes out unchanged on every
    other leg whose address is known: an RTP transport translator (RFC 3550 §7.1, RFC 7667
    §3.7), so each participant needs the keys of the others' streams (a group key).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._selector = selectors.DefaultSelector()
        self._legs: dict[int, tuple[socket.socket, list[Address | None]]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.forwarded: dict[int, int] = {}  # leg port -> datagrams received on it and forwarded
        self.delivered: dict[int, int] = {}  # leg port -> datagrams sent out on it

    def __enter__(self) -> SrtpRelay:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_leg(self, remote: Address | None = None) -> int:
        """A new leg for one participant; its local port.  *remote* None: learnt from the first datagram."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECV_BUFFER)
            sock.bind((self.host, 0))
        except OSError as exc:
            sock.close()
            raise MediaError(f"cannot bind a relay leg on {self.host}: {exc.strerror or exc}") from None
        sock.setblocking(False)
        port: int = sock.getsockname()[1]
        with self._lock:
            if self._closed:
                sock.close()
                raise MediaError("the relay is stopped")
            self._legs[port] = (sock, [remote])
            self.forwarded[port] = self.delivered[port] = 0
            self._selector.register(sock, selectors.EVENT_READ, port)
        return port

    def set_remote(self, port: int, remote: Address) -> None:
        """The participant's media address of leg *port* (from its SDP)."""
        with self._lock:
            if port not in self._legs:
                raise MediaError(f"the relay has no leg on port {port}")
            self._legs[port][1][0] = remote

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="srtp-relay", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                port: int = key.data
                sock = self._legs[port][0]
                while True:
                    try:
                        data, addr = sock.recvfrom(65535)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    self._forward(port, data, (addr[0], addr[1]))

    def _forward(self, port: int, data: bytes, addr: Address) -> None:
        with self._lock:
            remote = self._legs[port][1]
            if remote[0] is None:
                remote[0] = addr
            targets = [(p, sock, r[0]) for p, (sock, r) in self._legs.items() if p != port and r[0] is not None]
            self.forwarded[port] += 1
        for p, sock, dest in targets:
            try:
                sock.sendto(data, dest)
                self.delivered[p] += 1
            except OSError:
                continue

    def stop(self) -> dict[str, Any]:
        """Stop forwarding, close the legs; per leg port: datagrams received and sent."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        with self._lock:
            if self._closed:
                return {"forwarded": dict(self.forwarded), "delivered": dict(self.delivered)}
            self._closed = True
            for sock, _ in self._legs.values():
                try:
                    self._selector.unregister(sock)
                except (KeyError, ValueError):
                    pass
                sock.close()
            self._selector.close()
        return {"forwarded": dict(self.forwarded), "delivered": dict(self.delivered)}
