"""``mikey srtp-decrypt``: the SRTP/SRTCP of a capture, decrypted with MIKEY-derived keys, as a new pcap.

The keys come from ``mikey keys`` (a capture or message plus the ``--mode`` credentials).
Each UDP packet whose RTP (RFC 3550 §5.1) or RTCP (§6.4) SSRC is in a crypto session's
CS ID map (RFC 3830 §6.1.1) is unprotected (RFC 3711 §3.3, §3.4); the plaintext replaces
the UDP payload, with IP/UDP lengths and checksums recomputed, same link type and
timestamps.  SRTP interleaved in an RTSP connection (RFC 2326 §10.12) is written as UDP
datagrams between the connection's endpoints.  Packets that fail authentication are
counted per SSRC and never written.

A crypto session whose SSRC the map leaves open (0 in an I_MESSAGE nobody answered in the
capture, the empty map of MIKEY-SAKKE, RFC 4563 §5 and RFC 6509 §2.1) keys the streams whose
first packets it authenticates (RFC 3711 §3.3 step 5): their SSRCs are reported as learned.
A stream no key authenticates is left alone, uncounted, after :data:`MAX_TRIALS` packets.
"""

from __future__ import annotations

import argparse
import json
import struct
from dataclasses import dataclass, field
from typing import Any

import dpkt  # type: ignore[import-untyped]

from ..capture import CAPTURE_MAGICS, InterleavedStreams, packet_of
from ..errors import AuthenticationError, MikeyDecodeError, MikeyError
from ..session import policy_params
from ..srtp import SRTP_ENCR_AES_GCM, SrtpContext, SrtpPolicyParams
from .common import (
    EXIT_OK,
    EXIT_REJECTED,
    UsageError,
    add_json_option,
    emit_json,
    error_dict,
    hex_u32,
    one_line,
)
from .keys import KeyRecord, add_mode_arguments, collect
from .plugin_base import ModePlugin

__all__ = ["register", "run", "decrypt_capture", "StreamCounts", "StreamKey", "keys_from_json"]

#: The SRTP policy of each profile name ``mikey keys --json`` prints (RFC 3830 §6.10.1, RFC 7714 §15).
PROFILE_PARAMS: dict[str, SrtpPolicyParams] = {
    "SRTP_PROFILE_AES128_CM_SHA1_80": SrtpPolicyParams(),
    "SRTP_PROFILE_AES128_CM_SHA1_32": SrtpPolicyParams(auth_tag_len=4),
    "SRTP_PROFILE_AEAD_AES_128_GCM": SrtpPolicyParams(encr_alg=SRTP_ENCR_AES_GCM, encr_key_len=16, salt_key_len=12),
    "SRTP_PROFILE_AEAD_AES_256_GCM": SrtpPolicyParams(encr_alg=SRTP_ENCR_AES_GCM, encr_key_len=32, salt_key_len=12),
}


@dataclass(frozen=True)
class StreamKey:
    """What decrypting one SSRC's stream needs (RFC 3711 §3.2.1): master key and salt, ROC, policy."""

    ssrc: int
    roc: int
    master_key: bytes = field(repr=False)
    master_salt: bytes = field(repr=False)
    params: SrtpPolicyParams

    @classmethod
    def of(cls, record: KeyRecord) -> StreamKey:
        k = record.keys
        return cls(k.ssrc or 0, k.roc, k.master_key, k.master_salt, policy_params(k))


def keys_from_json(text: str) -> list[StreamKey]:
    """The keys in the output of ``mikey keys --json --show-keys``; raises :class:`UsageError` when it is not that."""
    try:
        rows = json.loads(text)["crypto_sessions"]
        if any("master_key" not in r for r in rows):
            raise UsageError("the keys JSON holds no keys: run 'mikey keys' with --show-keys")
        return [StreamKey(int(r["ssrc"] or "0", 16), int(r["roc"]), bytes.fromhex(r["master_key"]),
                          bytes.fromhex(r["master_salt"]), PROFILE_PARAMS[r["profile"]])
                for r in rows]
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"not the JSON of 'mikey keys --json --show-keys' ({type(e).__name__}: {e})") from None

