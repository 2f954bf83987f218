"""The README's "From a capture to decrypted media": its three commands, run as written on a SIP call capture.

The commands are kept here; once the section is in README.md its ``sh`` block must be exactly them.
"""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import pytest
from test_capture import PSK, A, B, pcap, sip, udp
from test_capture_keys import SSRCS, exchange
from test_capture_srtp import rtp

from mikey.cli.main import main
from mikey.offer_answer import make_answer, make_offer
from mikey.session import CryptoSessionBundle

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## From a capture to decrypted media"
THREE_COMMANDS = [
    "mikey decode call.pcap                      # --json, --lint",
    "mikey keys call.pcap --mode psk --psk HEX --show-keys --format gst   # or sdes/json; no --mode for NULL KEMACs",
    "mikey srtp-decrypt call.pcap --keys-from call.pcap --mode psk --psk HEX --out decrypted.pcap",
]


def argv(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    assert words[0] == "mikey"
    return [PSK.hex() if w == "HEX" else w for w in words[1:]]


def test_readme_section_is_the_three_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert SECTION in text
    section = text[text.index(SECTION):]
    first_block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert first_block is not None
    assert first_block.group(1).splitlines() == THREE_COMMANDS


def test_three_commands_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    i_msg, r_msg, result = exchange()
    sender = CryptoSessionBundle(result).sender(1)
    plain = [rtp(SSRCS[0], 1 + i, bytes([i]) * 40) for i in range(3)]
    frames = [udp(A, 5060, B, 5060, sip("INVITE sip:bob@example.org SIP/2.0", "r1", make_offer(i_msg))),
              udp(B, 5060, A, 5060, sip("SIP/2.0 200 OK", "r1", make_answer(r_msg)))]
    frames += [udp(A, 40000, B, 40002, sender.protect(p)) for p in plain]
    monkeypatch.chdir(tmp_path)
    Path("call.pcap").write_bytes(pcap(frames))

    decode, keys, decrypt = (argv(c) for c in THREE_COMMANDS)
    assert main(decode) == 0
    assert "call.pcap: 2 MIKEY messages" in capsys.readouterr().out
    assert main(keys) == 0
    cs = result.crypto_sessions[0]
    assert f"srtp-key=(buffer){(cs.master_key + cs.master_salt).hex()}" in capsys.readouterr().out.splitlines()[0]
    assert main(decrypt) == 0
    assert f"SSRC {SSRCS[0]:08x}: 3 RTP, 0 RTCP decrypted" in capsys.readouterr().out
    written = Path("decrypted.pcap").read_bytes()
    assert [bytes(dpkt.ethernet.Ethernet(b).data.data.data) for _, b in dpkt.pcap.Reader(io.BytesIO(written))] == plain
