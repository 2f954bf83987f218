"""``mikey decode --lint``: warnings for the MIKEY mistakes seen in the field (issue 13 §4)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from test_capture import NOW, PSK

from mikey.cli.decode import lint
from mikey.cli.main import main
from mikey.constants import DataType, EncrAlg, MacAlg
from mikey.modes.base import CryptoSessionSpec
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.wire import Message, SecurityPolicyPayload


def _message(**kw: object) -> Message:
    initiator = PskInitiator(PSK, crypto_sessions=[CryptoSessionSpec(ssrc=0xAAAA0001)], **kw)  # type: ignore[arg-type]
    return Message.decode(initiator.create_message(NOW))


def _with_sp(msg: Message, extra: tuple[tuple[int, bytes], ...], drop: frozenset[int] = frozenset()) -> Message:
    payloads = []
    for p in msg.payloads:
        if isinstance(p, SecurityPolicyPayload):
            p = dataclasses.replace(p, params=tuple((t, v) for t, v in p.params if t not in drop) + extra)
        payloads.append(p)
    return Message(msg.header, tuple(payloads))


def test_clean_message_has_no_warnings() -> None:
    assert lint(_message()) == []


def test_sp3_holding_a_tag_length() -> None:
    msg = _with_sp(_message(), ((3, b"\x0a"),), drop=frozenset({3, 11}))
    assert lint(msg) == ["SP parameter 3 (authentication key length) is 10, a tag length: parameter 11 "
                         "(SRTP authentication tag length) was probably meant (HMAC-SHA1 keys are 20 octets)"]
    assert lint(_with_sp(_message(), ((3, b"\x14"),), drop=frozenset({3}))) == []


def test_null_security() -> None:
    msg = _message(encr_alg=int(EncrAlg.NULL), mac_alg=int(MacAlg.NULL), allow_null_security=True)
    warnings = lint(msg)
    assert any(w.startswith("KEMAC encryption NULL") for w in warnings)
    assert any(w.startswith("KEMAC MAC NULL") for w in warnings)


def test_ssrc_0_left_in_response() -> None:
    initiator = PskInitiator(PSK, crypto_sessions=[CryptoSessionSpec(ssrc=0)], v=True)
    i_message = initiator.create_message(NOW)
    unfilled = PskResponder(PSK).receive(i_message, NOW).response
    filled = PskResponder(PSK, own_ssrcs=[0xBBBB0001]).receive(i_message, NOW).response
    assert unfilled is not None and filled is not None
    assert Message.decode(unfilled).header.data_type == DataType.PSK_RESP
    assert lint(Message.decode(unfilled)) == [
        "CS 1: SSRC 0 left unfilled in a response (RFC 3830 §6.1.1: the Responder fills it in)"]
    assert lint(Message.decode(filled)) == []


def test_cli_lint(capsys: pytest.CaptureFixture[str]) -> None:
    data = _message(encr_alg=int(EncrAlg.NULL), allow_null_security=True).raw_bytes()
    assert main(["decode", "--lint", data.hex()]) == 0
    assert "warning: KEMAC encryption NULL" in capsys.readouterr().out
    assert main(["--json", "decode", "--lint", data.hex()]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"][0].startswith("KEMAC encryption NULL")


def test_tek_lengths_against_the_sp() -> None:
    ok = _message(encr_alg=int(EncrAlg.NULL), allow_null_security=True, key_type=3, tgk=b"t" * 16, tgk_salt=b"s" * 14)
    assert [w for w in lint(ok) if w.startswith("KEY_DATA")] == []
    short = _message(encr_alg=int(EncrAlg.NULL), allow_null_security=True, key_type=3, tgk=b"t" * 32,
                     tgk_salt=b"s" * 12)
    assert [w for w in lint(short) if w.startswith("KEY_DATA")] == [
        "KEY_DATA TEK is 32 octets but the SP encryption key length is 16",
        "KEY_DATA salt is 12 octets but the SP salt key length is 14",
    ]
    no_salt = _message(encr_alg=int(EncrAlg.NULL), allow_null_security=True, key_type=2, tgk=b"t" * 16)
    assert [w for w in lint(no_salt) if w.startswith("KEY_DATA")] == [
        "KEY_DATA carries a TEK without salt while the SP sets a salt length: TEK+salt (type 3) was probably meant"]