#: Packets of a stream not in any map tried against the keys without an SSRC before it is given up.
MAX_TRIALS = 8

_PARSE_ERRORS = (dpkt.Error, ValueError, struct.error, EOFError, IndexError, KeyError, TypeError, AttributeError)
_DLT_NULL, _DLT_EN10MB, _DLT_RAW, _DLT_LOOP, _DLT_LINUX_SLL, _DLT_IPV4, _DLT_IPV6 = 0, 1, 101, 108, 113, 228, 229


@dataclass
class StreamCounts:
    """Per SSRC: packets decrypted and authentication failures, RTP and RTCP."""

    rtp: int = 0
    rtcp: int = 0
    rtp_auth_failures: int = 0
    rtcp_auth_failures: int = 0
    errors: list[str] = field(default_factory=list)
    #: True when the SSRC was not in the CS ID map but a key without an SSRC authenticated its packets.
    learned: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"rtp": self.rtp, "rtcp": self.rtcp, "rtp_auth_failures": self.rtp_auth_failures,
                             "rtcp_auth_failures": self.rtcp_auth_failures}
        if self.learned:
            d["learned"] = True
        return d


def _link(linktype: int, buf: bytes) -> tuple[Any, Any, bytes] | None:
    """(outer frame object or None, IP object, link prefix) for the link types we rewrite."""
    if linktype == _DLT_EN10MB:
        eth = dpkt.ethernet.Ethernet(buf)
        return (eth, eth.data, b"") if isinstance(eth.data, dpkt.ip.IP | dpkt.ip6.IP6) else None
    if linktype == _DLT_LINUX_SLL:
        sll = dpkt.sll.SLL(buf)
        return (sll, sll.data, b"") if isinstance(sll.data, dpkt.ip.IP | dpkt.ip6.IP6) else None
    prefix = b""
    if linktype in (_DLT_NULL, _DLT_LOOP):
        prefix, buf = buf[:4], buf[4:]
    elif linktype not in (_DLT_RAW, _DLT_IPV4, _DLT_IPV6):
        return None
    if not buf:
        return None
    if buf[0] >> 4 == 4:
        return None, dpkt.ip.IP(buf), prefix
    if buf[0] >> 4 == 6:
        return None, dpkt.ip6.IP6(buf), prefix
    return None


def _ssrc_of(payload: bytes) -> tuple[int, bool] | None:
    """(SSRC, is RTCP) of an RTP/RTCP packet (version 2), else None.  RTCP PT 200-204 (RFC 5761 §4)."""
    if len(payload) < 12 or payload[0] >> 6 != 2:
        return None
    if 200 <= payload[1] <= 204:
        return int.from_bytes(payload[4:8], "big"), True
    return int.from_bytes(payload[8:12], "big"), False


def _rewrite(outer: Any, ip: Any, prefix: bytes, udp: Any, plain: bytes) -> bytes:
    udp.data = plain
    udp.ulen = 8 + len(plain)
    udp.sum = 0  # dpkt recomputes it when the IP layer is packed
    if isinstance(ip, dpkt.ip.IP):
        ip.len = ip.__hdr_len__ + len(ip.opts) + udp.ulen
        ip.sum = 0
    else:
        ip.plen = udp.ulen
    ip.data = udp
    if outer is not None:
        outer.data = ip
        return bytes(outer)
    return prefix + bytes(ip)


