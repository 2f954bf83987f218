"""``mikey initiate|respond|complete --mode dh|dhhmac`` and the DH plugins' demo and speed hooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mikey.cli import main
from mikey.cli.demo_pki import make_demo_pki
from mikey.cli.mode_dh import PLUGIN as DH_PLUGIN
from mikey.cli.mode_dhhmac import PLUGIN as DHHMAC_PLUGIN
from mikey.constants import DataType
from mikey.crypto.dh import get_group
from mikey.wire import DhPayload, ErrorPayload, Message, SignPayload

T0 = "1717243200"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--now", T0, "--json", "--show-keys"])  # the tests compare keys and pass dh_private on
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return make_demo_pki(tmp_path_factory.mktemp("pki"), now=float(T0))


def _dh_exchange(capsys, pki, i_extra=(), r_extra=()):
    code, ini = run(capsys, "initiate", "--mode", "dh", "--cert", pki["alice"]["cert"], "--key", pki["alice"]["key"],
                    "--ca", pki["ca"], "--ssrc", "11223344", *i_extra)
    assert code == 0 and ini["ok"]
    code, resp = run(capsys, "respond", "--mode", "dh", "--cert", pki["bob"]["cert"], "--key", pki["bob"]["key"],
                     "--ca", pki["ca"], "--imsg", ini["i_message"], *r_extra)
    return ini, code, resp


def test_dh_initiate_respond_complete(capsys, pki) -> None:
    ini, code, resp = _dh_exchange(capsys, pki)
    assert code == 0 and resp["ok"]
    assert Message.decode(bytes.fromhex(resp["r_message"])).data_type == DataType.DH_RESP
    assert len(resp["tgk"]) == 2 * 192
    assert resp["crypto_sessions"][0]["ssrc"] == "11223344" and "srtp_master_key" in resp["crypto_sessions"][0]
    code, done = run(capsys, "complete", "--mode", "dh", "--ca", pki["ca"], "--imsg", ini["i_message"],
                     "--rmsg", resp["r_message"], "--dh-private", ini["dh_private"])
    assert code == 0 and done["tgk"] == resp["tgk"]
    assert done["crypto_sessions"] == resp["crypto_sessions"]
    assert done["responder_id"] == "sip:bob@example.com"


def test_dh_options_group_pss_sha1_fixed_exponent(capsys, pki) -> None:
    ini, code, resp = _dh_exchange(
        capsys, pki,
        ("--dh-group", "2", "--allow-dh-group", "2", "--s-type", "pss", "--sign-hash", "sha1",
         "--dh-private", "abcdef0123456789", "--csb-id", "01020304", "--rand", "00" * 16),
        ("--s-type", "pss", "--dh-private", "123456789abcdef", "--allow-dh-group", "2"),
    )
    assert code == 0 and ini["dh_private"] == "abcdef0123456789"
    i_msg = Message.decode(bytes.fromhex(ini["i_message"]))
    assert i_msg.csb_id == 0x01020304 and i_msg.find(DhPayload).group == 2 and i_msg.find(SignPayload).s_type == 1
    p = get_group(2).p
    assert bytes.fromhex(resp["tgk"]) == pow(2, 0xABCDEF0123456789 * 0x123456789ABCDEF, p).to_bytes(128, "big")


def test_dh_untrusted_initiator_gets_error_message(capsys, pki, tmp_path: Path) -> None:
    other = make_demo_pki(tmp_path / "other", now=float(T0))
    code, ini = run(capsys, "initiate", "--mode", "dh", "--cert", other["alice"]["cert"], "--key", other["alice"]["key"],
                    "--ca", pki["ca"])
    assert code == 0
    code, resp = run(capsys, "respond", "--mode", "dh", "--cert", pki["bob"]["cert"], "--key", pki["bob"]["key"],
                     "--ca", pki["ca"], "--imsg", ini["i_message"])
    assert code == 1 and not resp["ok"] and resp["error"]["err_no"] == 8
    err = Message.decode(bytes.fromhex(resp["r_message"]))
    assert err.data_type == DataType.ERROR and err.find(ErrorPayload).error_no == 8


def _pinned_exchange(capsys, alice: dict[str, Any], bob: dict[str, Any], i_extra=()):
    """Alice initiates with Bob's certificate pinned, Bob responds with Alice's pinned (no --ca anywhere)."""
    code, ini = run(capsys, "initiate", "--mode", "dh", "--cert", alice["cert"], "--key", alice["key"],
                    "--peer-cert", bob["cert"], *i_extra)
    assert code == 0
    code, resp = run(capsys, "respond", "--mode", "dh", "--cert", bob["cert"], "--key", bob["key"],
                     "--peer-cert", alice["cert"], "--imsg", ini["i_message"])
    return ini, code, resp


def test_dh_respond_refuses_expired_pinned_peer_cert(capsys, pki, tmp_path: Path) -> None:
    # Demo leaves live 31 days: made 432 days before T0, Alice's expired about 400 days before it.
    old = make_demo_pki(tmp_path / "old", now=float(T0) - 432 * 86400)
    _, code, resp = _pinned_exchange(capsys, old["alice"], pki["bob"])
    assert code == 1 and not resp["ok"] and resp["error"]["err_no"] == 8
    assert "expired" in resp["error"]["message"]
    assert Message.decode(bytes.fromhex(resp["r_message"])).find(ErrorPayload).error_no == 8


def test_dh_respond_refuses_id_not_in_pinned_peer_cert(capsys, pki) -> None:
    _, code, resp = _pinned_exchange(capsys, pki["alice"], pki["bob"], ("--id-i", "sip:ceo@example.com"))
    assert code == 1 and resp["error"]["err_no"] == 8 and "sip:ceo@example.com" in resp["error"]["message"]


def test_dh_valid_pinned_peer_certs(capsys, pki) -> None:
    ini, code, resp = _pinned_exchange(capsys, pki["alice"], pki["bob"])
    assert code == 0 and resp["ok"] and resp["authenticated"]
    code, done = run(capsys, "complete", "--mode", "dh", "--peer-cert", pki["bob"]["cert"], "--imsg", ini["i_message"],
                     "--rmsg", resp["r_message"], "--dh-private", ini["dh_private"])
    assert code == 0 and done["tgk"] == resp["tgk"] and done["authenticated"]


@pytest.mark.parametrize("group", ["1", "2"])
def test_dh_weak_group_needs_allow_switch(capsys, pki, group: str) -> None:
    keys = ("--cert", pki["alice"]["cert"], "--key", pki["alice"]["key"], "--ca", pki["ca"])
    code, out = run(capsys, "initiate", "--mode", "dh", *keys, "--dh-group", group)
    assert code == 2 and out["error"]["err_no"] == 6 and f"--allow-dh-group {group}" in out["error"]["message"]
    _, code, resp = _dh_exchange(capsys, pki, ("--dh-group", group, "--allow-dh-group", group))
    assert code == 1 and resp["error"]["err_no"] == 6 and f"--allow-dh-group {group}" in resp["error"]["message"]
    assert Message.decode(bytes.fromhex(resp["r_message"])).find(ErrorPayload).error_no == 6
    _, code, resp = _dh_exchange(capsys, pki, ("--dh-group", group, "--allow-dh-group", group),
                                 ("--allow-dh-group", group))
    assert code == 0 and len(resp["tgk"]) == 2 * get_group(int(group)).byte_length


def test_dh_complete_needs_rmsg(capsys, pki) -> None:
    code, ini = run(capsys, "initiate", "--mode", "dh", "--cert", pki["alice"]["cert"], "--key", pki["alice"]["key"],
                    "--ca", pki["ca"])
    assert main(["complete", "--mode", "dh", "--ca", pki["ca"], "--imsg", ini["i_message"],
                 "--dh-private", ini["dh_private"]]) == 2
    assert "the Responder always answers and the keys need its message: pass --rmsg" in capsys.readouterr().err


def test_dhhmac_initiate_respond_complete(capsys) -> None:
    psk = "00112233445566778899aabbccddeeff"
    code, ini = run(capsys, "initiate", "--mode", "dhhmac", "--psk", psk, "--mac", "hmac-sha256", "--prf",
                    "mikey-256", "--id-i", "sip:alice@example.com", "--id-r", "sip:bob@example.com",
                    "--dh-group", "1", "--allow-dh-group", "1")
    assert code == 0
    code, resp = run(capsys, "respond", "--mode", "dhhmac", "--psk", psk, "--imsg", ini["i_message"],
                     "--ssrc", "abcd", "--allow-dh-group", "1")
    assert code == 0 and len(resp["tgk"]) == 2 * 96
    code, done = run(capsys, "complete", "--mode", "dhhmac", "--psk", psk, "--imsg", ini["i_message"],
                     "--rmsg", resp["r_message"], "--dh-private", ini["dh_private"], "--allow-dh-group", "1")
    assert code == 0 and done["tgk"] == resp["tgk"] and done["crypto_sessions"] == resp["crypto_sessions"]
    code, bad = run(capsys, "respond", "--mode", "dhhmac", "--psk", "00" * 16, "--imsg", ini["i_message"],
                    "--allow-dh-group", "1")
    assert code == 1 and bad["error"]["err_no"] == 0 and bad["r_message"]


def test_dhhmac_compat_option_on_the_command_line(capsys) -> None:
    psk = "0f" * 16
    code, ini = run(capsys, "initiate", "--mode", "dhhmac", "--psk", psk)  # no IDr
    code, resp = run(capsys, "respond", "--mode", "dhhmac", "--psk", psk, "--imsg", ini["i_message"])
    assert code == 1 and resp["error"]["err_no"] == 7
    code, resp = run(capsys, "respond", "--mode", "dhhmac", "--psk", psk, "--imsg", ini["i_message"],
                     "--compat", "init-without-idr")
    assert code == 0


@pytest.mark.parametrize("plugin", [DH_PLUGIN, DHHMAC_PLUGIN])
def test_demo_hooks_and_speed_cases(plugin, tmp_path: Path) -> None:
    creds = plugin.demo_credentials(tmp_path)
    json.dumps(creds)
    ini = plugin.demo_initiator(creds, 0x1111)
    res = plugin.demo_responder(creds, 0x2222)
    import time

    now = time.time()
    out = res.receive(ini.create_message(now), now)
    assert out.response is not None
    assert ini.receive(out.response, now).tgk == out.result.tgk
    assert plugin.demo_description(creds)
    cases = plugin.speed_cases()
    assert {c.baseline for c in cases} == {"modexp1536"}
    assert len(cases) == 2 and all(c.name.endswith(("initiator", "responder")) for c in cases)
    for case in cases:
        case.run()
        case.run()
