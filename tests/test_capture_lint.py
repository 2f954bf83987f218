"""``lint()``, ``validate(lints=True)`` and ``mikey decode --lint``: the MIKEY mistakes seen in the field (issue 13 §4).

One implementation (:func:`mikey.wire.validate.lint`) serves the library and the command.
"""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest
from test_capture import NOW, PSK

from mikey.cli import decode
from mikey.cli.main import main
from mikey.constants import DataType, EncrAlg, MacAlg, ProtType
from mikey.modes.base import CryptoSessionSpec
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.wire import Message, SecurityPolicyPayload
from mikey.wire.validate import LintWarning, lint, validate


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


def test_sp3_equal_to_a_tag_length_beside_parameter_11() -> None:
    msg = _with_sp(_message(), ((3, b"\x04"),), drop=frozenset({3}))
    assert lint(msg) == ["SP parameter 3 (authentication key length) is 4, the size of a tag; HMAC-SHA1 keys are "
                         "20 octets (RFC 3711 §8.2) and parameter 11 already sets the tag length"]


@pytest.mark.parametrize(("ptype", "value", "octets"), [(1, 128, 16), (3, 160, 20), (4, 112, 14), (11, 80, 10),
                                                        (11, 32, 4)])
def test_lengths_in_bits(ptype: int, value: int, octets: int) -> None:
    msg = _with_sp(_message(), ((ptype, value.to_bytes(1 if value < 256 else 2, "big")),), drop=frozenset({ptype}))
    found = [w for w in lint(msg) if "bits" in w]
    assert len(found) == 1 and found[0].startswith(f"SP parameter {ptype} (") and found[0].endswith(f"({octets})")


def test_two_policies_are_named() -> None:
    base = _message(encr_alg=int(EncrAlg.NULL), allow_null_security=True, key_type=3, tgk=b"t" * 16,
                    tgk_salt=b"s" * 14)
    sp = base.find(SecurityPolicyPayload)
    assert sp is not None
    other = SecurityPolicyPayload(1, ProtType.SRTP, tuple((t, v) for t, v in sp.params if t != 1) + ((1, b"\x20"),))
    i = base.payloads.index(sp)
    msg = Message(base.header, (*base.payloads[: i + 1], other, *base.payloads[i + 1 :]))
    assert [w for w in lint(msg) if w.startswith("KEY_DATA")] == [
        "KEY_DATA TEK is 16 octets but the SP policy 1 encryption key length is 32"]


def test_secure_carrier_silences_null_security_only() -> None:
    msg = _message(encr_alg=int(EncrAlg.NULL), mac_alg=int(MacAlg.NULL), allow_null_security=True, key_type=2,
                   tgk=b"t" * 16)
    assert lint(msg, secure_carrier=True) == [
        "KEY_DATA carries a TEK without salt while the SP sets a salt length: TEK+salt (type 3) was probably meant"]
    assert len(lint(msg)) == 3


def test_validate_returns_and_issues_lint_warnings() -> None:
    msg = _message(encr_alg=int(EncrAlg.NULL), allow_null_security=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert validate(msg) == []
        assert caught == []
        found = validate(msg, lints=True)
    assert found == lint(msg) and found[0].startswith("KEMAC encryption NULL")
    assert [(w.category, str(w.message)) for w in caught] == [(LintWarning, f) for f in found]
    assert validate(msg, lints=True, secure_carrier=True) == []


def test_decode_uses_the_library_lint(capsys: pytest.CaptureFixture[str]) -> None:
    assert decode.lint is lint
    data = _message(encr_alg=int(EncrAlg.NULL), allow_null_security=True).raw_bytes()
    assert main(["--json", "decode", "--lint", "--secure-carrier", data.hex()]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []
