"""RTP and RTCP packets and receiver statistics (RFC 3550), as :mod:`mikey.sip.media` uses them.

* :func:`rtp_header` / :func:`parse_rtp`: the fixed RTP header (§5.1), with CSRCs, header
  extension (§5.3.1) and padding read on the way in.
* :func:`sender_report`, :func:`receiver_report`, :func:`bye` and :func:`parse_rtcp`: RTCP SR,
  RR and BYE (§6.4.1, §6.4.2, §6.6) in compound packets (§6.1).
* :class:`SequenceStats`: packets received, expected and lost from the extended highest
  sequence number (Appendix A.1, A.3), and the interarrival jitter (A.8).
* :func:`is_rtcp`: RTP/RTCP demultiplexing on one port (RFC 5761 §4).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Final

from ..errors import MikeyDecodeError

__all__ = [
    "RTP_VERSION",
    "RtpPacket",
    "RtcpItem",
    "ReportBlock",
    "SequenceStats",
    "rtp_header",
    "parse_rtp",
    "is_rtcp",
    "ntp_now",
    "sender_report",
    "receiver_report",
    "bye",
    "parse_rtcp",
    "RTCP_SR",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_BYE",
    "RTCP_APP",
]

RTP_VERSION: Final = 2
RTCP_SR: Final = 200
RTCP_RR: Final = 201
RTCP_SDES: Final = 202
RTCP_BYE: Final = 203
RTCP_APP: Final = 204
_NTP_EPOCH_OFFSET: Final = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01 (RFC 5905 §6)
#: Appendix A.1 limits: a jump of up to MAX_DROPOUT ahead is taken as loss, up to MAX_MISORDER back as reordering.
MAX_DROPOUT: Final = 3000
MAX_MISORDER: Final = 100


@dataclass(frozen=True)
class RtpPacket:
    """The fields of an RTP packet (RFC 3550 §5.1) and its payload (after CSRCs, extension, padding)."""

    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    ssrc: int
    csrcs: tuple[int, ...]
    payload: bytes


def rtp_header(payload_type: int, seq: int, timestamp: int, ssrc: int, *, marker: bool = False) -> bytes:
    """The 12-octet fixed header: V=2, no padding, extension or CSRC (RFC 3550 §5.1)."""
    return struct.pack(
        "!BBHII", RTP_VERSION << 6, (0x80 if marker else 0) | (payload_type & 0x7F),
        seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF,
    )


def parse_rtp(packet: bytes) -> RtpPacket:
    """Read an RTP packet (RFC 3550 §5.1, §5.3.1); :class:`MikeyDecodeError` when it is not one."""
    if len(packet) < 12:
        raise MikeyDecodeError(f"RTP packet of {len(packet)} octets is shorter than the fixed header", payload="RTP")
    b0, b1, seq, timestamp, ssrc = struct.unpack_from("!BBHII", packet)
    if b0 >> 6 != RTP_VERSION:
        raise MikeyDecodeError(f"RTP version {b0 >> 6}, not 2", payload="RTP", offset=0)
    cc = b0 & 0x0F
    end = len(packet)
    offset = 12 + 4 * cc
    if offset > end:
        raise MikeyDecodeError(f"RTP header with {cc} CSRCs is longer than the packet", payload="RTP", offset=12)
    csrcs = struct.unpack_from(f"!{cc}I", packet, 12) if cc else ()
    if b0 & 0x10:  # header extension: 16-bit profile, 16-bit length in words
        if offset + 4 > end:
            raise MikeyDecodeError("RTP header extension is cut short", payload="RTP", offset=offset)
        words = struct.unpack_from("!H", packet, offset + 2)[0]
        offset += 4 + 4 * words
        if offset > end:
            raise MikeyDecodeError("RTP header extension is longer than the packet", payload="RTP", offset=offset)
    if b0 & 0x20:  # padding: the last octet counts the padding octets, itself included
        pad = packet[-1]
        if pad == 0 or offset + pad > end:
            raise MikeyDecodeError(f"RTP padding count {pad} does not fit the packet", payload="RTP", offset=end - 1)
        end -= pad
    return RtpPacket(b1 & 0x7F, bool(b1 & 0x80), seq, timestamp, ssrc, tuple(csrcs), bytes(packet[offset:end]))


def is_rtcp(packet: bytes) -> bool:
    """RTCP rather than RTP on a shared port: second octet 192-223 (RFC 5761 §4)."""
    return len(packet) > 1 and 192 <= packet[1] <= 223


def ntp_now(now: float | None = None) -> tuple[int, int]:
    """The 64-bit NTP timestamp (seconds, fraction) of a Unix time (RFC 3550 §4)."""
    t = time.time() if now is None else now
    seconds = int(t)
    return (seconds + _NTP_EPOCH_OFFSET) & 0xFFFFFFFF, int((t - seconds) * (1 << 32)) & 0xFFFFFFFF


@dataclass(frozen=True)
class ReportBlock:
    """One reception report block (RFC 3550 §6.4.1): what this end received from ``ssrc``."""

    ssrc: int
    fraction_lost: int  # 8-bit fixed point, lost/expected since the previous report
    cumulative_lost: int  # 24-bit signed
    highest_seq: int  # extended highest sequence number received
    jitter: int  # in timestamp units
    lsr: int = 0  # middle 32 bits of the last SR's NTP timestamp
    dlsr: int = 0  # delay since that SR, in 1/65536 s

    def encode(self) -> bytes:
        lost = max(-(1 << 23), min((1 << 23) - 1, self.cumulative_lost)) & 0xFFFFFF
        return struct.pack(
            "!IIIIII", self.ssrc, (self.fraction_lost & 0xFF) << 24 | lost, self.highest_seq & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF, self.lsr & 0xFFFFFFFF, self.dlsr & 0xFFFFFFFF,
        )


def _rtcp_header(count: int, packet_type: int, body_len: int) -> bytes:
    """Common RTCP header; the length is in 32-bit words minus one (RFC 3550 §6.4.1)."""
    return struct.pack("!BBH", RTP_VERSION << 6 | (count & 0x1F), packet_type, (4 + body_len) // 4 - 1)


def sender_report(
    ssrc: int, rtp_timestamp: int, packets: int, octets: int, blocks: tuple[ReportBlock, ...] = (),
    *, now: float | None = None,
) -> bytes:
    """An RTCP SR (RFC 3550 §6.4.1) with up to 31 report blocks."""
    ntp_sec, ntp_frac = ntp_now(now)
    body = struct.pack("!IIIIII", ssrc, ntp_sec, ntp_frac, rtp_timestamp & 0xFFFFFFFF, packets & 0xFFFFFFFF,
                       octets & 0xFFFFFFFF)
    body += b"".join(b.encode() for b in blocks[:31])
    return _rtcp_header(min(len(blocks), 31), RTCP_SR, len(body)) + body


def receiver_report(ssrc: int, blocks: tuple[ReportBlock, ...] = ()) -> bytes:
    """An RTCP RR (RFC 3550 §6.4.2) with up to 31 report blocks."""
    body = struct.pack("!I", ssrc) + b"".join(b.encode() for b in blocks[:31])
    return _rtcp_header(min(len(blocks), 31), RTCP_RR, len(body)) + body


def bye(ssrc: int) -> bytes:
    """An RTCP BYE for one SSRC, without a reason (RFC 3550 §6.6)."""
    return _rtcp_header(1, RTCP_BYE, 4) + struct.pack("!I", ssrc)


@dataclass(frozen=True)
class RtcpItem:
    """One packet of a compound RTCP packet (RFC 3550 §6.1): its type, first SSRC, and SR fields if an SR."""

    packet_type: int
    ssrc: int
    count: int
    ntp: tuple[int, int] | None = None
    rtp_timestamp: int | None = None
    sender_packets: int | None = None
    sender_octets: int | None = None
    blocks: tuple[ReportBlock, ...] = ()


def _blocks(data: bytes, offset: int, count: int, end: int) -> tuple[ReportBlock, ...]:
    out = []
    for i in range(count):
        at = offset + 24 * i
        if at + 24 > end:
            raise MikeyDecodeError("RTCP report block is cut short", payload="RTCP", offset=at)
        ssrc, word, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, at)
        lost = word & 0xFFFFFF
        out.append(ReportBlock(ssrc, word >> 24, lost - (1 << 24) if lost & 0x800000 else lost, highest, jitter,
                               lsr, dlsr))
    return tuple(out)


def parse_rtcp(packet: bytes) -> list[RtcpItem]:
    """The packets of a compound RTCP packet (RFC 3550 §6.1); :class:`MikeyDecodeError` when malformed."""
    items: list[RtcpItem] = []
    offset = 0
    while offset < len(packet):
        if offset + 8 > len(packet):
            raise MikeyDecodeError("RTCP packet shorter than its header and SSRC", payload="RTCP", offset=offset)
        b0, packet_type, words = struct.unpack_from("!BBH", packet, offset)
        if b0 >> 6 != RTP_VERSION:
            raise MikeyDecodeError(f"RTCP version {b0 >> 6}, not 2", payload="RTCP", offset=offset)
        end = offset + 4 * (words + 1)
        if end > len(packet):
            raise MikeyDecodeError("RTCP length field runs past the packet", payload="RTCP", offset=offset + 2)
        count = b0 & 0x1F
        ssrc = struct.unpack_from("!I", packet, offset + 4)[0]
        if packet_type == RTCP_SR:
            if offset + 28 > end:
                raise MikeyDecodeError("RTCP SR shorter than its sender info", payload="RTCP", offset=offset)
            ntp_s, ntp_f, rtp_ts, pkts, octs = struct.unpack_from("!IIIII", packet, offset + 8)
            items.append(RtcpItem(packet_type, ssrc, count, (ntp_s, ntp_f), rtp_ts, pkts, octs,
                                  _blocks(packet, offset + 28, count, end)))
        elif packet_type == RTCP_RR:
            items.append(RtcpItem(packet_type, ssrc, count, blocks=_blocks(packet, offset + 8, count, end)))
        else:
            items.append(RtcpItem(packet_type, ssrc, count))
        offset = end
    return items


class SequenceStats:
    """Received, expected and lost packets of one source (RFC 3550 Appendix A.1, A.3) and jitter (A.8).

    Only authenticated packets are fed in, so the probation of A.1 (a source is valid after
    a few packets in sequence) is not needed: SRTP authentication already tells a real
    source.  A jump by more than :data:`MAX_DROPOUT` is a restart of the sequence (A.1:
    two packets in sequence after it resynchronise).
    """

    def __init__(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.cycles = 0
        self.received = 0
        self.bad_seq = -1
        self.jitter = 0.0  # in timestamp units (A.8)
        self._transit: int | None = None
        self._expected_prior = 0
        self._received_prior = 0

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (A.3): expected - received; negative with duplicates."""
        return self.expected - self.received

    def update(self, seq: int) -> bool:
        """Count one received packet (A.1 ``update_seq``); False when it restarted or awaits a resync."""
        udelta = (seq - self.max_seq) & 0xFFFF
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += 1 << 16
            self.max_seq = seq
        elif udelta <= (1 << 16) - MAX_MISORDER:
            if seq == self.bad_seq:  # two sequential packets after a big jump: the source restarted
                self.base_seq = self.max_seq = seq
                self.cycles = 0
                self._expected_prior = self._received_prior = 0
                self.received = 1
                self.bad_seq = -1
                return False
            self.bad_seq = (seq + 1) & 0xFFFF
            return False
        self.received += 1
        return True

    def arrival(self, rtp_timestamp: int, arrival_units: int) -> None:
        """Update the interarrival jitter with a packet's RTP timestamp and arrival time in the same units (A.8)."""
        transit = (arrival_units - rtp_timestamp) & 0xFFFFFFFF
        if self._transit is not None:
            d = abs(((transit - self._transit + (1 << 31)) & 0xFFFFFFFF) - (1 << 31))
            self.jitter += (d - self.jitter) / 16.0
        self._transit = transit

    def report_block(self, ssrc: int, lsr: int = 0, dlsr: int = 0) -> ReportBlock:
        """A reception report block for this source; fraction lost since the previous block (A.3)."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior, self._received_prior = expected, self.received
        lost_interval = expected_interval - received_interval
        fraction = 0 if expected_interval <= 0 or lost_interval <= 0 else (lost_interval << 8) // expected_interval
        return ReportBlock(ssrc, min(fraction, 255), self.lost, self.extended_max, int(self.jitter), lsr, dlsr)
