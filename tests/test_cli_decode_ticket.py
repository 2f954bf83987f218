"""``mikey decode --tpk``: a TICKET payload's base ticket opened with its Ticket Protection Key (RFC 6043 App. A)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mikey.cli import main

GOLDEN = json.loads((Path(__file__).parent / "vectors" / "mikey_ticket_golden.json").read_text())["messages"]
TPK = bytes(range(0x64, 0x74)).hex()  # the golden exchange's TPK (its description)


def decode(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_the_golden_transfer_init_opens_with_its_tpk(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = decode(capsys, "--json", "decode", GOLDEN["transfer_init"], "--tpk", TPK, "--show-keys")
    assert code == 0
    [ticket] = json.loads(out)["tickets"]
    assert ticket["problems"] == [] and ticket["policy"]["responders"]
    opened = ticket["opened"]
    assert opened["mac_verified"] is True and opened["tpk_id"] == "kms-tpk"
    [tgk] = opened["session_keys"]
    assert tgk["key_type_name"] == "TGK" and tgk["length"] == 16 == len(bytes.fromhex(tgk["key"]))
    assert len(bytes.fromhex(opened["mpk_i"])) == len(bytes.fromhex(opened["mpk_r"])) == 16


def test_keys_only_with_show_keys_and_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = decode(capsys, "--json", "decode", GOLDEN["transfer_init"], "--tpk", TPK)
    opened = json.loads(out)["tickets"][0]["opened"]
    assert code == 0 and "key" not in opened["session_keys"][0] and "mpk_i" not in opened
    code, text = decode(capsys, "decode", GOLDEN["transfer_init"], "--tpk", TPK)
    assert code == 0 and "ticket opened with --tpk:" in text and "mac_verified: True" in text
    assert "spi: 2b902f89" in text


def test_a_wrong_tpk_is_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = decode(capsys, "--json", "decode", GOLDEN["transfer_init"], "--tpk", "00" * 16)
    [ticket] = json.loads(out)["tickets"]
    assert code == 0 and "opened" not in ticket
    assert any("MAC verification failed" in p for p in ticket["problems"])


def test_messages_without_a_ticket_and_bad_tpk(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = decode(capsys, "--json", "decode", GOLDEN["request_init"], "--tpk", TPK)
    assert code == 0 and json.loads(out)["tickets"] == []
    assert main(["decode", GOLDEN["transfer_init"], "--tpk", "xyz"]) == 2
    assert "--tpk: not a hex string" in capsys.readouterr().err