class _Decryptor:
    """The per-SSRC contexts and counts of one capture (RFC 3711 §3.3, §3.4)."""

    def __init__(self, stream_keys: list[StreamKey]) -> None:
        self.keyed = {k.ssrc: k for k in stream_keys if k.ssrc}
        self.unbound = [k for k in stream_keys if not k.ssrc]
        self.trials: dict[int, int] = {}
        self.contexts: dict[int, SrtpContext] = {}
        self.counts: dict[int, StreamCounts] = {}

    def plaintext(self, payload: bytes) -> bytes | None:
        """The RTP/RTCP of the SRTP/SRTCP *payload* of a keyed stream, or None (not keyed, or failed and counted)."""
        found = _ssrc_of(payload)
        if found is None or (found[0] not in self.keyed and not self.unbound):
            return None
        ssrc, rtcp = found
        if ssrc not in self.keyed:
            learned = _learn(ssrc, rtcp, payload, self.unbound, self.trials)
            if learned is None:
                return None
            self.keyed[ssrc], self.contexts[ssrc], plain = learned
            c = self.counts.setdefault(ssrc, StreamCounts(learned=True))
        else:
            rec = self.keyed[ssrc]
            ctx = self.contexts.get(ssrc)
            if ctx is None:
                ctx = self.contexts[ssrc] = SrtpContext(rec.master_key, rec.master_salt, rec.params,
                                                        ssrc=ssrc, outbound=False, roc=rec.roc)
            c = self.counts.setdefault(ssrc, StreamCounts())
            try:
                plain = ctx.unprotect_rtcp(payload) if rtcp else ctx.unprotect(payload)
            except AuthenticationError:
                if rtcp:
                    c.rtcp_auth_failures += 1
                else:
                    c.rtp_auth_failures += 1
                return None
        if rtcp:
            c.rtcp += 1
        else:
            c.rtp += 1
        return plain


def decrypt_capture(data_in: Any, out: Any, stream_keys: list[StreamKey]) -> dict[int, StreamCounts]:
    """Unprotect the keyed SRTP/SRTCP of the capture stream *data_in*; write a pcap to *out*.

    SRTP on UDP keeps its packet; SRTP interleaved in an RTSP connection (RFC 2326 §10.12)
    is written as one UDP datagram per frame between the connection's endpoints and ports.
    Returns counts per SSRC.  Raises :class:`MikeyDecodeError` for a malformed capture.
    """
    head = data_in.read(4)
    data_in.seek(0)
    try:
        reader = dpkt.pcapng.Reader(data_in) if head == CAPTURE_MAGICS[-1] else dpkt.pcap.Reader(data_in)
        linktype = int(reader.datalink())
    except _PARSE_ERRORS as e:
        raise MikeyDecodeError(f"not a readable pcap/pcapng capture ({type(e).__name__})", payload="capture") from None
    dec = _Decryptor(stream_keys)
    interleaved = InterleavedStreams()
    writer = dpkt.pcap.Writer(out, linktype=linktype, nano=False)
    it = iter(reader)
    number = 0
    while True:
        try:
            ts, buf = next(it)
        except StopIteration:
            break
        except _PARSE_ERRORS as e:
            raise MikeyDecodeError(f"malformed capture record ({type(e).__name__})", payload="capture") from None
        number += 1
        try:
            parts = _link(linktype, bytes(buf))
        except _PARSE_ERRORS:
            continue
        if parts is None:
            continue
        outer, ip, prefix = parts
        if isinstance(ip.data, dpkt.udp.UDP):
            plain = dec.plaintext(bytes(ip.data.data))
            if plain is not None:
                writer.writepkt(_rewrite(outer, ip, prefix, ip.data, plain), ts=ts)
        elif isinstance(ip.data, dpkt.tcp.TCP):
            pkt = packet_of(number, ts, linktype, bytes(buf))
            for frame in interleaved.feed(pkt) if pkt is not None else []:
                plain = dec.plaintext(frame.data)
                if plain is None:
                    continue
                if isinstance(ip, dpkt.ip.IP):
                    ip.p = dpkt.ip.IP_PROTO_UDP
                else:
                    ip.nxt = dpkt.ip.IP_PROTO_UDP
                datagram = dpkt.udp.UDP(sport=frame.packet.sport, dport=frame.packet.dport)
                writer.writepkt(_rewrite(outer, ip, prefix, datagram, plain), ts=ts)
    return dec.counts


