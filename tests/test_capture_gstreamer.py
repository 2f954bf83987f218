"""The caps ``mikey keys --format gst --show-keys`` prints key a real GStreamer ``srtpdec`` (issue 13 §2).

A PSK exchange and the SRTP/SRTCP it keys (protected by our libsrtp bridge) are written to a
capture; ``mikey keys`` reads the capture; the RTP and RTCP of the capture, framed as RFC 4571
streams, go through ``gst-launch-1.0 ... rtpstreamdepay ! application/x-srtp,<caps> ! srtpdec``
and ``multifilesink`` writes each decrypted packet to its own file, compared byte for byte.
Every profile ``mikey keys`` names is covered (AES-CM-128 with 80- and 32-bit tags, AEAD-AES-128/256-GCM),
with a non-zero ROC; a wrong key or ROC makes ``srtpdec`` drop every packet.

Skipped without ``gst-launch-1.0`` and the elements used; with ``CI`` set, fails instead (``.ci/run``
installs gstreamer1.0-tools, -plugins-good and -plugins-bad).  (GStreamer's ``pcapparse`` is not used:
in 1.22 ``pcapparse ! srtpdec`` passes the packets through undecrypted.)
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import pytest
from test_capture import NOW, PSK, A, B, pcap, sip, udp
from test_capture_srtp import rtcp_sr, rtp

from mikey.cli.main import main
from mikey.constants import ProtType
from mikey.modes.base import CryptoSessionSpec
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.offer_answer import make_answer, make_offer
from mikey.session import CryptoSessionBundle
from mikey.srtp import SrtpPolicyParams
from mikey.wire import SecurityPolicyPayload

ELEMENTS = ("filesrc", "rtpstreamdepay", "srtpdec", "multifilesink")
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
