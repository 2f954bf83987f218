"""Writing MIKEY messages into a pcap and dissecting it with Wireshark's tshark (one run per file).

Frames are Ethernet/IPv4/UDP to port 2269 (RFC 3830 §7), or a SIP INVITE whose SDP
carries the message as ``a=key-mgmt:mikey <base64>`` (RFC 4567 §3.1).
"""

from __future__ import annotations

import base64
import os
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

TSHARK = shutil.which("tshark")
MIKEY_PORT = 2269
SIP_PORT = 5060
EXPERT_ERROR = 0x00800000  # PI_ERROR severity


def _ipv4_checksum(header: bytes) -> int:
    s = sum(struct.unpack("!10H", header))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_frame(payload: bytes, sport: int, dport: int, ident: int) -> bytes:
    """Ethernet II / IPv4 / UDP carrying *payload* (UDP checksum 0: none, allowed over IPv4)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0, 64, 17, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    )
    ip = ip[:10] + struct.pack("!H", _ipv4_checksum(ip)) + ip[12:]
    ether = bytes.fromhex("020000000002" "020000000001" "0800")
    return ether + ip + udp


def pcap_file(frames: list[bytes]) -> bytes:
    """Classic libpcap, microsecond timestamps, LINKTYPE_ETHERNET."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, len(f), len(f)) + f
    return bytes(out)


def sip_invite(mikey: bytes, call: int) -> bytes:
    """A SIP INVITE whose SDP carries the message as ``a=key-mgmt:mikey <base64>`` (RFC 4567 §3.1)."""
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        f"a=key-mgmt:mikey {base64.b64encode(mikey).decode()}\r\n"
        "m=audio 40000 RTP/SAVP 0\r\n"
    )
    return (
        "INVITE sip:bob@example.org SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{call}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:alice@example.org>;tag={call}\r\n"
        "To: <sip:bob@example.org>\r\n"
        f"Call-ID: {call}@10.0.0.1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:alice@10.0.0.1>\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(sdp)}\r\n\r\n{sdp}"
    ).encode()


def frame_for(message: bytes, index: int, *, via_sip: bool = False) -> bytes:
    if via_sip:
        return udp_frame(sip_invite(message, index), SIP_PORT, SIP_PORT, index)
    return udp_frame(message, MIKEY_PORT, MIKEY_PORT, index)


def run_tshark(frames: list[bytes], tmp: Path) -> list[ET.Element]:
    """Dissect *frames* with one tshark run (PDML); one ``<packet>`` element per frame."""
    assert TSHARK is not None
    pcap = tmp / "mikey.pcap"
    pcap.write_bytes(pcap_file(frames))
    env = {**os.environ, "HOME": str(tmp), "XDG_CONFIG_HOME": str(tmp)}
    proc = subprocess.run(
        [TSHARK, "-n", "-r", str(pcap), "-T", "pdml", "-d", f"udp.port=={MIKEY_PORT},mikey"],
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return ET.fromstring(proc.stdout).findall("packet")


def problems(packet: ET.Element) -> list[str]:
    """Malformed-packet markers and error-level expert items in a dissected packet."""
    out = []
    for e in packet.iter():
        if e.get("name") == "_ws.malformed":
            out.append(e.get("showname") or "malformed")
        if e.get("name") == "_ws.expert.severity" and int(e.get("show", "0")) >= EXPERT_ERROR:
            out.append("expert error")
    return out


def mikey_protos(packet: ET.Element) -> list[ET.Element]:
    return [e for e in packet.iter("proto") if e.get("name") == "mikey"]


def field_shows(container: ET.Element, name: str) -> list[str]:
    return [e.get("show", "") for e in container.iter() if e.get("name") == name]