def _learn(ssrc: int, rtcp: bool, payload: bytes, unbound: list[StreamKey],
           trials: dict[int, int]) -> tuple[StreamKey, SrtpContext, bytes] | None:
    """The key without an SSRC that authenticates *payload* of stream *ssrc*, its context and the plaintext."""
    if trials.get(ssrc, 0) >= MAX_TRIALS:
        return None
    if len(trials) >= 4096 and ssrc not in trials:  # bounded, like the TCP flows of mikey.capture
        return None
    trials[ssrc] = trials.get(ssrc, 0) + 1
    for key in unbound:
        ctx = SrtpContext(key.master_key, key.master_salt, key.params, ssrc=ssrc, outbound=False, roc=key.roc)
        try:
            plain = ctx.unprotect_rtcp(payload) if rtcp else ctx.unprotect(payload)
        except (AuthenticationError, MikeyDecodeError):
            continue
        return key, ctx, plain
    return None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], plugins: dict[str, ModePlugin],
             mode: str | None) -> None:
    p = subparsers.add_parser(
        "srtp-decrypt", help="write the decrypted SRTP/SRTCP of a capture to a new pcap",
        description="Decrypt the SRTP/SRTCP of CAPTURE whose SSRCs the MIKEY exchanges in --keys-from key "
        "(a capture or message; credentials as for 'mikey keys'), and write it to --out as a pcap. "
        "Packets failing authentication are counted per SSRC and not written.",
    )
    p.add_argument("capture", metavar="CAPTURE", help="the capture holding the SRTP (pcap/pcapng)")
    p.add_argument("--keys-from", required=True, metavar="CAPTURE|MSG|JSON",
                   help="where the MIKEY exchanges are, or a file with the output of 'mikey keys --json --show-keys'")
    p.add_argument("--out", required=True, metavar="OUT.pcap", help="the decrypted capture to write")
    p.add_argument("--ssrc", type=hex_u32, action="append", metavar="HEX",
                   help="the SSRC filling an SSRC-0 placeholder the capture holds no response for (as for 'keys')")
    add_mode_arguments(p, plugins, mode)
    add_json_option(p)
    p.set_defaults(func=run, plugins=plugins)


def _json_file(source: str) -> str | None:
    path = source[1:] if source.startswith("@") else source
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 20)
    except (OSError, ValueError):
        return None
    text = head.decode("utf-8", "replace")
    return text if text.lstrip().startswith("{") else None


def _stream_keys(args: argparse.Namespace) -> list[StreamKey]:
    text = _json_file(args.keys_from)
    if text is not None:
        stream_keys = keys_from_json(text)
        if not stream_keys:
            raise UsageError(f"{args.keys_from} holds no keys")
        return stream_keys
    records, failures = collect(args)
    if not records:
        detail = "; ".join(f"{s}: {e}" for s, e in failures) or "no I_MESSAGE found"
        raise UsageError(f"no keys from {args.keys_from}: {detail}")
    return [StreamKey.of(r) for r in records]


def run(args: argparse.Namespace) -> int:
    as_json = bool(getattr(args, "json", False))
    args.ssrc = args.ssrc or []
    args.source = args.keys_from
    try:
        stream_keys = _stream_keys(args)
        try:
            with open(args.capture, "rb") as f_in, open(args.out, "wb") as f_out:
                counts = decrypt_capture(f_in, f_out, stream_keys)
        except OSError as e:
            raise UsageError(f"cannot use {e.filename}: {e.strerror or e}") from None
    except MikeyError as exc:
        if as_json:
            emit_json({"ok": False, "error": error_dict(exc)})
        else:
            print(f"cannot decrypt: {one_line(exc.message)}")
        return EXIT_REJECTED
    failed = any(c.rtp_auth_failures or c.rtcp_auth_failures for c in counts.values())
    status = EXIT_REJECTED if failed or not counts else EXIT_OK
    if as_json:
        emit_json({"ok": status == EXIT_OK, "out": args.out,
                   "streams": {f"{s:08x}": c.to_dict() for s, c in sorted(counts.items())}})
        return status
    for s, c in sorted(counts.items()):
        learned = " (not in the CS ID map: keyed by authentication)" if c.learned else ""
        print(f"SSRC {s:08x}{learned}: {c.rtp} RTP, {c.rtcp} RTCP decrypted; "
              f"{c.rtp_auth_failures} RTP, {c.rtcp_auth_failures} RTCP authentication failures")
    if not counts:
        print("no SRTP/SRTCP packets of the keyed SSRCs in the capture")
    print(f"written: {args.out}")
    return status
