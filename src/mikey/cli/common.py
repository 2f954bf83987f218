"""What every ``mikey`` command shares: reading messages, parsing hex options, output and exit codes.

Messages are accepted as hex, base64, or ``mikey <base64>`` (the SDP key-mgmt
value, RFC 4567 §3.1), from an argument, from ``@FILE``, or from standard input
(``-`` or no argument); a file or standard input may also hold the raw binary
message.  Exit status: 0 success, 1 message rejected, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Collection
from enum import IntEnum
from typing import IO, Any, TypeVar

from ..constants import PRF, EncrAlg, MacAlg
from ..errors import MikeyDecodeError, MikeyError, PeerError
from ..modes.results import ExchangeResult, ResponderOutcome
from ..wire import parse_text

__all__ = [
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_USAGE",
    "UsageError",
    "MAX_INPUT",
    "read_message",
    "message_bytes",
    "hex_bytes",
    "hex_int",
    "hex_u32",
    "unix_seconds",
    "enum_option",
    "ENCR_NAMES",
    "MAC_NAMES",
    "PRF_NAMES",
    "emit_json",
    "one_line",
    "error_dict",
    "rejection",
    "result_json",
    "outcome_json",
    "result_text",
    "add_json_option",
    "add_kemac_options",
    "load_cached",
]

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A command-line mistake (bad option value, missing input): exit status 2."""


# --- input -----------------------------------------------------------------------------------


T = TypeVar("T")

#: Files already loaded by :func:`load_cached`: (loader, path, inode, mtime, size) -> what the loader made.
_LOADED: dict[tuple[str, str, int, int, int], Any] = {}


def load_cached(path: str, loader: Callable[[str], T]) -> T:
    """``loader(path)``, reused while the file is the same (inode, mtime, size).

    A phone makes an Initiator or Responder per call from the same key file; checking identity-based
    keys costs pairings, and the loaded keys keep per-key tables that make later operations faster.
    """
    try:
        st = os.stat(path)
    except OSError:
        return loader(path)  # the loader's own clear error
    key = (f"{loader.__module__}.{loader.__qualname__}", os.path.abspath(path), st.st_ino, st.st_mtime_ns,
           st.st_size)
    if key not in _LOADED:
        if len(_LOADED) >= 32:
            _LOADED.clear()
        _LOADED[key] = loader(path)
    loaded: T = _LOADED[key]
    return loaded


#: The most a message argument, file or standard input may hold (MIKEY messages are far smaller).
MAX_INPUT = 1 << 20


def _read_input(source: str | None, stdin: IO[str] | None) -> str | bytes:
    """The argument itself (text), or the octets of ``@FILE`` or of stdin for ``None``/``-``."""
    if source is None or source == "-":
        stream = stdin if stdin is not None else sys.stdin
        if stream is None or stream.isatty():
            raise UsageError("no message given (pass it as an argument or on standard input)")
        binary = getattr(stream, "buffer", None)
        try:
            data: str | bytes = binary.read(MAX_INPUT + 1) if binary is not None else stream.read(MAX_INPUT + 1)
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read standard input: {e}") from None
        where = "standard input"
    elif source.startswith("@") and len(source) > 1:
        try:
            with open(source[1:], "rb") as f:
                data = f.read(MAX_INPUT + 1)
        except OSError as e:
            raise UsageError(f"cannot read {source[1:]}: {e.strerror or e}") from None
        except ValueError:  # a NUL in the name
            raise UsageError(f"cannot read {source[1:]!r}: not a file name") from None
        where = source[1:]
    else:
        return source
    if len(data) > MAX_INPUT:
        raise UsageError(f"{where} holds more than {MAX_INPUT} octets; not a MIKEY message")
    return data


def message_bytes(data: str | bytes) -> bytes:
    """The message in *data*: hex, base64 or ``mikey <base64>`` text, or else raw binary octets.

    Octets that are printable ASCII text must be one of the text forms (else
    :class:`MikeyDecodeError`); anything else is taken as the binary message
    itself (a MIKEY message starts with version octet 0x01, which is not text).
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            return data
        if not all(c.isprintable() or c.isspace() for c in text):
            return data
        data = text
    if not data.strip():
        raise UsageError("empty message")
    return parse_text(data)


def read_message(source: str | None, *, stdin: IO[str] | None = None) -> bytes:
    """Bytes of a MIKEY message from an argument, ``@FILE`` or stdin (see :func:`message_bytes`).

    Raises :class:`MikeyDecodeError` when text is none of the accepted forms, and
    :class:`UsageError` when there is no input at all or it cannot be read.
    """
    return message_bytes(_read_input(source, stdin))


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


def add_kemac_options(parser: argparse._ActionsContainer, which: Collection[str] = ("encr", "mac")) -> None:
    """``--encr`` and ``--mac`` (or those in *which*): the KEMAC algorithms of the side sending the TGK
    (RFC 3830 §6.2)."""
    if "encr" in which:
        parser.add_argument("--encr", type=enum_option(ENCR_NAMES), default=ENCR_NAMES["aes-cm-128"],
                            metavar="|".join(ENCR_NAMES), help="KEMAC encryption (default aes-cm-128)")
    if "mac" in which:
        parser.add_argument("--mac", type=enum_option(MAC_NAMES), default=MAC_NAMES["hmac-sha1"],
                            metavar="|".join(MAC_NAMES), help="KEMAC MAC (default hmac-sha1)")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json`` on a subcommand (SUPPRESS so a global ``mikey --json CMD`` is not overwritten)."""
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object instead of text"
    )


# --- output ----------------------------------------------------------------------------------


def one_line(text: str) -> str:
    """*text* with line breaks and other unprintable characters escaped, for one-line error reports
    (messages may quote file names or values from the command line)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


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
        print(f"{label}: {exc.kind}: {one_line(exc.message)}{suffix}")
        if message_key is not None and exc.error_message is not None:
            print(f"Error message: {exc.error_message.hex()}")
    return status


def result_json(result: ExchangeResult, *, show_keys: bool = False, **extra: Any) -> dict[str, Any]:
    """``{"ok": true, ...extra, ...ExchangeResult.to_dict()}``: the TGK and SRTP keys only with
    *show_keys* (``--show-keys``); per-session fingerprints always."""
    obj: dict[str, Any] = {"ok": True}
    obj.update(extra)
    obj.update(result.to_dict(secrets=show_keys))
    return obj


def outcome_json(outcome: ResponderOutcome, *, show_keys: bool = False) -> dict[str, Any]:
    """The ``respond`` JSON: the R_MESSAGE (or null) and the Responder's view of the keys."""
    r = outcome.response
    return result_json(outcome.result, show_keys=show_keys, r_message=r.hex() if r is not None else None)


def result_text(result: ExchangeResult, *, show_keys: bool = False) -> list[str]:
    """A short labelled summary; keys appear only with *show_keys* (fingerprints otherwise)."""
    lines = [
        f"mode:           {result.mode}",
        f"CSB ID:         {result.csb_id:08x}",
        f"PRF:            {_prf_name(int(result.prf))}",
        f"authenticated:  {'yes' if result.authenticated else 'no'}",
    ]
    if result.extras.get("null_security"):
        lines.append("NULL security:  yes (NULL KEMAC encryption or MAC, allowed by --allow-null-security)")
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
