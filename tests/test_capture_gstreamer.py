"""The caps ``mikey keys --format gst --show-keys`` prints key a real GStreamer ``srtpdec`` (issue 13 §2).

A PSK exchange and the SRTP/SRTCP it keys (protected by our libsrtp bridge) are written to a
capture; ``mikey keys`` reads the capture; the RTP and RTCP of the capture, framed as RFC 4571
streams, go through ``gst-launch-1.0 ... rtpstreamdepay ! application/x-srtp,<caps> ! srtpdec``
and ``multifilesink`` writes each decrypted packet to its own file, compared byte for byte.
Every profile ``mikey keys`` names is covered (AES-CM-128 with 80- and 32-bit tags, AEAD-AES-128/256-GCM),
with a non-zero ROC; a wrong key or ROC makes ``srtpdec`` drop every packet.

The other direction: a MIKEY message GStreamer itself makes (``gst_mikey_message_new_from_caps``, what
rtsp-server and rtspclientsink send: SP parameter 3 holding the tag length, the TEK being master key ||
salt) in an RTSP capture with SRTP from GStreamer's ``srtpenc``: ``mikey decode --lint`` names both
mistakes, ``mikey keys --gstreamer`` gives back the key GStreamer was given, ``mikey srtp-decrypt
--gstreamer`` the RTP.

Skipped without ``gst-launch-1.0`` and the elements used; with ``CI`` set, fails instead (``.ci/run``
installs gstreamer1.0-tools, -plugins-good and -plugins-bad).  (GStreamer's ``pcapparse`` is not used:
in 1.22 ``pcapparse ! srtpdec`` passes the packets through undecrypted.)
"""

from __future__ import annotations

import base64
import ctypes.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import pytest
from test_capture import NOW, PSK, A, B, pcap, sip, tcp, udp
from test_capture_srtp import rtcp_sr, rtp

from mikey.cli.main import main
from mikey.constants import ProtType
from mikey.modes.base import CryptoSessionSpec
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.offer_answer import make_answer, make_offer
from mikey.session import CryptoSessionBundle
from mikey.srtp import SrtpPolicyParams
from mikey.wire import SecurityPolicyPayload

ELEMENTS = ("filesrc", "rtpstreamdepay", "rtpstreampay", "srtpdec", "srtpenc", "multifilesink", "filesink")
MIKEY_CAPS = Path(__file__).parent / "gstreamer_mikey_caps.py"
SSRC = 0xAAAA0001
RTP_PORT, RTCP_PORT = 40002, 40003

PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": (SrtpPolicyParams(), "aes-128-icm", "hmac-sha1-80"),
    "AES_CM_128_HMAC_SHA1_32": (SrtpPolicyParams(auth_tag_len=4), "aes-128-icm", "hmac-sha1-32"),
    "AEAD_AES_128_GCM": (SrtpPolicyParams.aes_gcm(16), "aes-128-gcm", "null"),
    "AEAD_AES_256_GCM": (SrtpPolicyParams.aes_gcm(32), "aes-256-gcm", "null"),
}


def _missing() -> str | None:
    launch, inspect = shutil.which("gst-launch-1.0"), shutil.which("gst-inspect-1.0")
    if launch is None or inspect is None:
        return "gst-launch-1.0/gst-inspect-1.0 not installed (gstreamer1.0-tools)"
    if ctypes.util.find_library("gstsdp-1.0") is None:
        return "GStreamer's libgstsdp-1.0 not installed (libgstreamer-plugins-base1.0-0)"
    for element in ELEMENTS:
        if subprocess.run([inspect, "--exists", element], capture_output=True, timeout=60).returncode != 0:
            return f"GStreamer element {element} not installed (gstreamer1.0-plugins-good/-bad)"
    return None


@pytest.fixture(scope="module")
def gstreamer() -> str:
    """The path of gst-launch-1.0; skips (fails with CI set) when it or an element is missing."""
    problem = _missing()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs GStreamer: {problem}")
        pytest.skip(problem)
    path = shutil.which("gst-launch-1.0")
    assert path is not None
    return path


