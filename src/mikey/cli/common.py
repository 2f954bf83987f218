"""What every ``mikey`` command shares: reading messages, parsing hex options, output and exit codes.

Messages are accepted as hex, base64, or ``mikey <base64>`` (the SDP key-mgmt
value, RFC 4567 §3.1), from an argument, from ``@FILE``, or from standard input
(``-`` or no argument).  Exit status: 0 success, 1 message rejected, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from enum import IntEnum
from typing import IO, Any, TypeVar

from ..constants import PRF, EncrAlg, MacAlg
from ..errors import MikeyDecodeError, MikeyError, PeerError
from ..modes.base import ExchangeResult, ResponderOutcome
from ..wire import parse_text

__all__ = [
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_USAGE",
    "UsageError",
    "read_message",
    "read_text",
    "hex_bytes",
    "hex_int",
    "hex_u32",
    "unix_seconds",
    "enum_option",
    "ENCR_NAMES",
    "MAC_NAMES",
    "PRF_NAMES",
    "emit_json",
    "error_dict",
    "rejection",
    "result_json",
    "outcome_json",
    "result_text",
    "add_json_option",
]

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A command-line mistake (bad option value, missing input): exit status 2."""


# --- input -----------------------------------------------------------------------------------


def read_text(source: str | None, *, stdin: IO[str] | None = None) -> str:
    """The text of *source*: the argument itself, ``@FILE``'s contents, or stdin for ``None``/``-``."""
    if source is None or source == "-":
        stream = stdin if stdin is not None else sys.stdin
        if stream is None or stream.isatty():
            raise UsageError("no message given (pass it as an argument or on standard input)")
        return stream.read()
    if source.startswith("@") and len(source) > 1:
        try:
            with open(source[1:], encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            raise UsageError(f"cannot read {source[1:]}: {e.strerror}") from None
    return source


def read_message(source: str | None, *, stdin: IO[str] | None = None) -> bytes:
    """Bytes of a MIKEY message given as hex, base64 or ``mikey <base64>`` (see :func:`read_text`).

    Raises :class:`MikeyDecodeError` when the text is none of these, and
    :class:`UsageError` when there is no input at all.
    """
    text = read_text(source, stdin=stdin)
    if not text.strip():
        raise UsageError("empty message")
    return parse_text(text)


# --- option parsing (argparse ``type=`` callables) -------------------------------------------


def _strip_hex(text: str) -> str:
    s = "".join(text.split()).replace(":", "")
    if s.lower().startswith("0x"):
        s = s[2:]
    return s


def hex_bytes(text: str) -> bytes:
    """An octet string given in hex (``0x``, whitespace and ``:`` separators allowed)."""
    s = _strip_hex(text)
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a hex string: {text!r}") from None


def hex_int(text: str) -> int:
    """A non-negative integer given in hex (with or without ``0x``)."""
    s = _strip_hex(text)
    try:
        value = int(s, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a hex number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def hex_u32(text: str) -> int:
    """A 32-bit value (CSB ID, SSRC) in hex."""
    value = hex_int(text)
    if value > 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"does not fit in 32 bits: {text!r}")
    return value


def unix_seconds(text: str) -> float:
    """``--now``: Unix time in seconds (float)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not abs(value) < float("inf"):  # NaN or infinity: the clock checks would be meaningless
        raise argparse.ArgumentTypeError(f"not a finite number of seconds: {text!r}")
    return value


E = TypeVar("E", bound=IntEnum)

#: CLI names of the KEMAC encryption algorithms (RFC 3830 §6.2, RFC 5748).
ENCR_NAMES: dict[str, EncrAlg] = {
    "null": EncrAlg.NULL,
    "aes-cm-128": EncrAlg.AES_CM_128,
    "aes-kw-128": EncrAlg.AES_KW_128,
    "aes-cm-256": EncrAlg.AES_CM_256,
}
#: CLI names of the KEMAC / V MAC algorithms (RFC 3830 §6.2, RFC 6043).
MAC_NAMES: dict[str, MacAlg] = {
    "null": MacAlg.NULL,
    "hmac-sha1": MacAlg.HMAC_SHA_1_160,
    "hmac-sha256": MacAlg.HMAC_SHA_256_256,
}
#: CLI names of the PRFs (RFC 3830 §4.1.2, RFC 6043 §6.1).
PRF_NAMES: dict[str, PRF] = {"mikey-1": PRF.MIKEY_1, "mikey-256": PRF.PRF_HMAC_SHA_256}


def enum_option(table: dict[str, E]) -> Callable[[str], E]:
    """An argparse ``type=`` mapping a CLI name (case-insensitive) to its registry value."""

    def convert(text: str) -> E:
        value = table.get(text.strip().lower())
        if value is None:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(table)}")
        return value

    convert.__name__ = "choice"
    return convert


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json`` on a subcommand (SUPPRESS so a global ``mikey --json CMD`` is not overwritten)."""
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object instead of text"
    )


