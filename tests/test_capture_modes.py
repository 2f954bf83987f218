"""``mikey keys`` for every key-exchange mode whose credentials a person may hold (issue 13 §2, "Done when").

Each exchange is made with the CLI (``initiate``/``respond``), carried in a SIP INVITE / 200 OK
capture, and ``mikey keys CAPTURE --mode M <credentials>`` must print the keys the Responder
derived: PSK, PK and MIKEY-SAKKE as the Responder (``respond`` options: the PSK, the Responder's
private key, its SAKKE keystore); RSA-R, DH and DH-HMAC as the Initiator receiving the captured
R_MESSAGE (``complete`` options: the Initiator's private key, its DH exponent).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import dpkt  # type: ignore[import-untyped]
import pytest
from test_capture import A, B, pcap, sip, udp
from test_capture_srtp import rtp

from mikey.cli.demo_pki import make_demo_pki
from mikey.cli.main import main
from mikey.offer_answer import make_answer, make_offer
from mikey.srtp import SrtpContext, SrtpPolicyParams

T0 = 1717243200.0
PSK = "6b" * 16


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main([*argv, "--now", str(T0), "--json", "--show-keys"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    return out  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return make_demo_pki(tmp_path_factory.mktemp("pki"), now=T0)


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("kms")
    assert main(["kms", "init", "--out", str(d), "--kms-uri", "kms.capture.example"]) == 0
    for name in ("alice", "bob"):
        assert main(["kms", "issue", "--community", str(d / "community.json"), "--uri", f"sip:{name}@capture.example",
                     "--out", str(d / f"{name}.json"), "--now", str(int(T0))]) == 0
    return d


def capture(tmp_path: Path, i_message: str, r_message: str | None, media: tuple[bytes, ...] = ()) -> Path:
    frames = [udp(A, 5060, B, 5060, sip("INVITE sip:bob@example.org SIP/2.0", "m1",
                                        make_offer(bytes.fromhex(i_message))))]
    if r_message:
        frames.append(udp(B, 5060, A, 5060, sip("SIP/2.0 200 OK", "m1", make_answer(bytes.fromhex(r_message)))))
    frames += [udp(A, 40000, B, 40002, m) for m in media]
    path = tmp_path / "call.pcap"
    path.write_bytes(pcap(frames, t0=T0))
    return path


def derived(result: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    return [(cs["ssrc"], cs["srtp_master_key"], cs["srtp_master_salt"]) for cs in result["crypto_sessions"]]


def recovered(capsys: pytest.CaptureFixture[str], path: Path, *creds: str) -> list[tuple[str | None, str, str]]:
    code = main(["keys", str(path), *creds, "--json", "--show-keys"])
    obj = json.loads(capsys.readouterr().out)
    assert code == 0 and obj["failures"] == [], obj
    return [(r["ssrc"], r["master_key"], r["master_salt"]) for r in obj["crypto_sessions"]]


def exchange(capsys: pytest.CaptureFixture[str], mode: str, i_opts: list[str],
             r_opts: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    ini = cli(capsys, "initiate", "--mode", mode, *i_opts)
    res = cli(capsys, "respond", "--mode", mode, "--imsg", ini["i_message"], *r_opts)
    return ini, res


def test_psk_placeholder_ssrc_filled_from_the_captured_response(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    ini, res = exchange(capsys, "psk", ["--psk", PSK, "--ssrc", "0", "--ssrc", "aaaa0002", "--verify"],
                        ["--psk", PSK, "--ssrc", "bbbb0001"])
    keys = derived(res)
    assert [k[0] for k in keys] == ["bbbb0001", "aaaa0002"]
    path = capture(tmp_path, ini["i_message"], res["r_message"])
    assert recovered(capsys, path, "--mode", "psk", "--psk", PSK) == keys
    # the I_MESSAGE alone leaves the placeholder unless --ssrc says what the Responder chose
    alone = capture(tmp_path, ini["i_message"], None)
    assert recovered(capsys, alone, "--mode", "psk", "--psk", PSK)[0][0] == "00000000"
    assert recovered(capsys, alone, "--mode", "psk", "--psk", PSK, "--ssrc", "bbbb0001") == keys


def test_pk_with_the_responders_private_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            pki: dict[str, Any]) -> None:
    alice, bob = pki["alice"], pki["bob"]
    ini, res = exchange(capsys, "pk", ["--cert", alice["cert"], "--key", alice["key"], "--peer-cert", bob["cert"],
                                       "--ca", pki["ca"], "--ssrc", "11110001"],
                        ["--cert", bob["cert"], "--key", bob["key"], "--ca", pki["ca"]])
    path = capture(tmp_path, ini["i_message"], res["r_message"])
    assert recovered(capsys, path, "--mode", "pk", "--cert", bob["cert"], "--key", bob["key"],
                     "--ca", pki["ca"]) == derived(res)
    assert main(["keys", str(path), "--mode", "pk", "--cert", alice["cert"], "--key", alice["key"],
                 "--ca", pki["ca"]]) == 1  # the Initiator's key does not open the envelope
    assert "packet 1: cannot recover keys:" in capsys.readouterr().out


def test_rsa_r_with_the_initiators_private_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               pki: dict[str, Any]) -> None:
    alice, bob = pki["alice"], pki["bob"]
    ini, res = exchange(capsys, "rsa-r", ["--cert", alice["cert"], "--key", alice["key"], "--ca", pki["ca"],
                                          "--ssrc", "22220001"],
                        ["--cert", bob["cert"], "--key", bob["key"], "--ca", pki["ca"], "--ssrc", "22220002"])
    path = capture(tmp_path, ini["i_message"], res["r_message"])
    creds = ["--mode", "rsa-r", "--cert", alice["cert"], "--key", alice["key"], "--ca", pki["ca"]]
    assert recovered(capsys, path, *creds) == derived(res)
    # without the R_MESSAGE there are no keys to recover (the Responder chose them), never made-up ones
    alone = capture(tmp_path, ini["i_message"], None)
    assert main(["keys", str(alone), *creds]) == 1
    assert "packet 1: cannot recover keys: no R_MESSAGE answering CSB ID " in capsys.readouterr().out
    # one message given as text, the R_MESSAGE with --rmsg
    code = main(["keys", ini["i_message"], "--rmsg", res["r_message"], *creds, "--json", "--show-keys"])
    rows = json.loads(capsys.readouterr().out)["crypto_sessions"]
    assert code == 0 and [(r["ssrc"], r["master_key"], r["master_salt"]) for r in rows] == derived(res)


def test_dh_with_the_initiators_exponent(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         pki: dict[str, Any]) -> None:
    alice, bob = pki["alice"], pki["bob"]
    ini, res = exchange(capsys, "dh", ["--cert", alice["cert"], "--key", alice["key"], "--ca", pki["ca"],
                                       "--ssrc", "33330001"],
                        ["--cert", bob["cert"], "--key", bob["key"], "--ca", pki["ca"]])
    path = capture(tmp_path, ini["i_message"], res["r_message"])
    assert recovered(capsys, path, "--mode", "dh", "--ca", pki["ca"], "--dh-private", ini["dh_private"]) == derived(res)
    wrong = f"{int(ini['dh_private'], 16) ^ 2:x}"
    assert main(["keys", str(path), "--mode", "dh", "--ca", pki["ca"], "--dh-private", wrong]) == 1


def test_dhhmac_with_the_psk_and_the_initiators_exponent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ini, res = exchange(capsys, "dhhmac", ["--psk", PSK, "--ssrc", "44440001", "--id-i", "sip:alice@example.com",
                                           "--id-r", "sip:bob@example.com"], ["--psk", PSK])
    path = capture(tmp_path, ini["i_message"], res["r_message"])
    assert recovered(capsys, path, "--mode", "dhhmac", "--psk", PSK, "--dh-private", ini["dh_private"]) == derived(res)
    # its KEMAC has NULL encryption but carries no key: nothing to read without credentials
    assert main(["keys", str(path)]) == 2
    assert "give --mode" in capsys.readouterr().err


def test_sakke_with_the_responders_keystore(tmp_path: Path, capsys: pytest.CaptureFixture[str], kms: Path) -> None:
    ini, res = exchange(capsys, "sakke", ["--keys", str(kms / "alice.json"), "--to", "sip:bob@capture.example"],
                        ["--keys", str(kms / "bob.json"), "--from", "sip:alice@capture.example", "--cs-id", "1"])
    assert res["r_message"] is None and len(derived(res)) == 1
    [(ssrc, key, salt)] = derived(res)
    assert ssrc is None  # the empty CS ID map (RFC 6509 §2.1): the SSRC comes with the media
    sender = SrtpContext(bytes.fromhex(key), bytes.fromhex(salt), SrtpPolicyParams(), ssrc=0x5AC0E001, outbound=True)
    plain = [rtp(0x5AC0E001, 1 + i, b"sakke" * (i + 1)) for i in range(3)]
    path = capture(tmp_path, ini["i_message"], None, tuple(sender.protect(p) for p in plain))
    creds = ["--mode", "sakke", "--keys", str(kms / "bob.json"), "--from", "sip:alice@capture.example", "--cs-id", "1"]
    assert recovered(capsys, path, *creds) == derived(res)
    # srtp-decrypt keys the stream the SAKKE key authenticates
    out = tmp_path / "plain.pcap"
    assert main(["srtp-decrypt", str(path), "--keys-from", str(path), *creds, "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["streams"]["5ac0e001"]["learned"] is True
    assert [bytes(dpkt.ethernet.Ethernet(b).data.data.data) for _, b in dpkt.pcap.Reader(io.BytesIO(out.read_bytes()))] \
        == plain