def media_capture(tmp_path: Path, params: SrtpPolicyParams, roc: int) -> tuple[Path, list[bytes], bytes]:
    """A SIP call keyed by MIKEY-PSK with *params*, then 6 SRTP packets and one SRTCP SR of SSRC."""
    sp = SecurityPolicyPayload(0, ProtType.SRTP, tuple(params.to_params()))
    initiator = PskInitiator(PSK, crypto_sessions=[CryptoSessionSpec(ssrc=SSRC, roc=roc)], policies=[sp], v=True)
    i_msg = initiator.create_message(NOW)
    r_msg = PskResponder(PSK).receive(i_msg, NOW).response
    assert r_msg is not None
    sender = CryptoSessionBundle(initiator.receive(r_msg, NOW)).sender(1)
    frames = [udp(A, 5060, B, 5060, sip("INVITE sip:bob@example.org SIP/2.0", "g1", make_offer(i_msg))),
              udp(B, 5060, A, 5060, sip("SIP/2.0 200 OK", "g1", make_answer(r_msg)))]
    plain = [rtp(SSRC, (65533 + i) % 65536, bytes([0x40 + i]) * (17 + 3 * i)) for i in range(6)]  # crosses seq 65535 -> 0
    frames += [udp(A, 40000, B, RTP_PORT, sender.protect(p)) for p in plain]
    sr = rtcp_sr(SSRC)
    frames.append(udp(A, 40001, B, RTCP_PORT, sender.protect_rtcp(sr)))
    path = tmp_path / "call.pcap"
    path.write_bytes(pcap(frames, t0=NOW + 1))
    return path, plain, sr


def rfc4571_stream(capture: Path, dport: int) -> bytes:
    """The UDP payloads to *dport* in *capture*, each behind its 16-bit length (RFC 4571 §2)."""
    out = b""
    for _, buf in dpkt.pcap.Reader(io.BytesIO(capture.read_bytes())):
        l4 = dpkt.ethernet.Ethernet(buf).data.data
        if isinstance(l4, dpkt.udp.UDP) and l4.dport == dport:
            out += len(l4.data).to_bytes(2, "big") + bytes(l4.data)
    return out