# --- output ----------------------------------------------------------------------------------


def emit_json(obj: dict[str, Any], out: IO[str] | None = None) -> None:
    stream = out if out is not None else sys.stdout
    stream.write(json.dumps(obj, indent=2) + "\n")


def error_dict(exc: BaseException) -> dict[str, Any]:
    """``{"kind", "message", "err_no"}`` of an error (never contains key material)."""
    if isinstance(exc, MikeyError):
        d: dict[str, Any] = {"kind": exc.kind, "message": exc.message, "err_no": exc.err_no}
        if isinstance(exc, PeerError):
            d["err_no"] = exc.err_nos[0] if exc.err_nos else None
            d["err_nos"] = exc.err_nos
        if isinstance(exc, MikeyDecodeError):
            d["payload"] = exc.payload
            d["offset"] = exc.offset
        return d
    return {"kind": "usage", "message": str(exc), "err_no": None}


def rejection(
    exc: MikeyError, *, as_json: bool, message_key: str | None = None, label: str = "rejected",
    status: int = EXIT_REJECTED,
) -> int:
    """Report a rejected message; returns exit status 1 (or *status*).

    ``message_key`` (e.g. ``"r_message"``) adds the Error message the side answers
    with (RFC 3830 §5.1.2), or null.
    """
    if as_json:
        obj: dict[str, Any] = {"ok": False, "error": error_dict(exc)}
        if message_key is not None:
            obj[message_key] = exc.error_message.hex() if exc.error_message is not None else None
        emit_json(obj)
    else:
        err_no = error_dict(exc)["err_no"]
        suffix = f" (Error no {err_no})" if err_no is not None else ""
        print(f"{label}: {exc.kind}: {exc.message}{suffix}")
        if message_key is not None and exc.error_message is not None:
            print(f"Error message: {exc.error_message.hex()}")
    return status


def result_json(result: ExchangeResult, **extra: Any) -> dict[str, Any]:
    """``{"ok": true, ...extra, ...ExchangeResult.to_dict()}`` (keys included, as the CLI spec asks)."""
    obj: dict[str, Any] = {"ok": True}
    obj.update(extra)
    obj.update(result.to_dict(secrets=True))
    return obj


def outcome_json(outcome: ResponderOutcome) -> dict[str, Any]:
    """The ``respond`` JSON: the R_MESSAGE (or null) and the Responder's keys."""
    r = outcome.response
    return result_json(outcome.result, r_message=r.hex() if r is not None else None)


def result_text(result: ExchangeResult, *, show_keys: bool = False) -> list[str]:
    """A short labelled summary; keys appear only with *show_keys* (fingerprints otherwise)."""
    lines = [
        f"mode:           {result.mode}",
        f"CSB ID:         {result.csb_id:08x}",
        f"PRF:            {_prf_name(int(result.prf))}",
        f"authenticated:  {'yes' if result.authenticated else 'no'}",
    ]
    if result.initiator_id is not None:
        lines.append(f"initiator ID:   {result.initiator_id.decode('utf-8', 'replace')}")
    if result.responder_id is not None:
        lines.append(f"responder ID:   {result.responder_id.decode('utf-8', 'replace')}")
    lines.append(f"RAND:           {result.rand.hex()}")
    if show_keys:
        lines.append(f"TGK:            {result.tgk.hex()}")
    lines.append(f"crypto sessions: {len(result.crypto_sessions)}")
    for cs in result.crypto_sessions:
        ssrc = f"{cs.ssrc:08x}" if cs.ssrc is not None else "-"
        policy = cs.policy.policy_no if cs.policy is not None else "-"
        lines.append(f"  CS {cs.cs_id}: SSRC {ssrc}  ROC {cs.roc}  policy {policy}  fingerprint {cs.fingerprint()}")
        if show_keys:
            lines.append(f"    SRTP master key:  {cs.master_key.hex()}")
            lines.append(f"    SRTP master salt: {cs.master_salt.hex()}")
    return lines


def _prf_name(prf: int) -> str:
    for name, value in PRF_NAMES.items():
        if value == prf:
            return name
    return str(prf)
