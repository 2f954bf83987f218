"""Rules for the source tree as a whole (issue 8 §2): no ``assert`` for control flow, Error numbers as
:class:`~mikey.constants.ErrorNo` members, and the explicit checks that replaced the asserts."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

from mikey import errors
from mikey.constants import ErrorNo
from mikey.crypto._curves import Curve, FixedBaseTable
from mikey.errors import CryptoError, MikeyError, StateError

SRC = pathlib.Path(__file__).resolve().parent.parent / "src" / "mikey"


def _asserts(tree: ast.AST) -> list[int]:
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]


def test_src_has_no_assert_statements() -> None:
    """``python -O`` strips asserts, so none may guard anything in src/mikey."""
    found = {
        str(path.relative_to(SRC)): lines
        for path in sorted(SRC.rglob("*.py"))
        if (lines := _asserts(ast.parse(path.read_text(encoding="utf-8"), str(path))))
    }
    assert found == {}


def test_the_assert_walk_sees_an_assert() -> None:
    assert _asserts(ast.parse("def f(x):\n    if x:\n        assert x is not None\n")) == [3]


def test_every_err_no_is_an_error_no_member() -> None:
    """Each MikeyError subclass maps to a registered Error number (RFC 3830 Table 6.12) or to none."""
    classes = [obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, MikeyError)]
    assert len(classes) > 20
    for cls in classes:
        assert cls.err_no is None or type(cls.err_no) is ErrorNo, cls.__name__
    assert errors.InvalidTicketError.err_no is ErrorNo.INVALID_TICKET and errors.InvalidTicketError.err_no == 14
    assert errors.MikeyDecodeError.err_no is ErrorNo.UNSPECIFIED
    assert errors.AuthenticationError.err_no == 0 and errors.ReplayError.err_no is None


def test_err_no_given_as_int_becomes_the_member() -> None:
    assert errors.MikeyValidationError(["x"], err_no=6).err_no is ErrorNo.INVALID_DH
    assert MikeyError("m", err_no=99).err_no == 99  # not registered: kept as the number


def test_replay_store_errors_live_in_errors_without_redis() -> None:
    """Callers catch ReplayStoreError from mikey.errors; importing it does not import redis."""
    assert "ReplayStoreError" in errors.__all__ and "ReplayStoreConfigError" in errors.__all__
    assert issubclass(errors.ReplayStoreConfigError, errors.ReplayStoreError)
    assert issubclass(errors.ReplayStoreError, MikeyError) and errors.ReplayStoreError.err_no is None
    code = "import sys, mikey.errors as e; e.ReplayStoreError; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_replay_redis_re_exports_the_same_classes() -> None:
    replay_redis = pytest.importorskip("mikey.replay_redis")
    assert replay_redis.ReplayStoreError is errors.ReplayStoreError
    assert replay_redis.ReplayStoreConfigError is errors.ReplayStoreConfigError


@pytest.mark.parametrize("w", [1, 2, 4])
def test_fixed_base_table_refuses_a_small_order_base(w: int) -> None:
    """y^2 = x^3 - 3x over F_11: (0, 0) has order 2, so [2]B is the point at infinity."""
    curve = Curve("toy", 11, 0, 3, 0, 0)
    with pytest.raises(CryptoError, match="small order"):
        FixedBaseTable(curve, (0, 0), w=w)


def test_demo_peer_without_an_address_is_a_state_error(tmp_path: pathlib.Path) -> None:
    """The demo Initiator needs the Responder's port; asked to run without it, it says so."""
    from mikey.cli import demo_peer

    creds = tmp_path / "creds.json"
    creds.write_text('{"psk": "00112233445566778899aabbccddeeff"}')
    args = demo_peer._parser().parse_args(
        ["--role", "initiator", "--creds", str(creds), "--ssrc", "1", "--peer-ssrc", "2"]
    )
    peer = demo_peer._Peer(args)
    try:
        with pytest.raises(StateError, match="address is not known"):
            peer.run_initiator()
    finally:
        peer.sock.close()
