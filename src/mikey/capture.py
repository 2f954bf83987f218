"""Finding MIKEY messages in packet captures (pcap, pcapng), read with ``dpkt``.

MIKEY travels in SDP ``a=key-mgmt:mikey`` attributes (RFC 4567 §3.1) of SIP and
RTSP messages, in the RTSP ``KeyMgmt`` header (RFC 4567 §3.2), and bare on UDP
port 2269 (RFC 3830 §7).  SIP and RTSP over TCP are reassembled per flow, in
sequence-number order, and framed by ``Content-Length``; memory per flow and
the number of flows are bounded.  RTP and RTCP interleaved in an RTSP connection
(``$``, channel, 16-bit length: RFC 2326 §10.12, RFC 7826 §14) are stepped over, and
:class:`InterleavedStreams` hands them out for ``mikey srtp-decrypt``.
"""

from __future__ import annotations

import io
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import dpkt  # type: ignore[import-untyped]

from .errors import MikeyDecodeError
from .rtsp import parse_keymgmt_header
from .sdp import parse_key_mgmt

__all__ = [
    "CAPTURE_MAGICS", "is_capture", "Packet", "Found", "read_packets", "find_mikey", "MIKEY_PORT", "packet_of",
    "InterleavedFrame", "InterleavedStreams",
]

#: UDP port of bare MIKEY (RFC 3830 §7).
MIKEY_PORT = 2269

#: First four octets of a capture file: pcap (µs and ns, either byte order) and pcapng.
CAPTURE_MAGICS = (
    bytes.fromhex("a1b2c3d4"),
    bytes.fromhex("d4c3b2a1"),
    bytes.fromhex("a1b23c4d"),
    bytes.fromhex("4d3cb2a1"),
    bytes.fromhex("0a0d0d0a"),
)

#: Bytes kept per TCP flow (unconsumed stream plus out-of-order segments); beyond that the flow is dropped.
MAX_FLOW_BYTES = 1 << 20
#: TCP flows followed at once; the oldest is dropped beyond that.
MAX_FLOWS = 4096
#: Largest header block of a SIP/RTSP message looked at.
MAX_HEADER = 64 * 1024

_DLT_NULL, _DLT_EN10MB, _DLT_RAW, _DLT_LOOP, _DLT_LINUX_SLL, _DLT_IPV4, _DLT_IPV6 = 0, 1, 101, 108, 113, 228, 229
_DLT_LINUX_SLL2 = 276

# Everything dpkt (and struct underneath) raises on malformed bytes.
_PARSE_ERRORS = (dpkt.Error, ValueError, struct.error, EOFError, IndexError, KeyError, TypeError, AttributeError)


def is_capture(data: bytes) -> bool:
    """Whether *data* starts with a pcap or pcapng magic number."""
    return data[:4] in CAPTURE_MAGICS


@dataclass(frozen=True)
class Packet:
    """One IP packet of a capture carrying UDP or TCP: 1-based frame number, time (seconds), endpoints."""

    number: int
    time: float
    transport: str  # "udp" or "tcp"
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes
    seq: int = 0
    syn: bool = False

    def flow(self) -> tuple[str, int, str, int]:
        return (self.src, self.sport, self.dst, self.dport)


@dataclass
class Found:
    """A MIKEY message found in a capture, with where it came from.

    ``carrier`` is ``SIP``, ``RTSP`` or ``UDP``; ``location`` says where in the carrier
    (``SDP session level``, ``SDP media 0``, ``KeyMgmt header``, ``UDP 2269``).
    ``error`` is set when the carrier's key-mgmt data could not be decoded (``data`` empty).
    """

    packet: int
    time: float
    transport: str
    src: str
    sport: int
    dst: str
    dport: int
    carrier: str
    location: str
    data: bytes
    start_line: str = ""
    call_id: str | None = None
    rtsp_session: str | None = None
    error: str | None = None
    conn: tuple[str, int, str, int] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "packet": self.packet,
            "time": self.time,
            "transport": self.transport,
            "src": _endpoint(self.src, self.sport),
            "dst": _endpoint(self.dst, self.dport),
            "carrier": self.carrier,
            "location": self.location,
        }
        if self.start_line:
            d["start_line"] = self.start_line
        if self.call_id is not None:
            d["call_id"] = self.call_id
        if self.rtsp_session is not None:
            d["rtsp_session"] = self.rtsp_session
        return d


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


# --- reading packets -------------------------------------------------------------------------


def _open_reader(stream: BinaryIO) -> tuple[Iterator[tuple[float, bytes]], int]:
    head = stream.read(4)
    stream.seek(0)
    try:
        if head == CAPTURE_MAGICS[-1]:
            png = dpkt.pcapng.Reader(stream)
            return iter(png), int(png.datalink())
        pc = dpkt.pcap.Reader(stream)
        return iter(pc), int(pc.datalink())
    except _PARSE_ERRORS as e:
        raise MikeyDecodeError(f"not a readable pcap/pcapng capture ({type(e).__name__})", payload="capture") from None


def _ip_of(linktype: int, buf: bytes) -> dpkt.Packet | None:
    if linktype == _DLT_EN10MB:
        eth = dpkt.ethernet.Ethernet(buf)
        return eth.data if isinstance(eth.data, dpkt.ip.IP | dpkt.ip6.IP6) else None
    if linktype == _DLT_LINUX_SLL:
        sll = dpkt.sll.SLL(buf)
        return sll.data if isinstance(sll.data, dpkt.ip.IP | dpkt.ip6.IP6) else None
    if linktype == _DLT_LINUX_SLL2:
        sll2 = dpkt.sll2.SLL2(buf)
        return sll2.data if isinstance(sll2.data, dpkt.ip.IP | dpkt.ip6.IP6) else None
    if linktype in (_DLT_NULL, _DLT_LOOP):
        if len(buf) < 4:
            return None
        buf = buf[4:]
    elif linktype not in (_DLT_RAW, _DLT_IPV4, _DLT_IPV6):
        return None
    if not buf:
        return None
    version = buf[0] >> 4
    if version == 4:
        return dpkt.ip.IP(buf)
    if version == 6:
        return dpkt.ip6.IP6(buf)
    return None


def _addr(ip: dpkt.Packet, which: str) -> str:
    raw = getattr(ip, which)
    family = socket.AF_INET6 if isinstance(ip, dpkt.ip6.IP6) else socket.AF_INET
    return socket.inet_ntop(family, raw)


def _packet(number: int, ts: float, linktype: int, buf: bytes) -> Packet | None:
    try:
        ip = _ip_of(linktype, buf)
        if ip is None:
            return None
        l4 = ip.data
        if isinstance(l4, dpkt.udp.UDP):
            return Packet(number, float(ts), "udp", _addr(ip, "src"), l4.sport, _addr(ip, "dst"), l4.dport,
                          bytes(l4.data))
        if isinstance(l4, dpkt.tcp.TCP):
            return Packet(number, float(ts), "tcp", _addr(ip, "src"), l4.sport, _addr(ip, "dst"), l4.dport,
                          bytes(l4.data), seq=l4.seq, syn=bool(l4.flags & dpkt.tcp.TH_SYN))
    except _PARSE_ERRORS + (OSError,):
        return None
    return None


def packet_of(number: int, ts: float, linktype: int, frame: bytes) -> Packet | None:
    """The UDP or TCP packet in one capture record of *linktype*, or None (other protocols, malformed)."""
    return _packet(number, ts, linktype, frame)


def read_packets(stream: BinaryIO) -> Iterator[Packet]:
    """The UDP and TCP packets of a pcap/pcapng capture (Ethernet, raw IP, Linux SLL, loopback links).

    Raises :class:`MikeyDecodeError` when the file is not a capture or its records are malformed.
    """
    records, linktype = _open_reader(stream)
    number = 0
    while True:
        try:
            ts, buf = next(records)
        except StopIteration:
            return
        except _PARSE_ERRORS as e:
            raise MikeyDecodeError(f"malformed capture record after packet {number} ({type(e).__name__})",
                                   payload="capture") from None
        number += 1
        pkt = _packet(number, ts, linktype, bytes(buf))
        if pkt is not None:
            yield pkt


# --- TCP reassembly --------------------------------------------------------------------------


class _Flow:
    """One direction of a TCP connection: in-order bytes by sequence number, bounded."""

    def __init__(self, seq: int | None) -> None:
        self.next_seq = seq
        self.pending: dict[int, Packet] = {}
        self.buffer = b""
        self.dead = False

    def add(self, pkt: Packet) -> list[tuple[Packet, bytes]]:
        """Feed a segment; returns the (packet, bytes) runs that became contiguous."""
        if self.dead:
            return []
        if pkt.syn:
            self.next_seq = (pkt.seq + 1) & 0xFFFFFFFF
        if not pkt.payload:
            return []
        if self.next_seq is None:
            self.next_seq = pkt.seq
        self.pending[pkt.seq] = pkt
        if sum(len(p.payload) for p in self.pending.values()) + len(self.buffer) > MAX_FLOW_BYTES:
            self.dead = True
            self.pending.clear()
            self.buffer = b""
            return []
        out: list[tuple[Packet, bytes]] = []
        while True:
            nxt = self.next_seq
            seg = self.pending.pop(nxt, None) if nxt is not None else None
            if seg is None:
                # a retransmission overlapping data already taken: trim it
                for s, p in list(self.pending.items()):
                    off = (nxt - s) & 0xFFFFFFFF if nxt is not None else 0
                    if 0 < off < 0x80000000:
                        del self.pending[s]
                        if off < len(p.payload):
                            trimmed = Packet(p.number, p.time, p.transport, p.src, p.sport, p.dst, p.dport,
                                             p.payload[off:], seq=(s + off) & 0xFFFFFFFF)
                            self.pending[trimmed.seq] = trimmed
                        break
                else:
                    return out
                continue
            self.next_seq = (seg.seq + len(seg.payload)) & 0xFFFFFFFF
            out.append((seg, seg.payload))