def gst_caps(capture: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["keys", str(capture), "--mode", "psk", "--psk", PSK.hex(), "--show-keys", "--format", "gst"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    return line


def srtpdec(launch: str, tmp_path: Path, capture: Path, caps: str) -> tuple[list[bytes], list[bytes]]:
    """Decrypt the capture's SRTP, then its SRTCP, each with a gst-launch-1.0 srtpdec pipeline; the packets out.

    Two pipelines, not one with both pads: srtpdec re-creates an SSRC's stream (ROC from the caps) when
    caps arrive on its other pad, which would race with the RTP thread past a sequence-number wrap.
    """
    out = tmp_path / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    packets: dict[str, list[bytes]] = {}
    for kind, port in (("rtp", RTP_PORT), ("rtcp", RTCP_PORT)):
        stream = tmp_path / f"s{kind}.stream"
        stream.write_bytes(rfc4571_stream(capture, port))
        pipeline = [
            "filesrc", f"location={stream}", "!", f"application/x-s{kind}-stream", "!", "rtpstreamdepay",
            "!", f"application/x-s{kind}, {caps}", "!", f"srtpdec.{kind}_sink",
            "srtpdec", "name=srtpdec", f"srtpdec.{kind}_src", "!", "multifilesink", f"location={out / kind}%03d",
        ]
        proc = subprocess.run([launch, "-q", *pipeline], capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
        packets[kind] = [p.read_bytes() for p in sorted(out.glob(f"{kind}[0-9][0-9][0-9]"))]
    return packets["rtp"], packets["rtcp"]


@pytest.mark.parametrize("suite", sorted(PROFILES))
def test_srtpdec_decrypts_with_mikey_keys_caps(gstreamer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              suite: str) -> None:
    params, cipher, auth = PROFILES[suite]
    capture, plain, sr = media_capture(tmp_path, params, roc=2)
    caps = gst_caps(capture, capsys)
    assert f"srtp-cipher=(string){cipher}, srtp-auth=(string){auth}" in caps
    assert caps.startswith(f"ssrc=(uint){SSRC}, ") and caps.endswith("roc=(uint)2")
    rtp_out, rtcp_out = srtpdec(gstreamer, tmp_path, capture, caps)
    assert rtp_out == plain
    assert rtcp_out == [sr]
    # the same keys through mikey srtp-decrypt give the same plaintext
    out = tmp_path / "plain.pcap"
    assert main(["srtp-decrypt", str(capture), "--keys-from", str(capture), "--mode", "psk", "--psk", PSK.hex(),
                 "--out", str(out)]) == 0
    ours = [bytes(dpkt.ethernet.Ethernet(buf).data.data.data) for _, buf in dpkt.pcap.Reader(io.BytesIO(out.read_bytes()))]
    assert ours == rtp_out + rtcp_out


@pytest.mark.parametrize("change", ["key", "roc"])
def test_srtpdec_drops_everything_with_wrong_caps(gstreamer: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str], change: str) -> None:
    capture, _, _ = media_capture(tmp_path, SrtpPolicyParams(), roc=2)
    caps = gst_caps(capture, capsys)
    if change == "key":
        wrong = re.sub(r"srtp-key=\(buffer\)(..)", lambda m: f"srtp-key=(buffer){int(m[1], 16) ^ 1:02x}", caps)
    else:
        wrong = caps.replace("roc=(uint)2", "roc=(uint)0")
    assert wrong != caps
    rtp_out, rtcp_out = srtpdec(gstreamer, tmp_path, capture, wrong)
    assert rtp_out == []
    assert rtcp_out == ([] if change == "key" else [rtcp_sr(SSRC)])  # SRTCP carries its own index, no ROC


@pytest.mark.parametrize("auth", ["hmac-sha1-80", "hmac-sha1-32"])
def test_gstreamer_made_mikey_and_srtp(gstreamer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       auth: str) -> None:
    key = bytes(range(0x30, 0x30 + 30))  # master key || salt, as srtpenc's "key" property
    caps = (f"application/x-srtp, srtp-key=(buffer){key.hex()}, srtp-cipher=(string)aes-128-icm, "
            f"srtp-auth=(string){auth}, srtcp-cipher=(string)aes-128-icm, srtcp-auth=(string)hmac-sha1-80")
    made = subprocess.run([sys.executable, str(MIKEY_CAPS), caps, f"{SSRC:08x}"], capture_output=True, timeout=60,
                          check=True)
    mikey_msg = bytes.fromhex(made.stdout.decode().strip())
    plain = [rtp(SSRC, 100 + i, bytes([0x60 + i]) * (30 + i)) for i in range(5)]
    (tmp_path / "plain.stream").write_bytes(b"".join(len(p).to_bytes(2, "big") + p for p in plain))
    enc = tmp_path / "srtp.stream"
    pipeline = [
        "srtpenc", "name=enc", f"key={key.hex()}", "rtp-cipher=aes-128-icm", f"rtp-auth={auth}",
        "rtcp-cipher=aes-128-icm", "rtcp-auth=hmac-sha1-80",
        "filesrc", f"location={tmp_path / 'plain.stream'}", "!", "application/x-rtp-stream", "!", "rtpstreamdepay", "!",
        "application/x-rtp, media=(string)audio, clock-rate=(int)8000, encoding-name=(string)PCMU, payload=(int)0",
        "!", "enc.rtp_sink_0", "enc.rtp_src_0", "!", "rtpstreampay", "!", "filesink", f"location={enc}",
    ]
    proc = subprocess.run([gstreamer, "-q", *pipeline], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    stream, protected = enc.read_bytes(), []
    while stream:
        n = int.from_bytes(stream[:2], "big")
        protected.append(stream[2 : 2 + n])
        stream = stream[2 + n :]
    assert len(protected) == len(plain)

    # an RTSP DESCRIBE reply carrying it at media level, as rtsp-server sends it, then the SRTP
    sdp = (f"v=0\r\no=- 1 1 IN IP4 {B}\r\ns=Session streamed with GStreamer\r\nt=0 0\r\n"
           f"m=audio 0 RTP/SAVP 0\r\na=control:stream=0\r\na=key-mgmt:mikey {base64.b64encode(mikey_msg).decode()}"
           "\r\n").encode()
    reply = (b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n"
             % len(sdp)) + sdp
    frames = [tcp(B, 8554, A, 41000, 1, reply)] + [udp(B, 5000, A, RTP_PORT, p) for p in protected]
    path = tmp_path / "gst.pcap"
    path.write_bytes(pcap(frames, t0=NOW))

    assert main(["--json", "decode", "--lint", str(path)]) == 0
    warnings = json.loads(capsys.readouterr().out)["messages"][0]["warnings"]
    tag = 10 if auth.endswith("80") else 4
    assert [w for w in warnings if w.startswith(("SP ", "KEY_DATA"))] == [
        f"SP parameter 3 (authentication key length) is {tag}, a tag length: parameter 11 (SRTP authentication tag "
        "length) was probably meant (HMAC-SHA1 keys are 20 octets)",
        "KEY_DATA TEK is 30 octets but the SP encryption key length is 16",
    ]
    assert main(["keys", str(path), "--show-keys", "--format", "gst"]) == 2
    assert "--gstreamer reads it so" in capsys.readouterr().err
    assert main(["keys", str(path), "--gstreamer", "--show-keys", "--format", "gst"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"ssrc=(uint){SSRC}, srtp-key=(buffer){key.hex()}, srtp-cipher=(string)aes-128-icm, "
                           f"srtp-auth=(string){auth}, ")
    out = tmp_path / "plain.pcap"
    assert main(["srtp-decrypt", str(path), "--keys-from", str(path), "--gstreamer", "--out", str(out)]) == 0
    capsys.readouterr()
    assert [bytes(dpkt.ethernet.Ethernet(b).data.data.data) for _, b in dpkt.pcap.Reader(io.BytesIO(out.read_bytes()))] \
        == plain