def _header_block(buf: bytes) -> int:
    """End of the header block (index after the blank line), or -1 while incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end >= 0:
        return end + 4
    end = buf.find(b"\n\n")
    return end + 2 if end >= 0 else -1


def _parse_headers(head: str) -> tuple[str, dict[str, list[str]]]:
    lines = head.replace("\r\n", "\n").split("\n")
    start = lines[0].strip()
    headers: dict[str, list[str]] = {}
    last: str | None = None
    for line in lines[1:]:
        if not line.strip():
            continue
        if line[0] in " \t" and last is not None:  # folded continuation (RFC 3261 §7.3.1)
            headers[last][-1] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        last = name.strip().lower()
        headers.setdefault(last, []).append(value.strip())
    return start, headers


_COMPACT = {"i": "call-id", "l": "content-length", "c": "content-type"}


def _header(headers: dict[str, list[str]], name: str) -> str | None:
    for key, values in headers.items():
        if (key == name or _COMPACT.get(key) == name) and values:
            return values[0]
    return None


def _protocol(start: str) -> str | None:
    if start.startswith("SIP/2.0") or start.endswith("SIP/2.0"):
        return "SIP"
    if start.startswith("RTSP/") or start.rsplit(" ", 1)[-1].startswith("RTSP/"):
        return "RTSP"
    return None


def _content_length(headers: dict[str, list[str]]) -> int | None:
    value = _header(headers, "content-length")
    if value is None:
        return None
    try:
        n = int(value.strip())
    except ValueError:
        return None
    return n if 0 <= n <= MAX_FLOW_BYTES else None


def _from_message(pkt: Packet, start: str, headers: dict[str, list[str]], body: bytes,
                  conn: tuple[str, int, str, int] | None) -> list[Found]:
    carrier = _protocol(start)
    if carrier is None:
        return []
    call_id = _header(headers, "call-id") if carrier == "SIP" else None
    session = _header(headers, "session") if carrier == "RTSP" else None
    if session is not None:
        session = session.split(";", 1)[0].strip()

    def found(location: str, data: bytes, error: str | None = None) -> Found:
        return Found(pkt.number, pkt.time, pkt.transport, pkt.src, pkt.sport, pkt.dst, pkt.dport, carrier,
                     location, data, start[:200], call_id, session, error, conn)

    out: list[Found] = []
    if carrier == "RTSP":
        for value in headers.get("keymgmt", []):
            try:
                entries = parse_keymgmt_header(value)
            except MikeyDecodeError as e:
                out.append(found("KeyMgmt header", b"", e.message))
                continue
            for entry in entries:
                if entry.prot.lower() == "mikey" and entry.data is not None:
                    where = "KeyMgmt header" + (f" ({entry.uri})" if entry.uri else "")
                    out.append(found(where, entry.data))
    ctype = (_header(headers, "content-type") or "").split(";", 1)[0].strip().lower()
    if ctype == "application/sdp" and body:
        sdp = body.decode("utf-8", "replace")
        try:
            attrs = parse_key_mgmt(sdp)
        except MikeyDecodeError as e:
            out.append(found("SDP a=key-mgmt", b"", e.message))
            attrs = []
        for attr in attrs:
            if attr.prot_id.lower() != "mikey":
                continue
            where = "SDP session level" if attr.level == "session" else f"SDP media {attr.media_index}"
            out.append(found(where, attr.data))
    return out


def _udp_text(pkt: Packet) -> list[Found]:
    cut = _header_block(pkt.payload[:MAX_HEADER])
    if cut < 0:
        return []
    try:
        start, headers = _parse_headers(pkt.payload[:cut].decode("utf-8", "replace"))
    except IndexError:
        return []
    return _from_message(pkt, start, headers, pkt.payload[cut:], None)


@dataclass(frozen=True)
class InterleavedFrame:
    """One RTSP interleaved binary frame (RFC 2326 §10.12): its channel and data, and the segment that completed it."""

    packet: Packet
    channel: int
    data: bytes


class _Reassembler:
    def __init__(self, *, keep_interleaved: bool = False) -> None:
        self.flows: dict[tuple[str, int, str, int], _Flow] = {}
        #: The first RTSP ``Session`` named on each connection (either direction), bounded like the flows.
        self.sessions: dict[tuple[str, int, str, int], str] = {}
        self.keep_interleaved = keep_interleaved
        #: Interleaved frames completed by the last :meth:`feed` (only with ``keep_interleaved``).
        self.interleaved: list[InterleavedFrame] = []

    def feed(self, pkt: Packet) -> list[Found]:
        key = pkt.flow()
        flow = self.flows.get(key)
        if flow is None:
            if len(self.flows) >= MAX_FLOWS:
                del self.flows[next(iter(self.flows))]
            flow = self.flows[key] = _Flow(None)
        out: list[Found] = []
        for _seg, data in flow.add(pkt):
            flow.buffer += data
        if flow.buffer:
            out += self._messages(flow, pkt)
        return out

    def _messages(self, flow: _Flow, last: Packet) -> list[Found]:
        out: list[Found] = []
        conn = _conn_key(last)
        while flow.buffer:
            if flow.buffer[:1] == b"$":  # interleaved binary data: $, channel, 16-bit length (RFC 2326 §10.12)
                if len(flow.buffer) < 4:
                    return out
                end = 4 + int.from_bytes(flow.buffer[2:4], "big")
                if len(flow.buffer) < end:
                    return out
                if self.keep_interleaved:
                    self.interleaved.append(InterleavedFrame(last, flow.buffer[1], flow.buffer[4:end]))
                flow.buffer = flow.buffer[end:]
                continue
            cut = _header_block(flow.buffer[:MAX_HEADER])
            if cut < 0:
                if len(flow.buffer) >= MAX_HEADER or not _looks_textual(flow.buffer):
                    flow.buffer = b""  # not SIP/RTSP (or interleaved RTP): give up on this chunk
                return out
            try:
                start, headers = _parse_headers(flow.buffer[:cut].decode("utf-8", "replace"))
            except IndexError:
                flow.buffer = flow.buffer[cut:]
                continue
            length = _content_length(headers) or 0
            if len(flow.buffer) < cut + length:
                return out
            body = flow.buffer[cut : cut + length]
            flow.buffer = flow.buffer[cut + length :]
            session = _header(headers, "session")
            if session is not None and _protocol(start) == "RTSP" and len(self.sessions) < MAX_FLOWS:
                self.sessions.setdefault(conn, session.split(";", 1)[0].strip())
            out += _from_message(last, start, headers, body, conn)
        return out


def _looks_textual(buf: bytes) -> bool:
    head = buf[:16]
    return bool(head) and all(32 <= b < 127 or b in (9, 10, 13) for b in head)


class InterleavedStreams:
    """RTP/RTCP interleaved in RTSP connections (RFC 2326 §10.12, RFC 7826 §14), per TCP direction.

    :meth:`feed` takes every TCP :class:`Packet` of a capture in order and returns the
    interleaved frames it completed; the RTSP messages between them are stepped over.
    Reassembly is that of :func:`find_mikey` (bounded memory and flows).
    """

    def __init__(self) -> None:
        self._tcp = _Reassembler(keep_interleaved=True)

    def feed(self, pkt: Packet) -> list[InterleavedFrame]:
        if pkt.transport != "tcp":
            return []
        self._tcp.feed(pkt)
        out, self._tcp.interleaved = self._tcp.interleaved, []
        return out


def _conn_key(pkt: Packet) -> tuple[str, int, str, int]:
    a, b = (pkt.src, pkt.sport), (pkt.dst, pkt.dport)
    lo, hi = min(a, b), max(a, b)
    return (lo[0], lo[1], hi[0], hi[1])


def find_mikey(stream: BinaryIO | bytes) -> list[Found]:
    """Every MIKEY message in a capture, in capture order (see the module docstring for where they are looked for).

    An RTSP message without a ``Session`` header (a DESCRIBE reply) is given the
    session that a later message on the same TCP connection names.
    """
    if isinstance(stream, bytes | bytearray):
        stream = io.BytesIO(bytes(stream))
    found: list[Found] = []
    tcp = _Reassembler()
    for pkt in read_packets(stream):
        if pkt.transport == "udp":
            if MIKEY_PORT in (pkt.sport, pkt.dport) and pkt.payload[:1] == b"\x01":
                found.append(Found(pkt.number, pkt.time, "udp", pkt.src, pkt.sport, pkt.dst, pkt.dport, "UDP",
                                   f"UDP {MIKEY_PORT}", pkt.payload))
            else:
                found += _udp_text(pkt)
        else:
            found += tcp.feed(pkt)
    for f in found:
        if f.carrier == "RTSP" and f.rtsp_session is None and f.conn is not None:
            f.rtsp_session = tcp.sessions.get(f.conn)
    return found
