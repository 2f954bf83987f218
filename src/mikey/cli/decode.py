"""``mikey decode``: a protocol dissector for MIKEY messages (RFC 3830 §6 and extensions).

Prints every field of every payload, with the registry name beside each
registry value.  Sub-payloads that travel in the clear are decoded in place:
Key data in a KEMAC with NULL encryption (RFC 3830 §6.2, §6.13), a PKE whose
data parses as a sub-payload chain, the payloads in TP/TICKET TP data (RFC 6043
§6.10), and the sub-payloads of IBAKE/ESK when not encrypted (RFC 6267 §6.1).
"""

from __future__ import annotations

import argparse
import datetime
import os
from collections.abc import Sequence
from typing import Any

from ..capture import CAPTURE_MAGICS, Found, find_mikey
from ..constants import EncrAlg, PayloadType
from ..errors import MikeyDecodeError, MikeyError
from ..wire import (
    EskPayload,
    IbakePayload,
    KemacPayload,
    Message,
    Payload,
    PkePayload,
    TicketPayload,
    TicketPolicyPayload,
    decode_sub_payloads,
)
from ..wire.validate import lint, violations
from .common import (
    EXIT_OK,
    EXIT_REJECTED,
    UsageError,
    add_json_option,
    emit_json,
    error_dict,
    hex_bytes,
    one_line,
    read_message,
)

__all__ = [
    "register", "run", "dissect", "render_text", "PAYLOAD_TITLES", "capture_path", "found_in_capture", "lint",
]

#: Long names printed beside each payload's short name (RFC 3830 §6, RFC 6043 §6, RFC 6267 §6, RFC 6509 §4).
PAYLOAD_TITLES: dict[str, str] = {
    "HDR": "Common Header",
    "KEMAC": "Key data transport",
    "PKE": "Envelope data",
    "DH": "DH data",
    "SIGN": "Signature",
    "T": "Timestamp",
    "ID": "Identity",
    "CERT": "Certificate",
    "CHASH": "Cert hash",
    "V": "Verification",
    "SP": "Security Policy",
    "RAND": "Random",
    "ERR": "Error",
    "KEY_DATA": "Key data sub-payload",
    "GEN_EXT": "General Extension",
    "TR": "Timestamp with role",
    "IDR": "Identity with role",
    "RANDR": "Random with role",
    "TP": "Ticket Policy",
    "TICKET": "Ticket",
    "IBAKE": "IBAKE",
    "ESK": "Encrypted Secret Key",
    "SK": "Secret Key sub-payload",
    "ECCPT": "Elliptic Curve point",
    "SAKKE": "SAKKE encapsulated data",
}

# Which sub-payload chain a container may hold in the clear, tried in order.
_KEY_DATA_FIRST = (PayloadType.KEY_DATA, PayloadType.ID, PayloadType.IDR)
_IBAKE_FIRST = (PayloadType.ECCPT, PayloadType.IDR, PayloadType.ID)
_ESK_FIRST = (PayloadType.SK,)


def _try_chain(data: bytes, firsts: Sequence[int]) -> list[Payload] | None:
    if not data:
        return None
    for first in firsts:
        try:
            subs = decode_sub_payloads(data, first)
        except MikeyDecodeError:
            continue
        if subs:
            return subs
    return None


#: How deep payloads carried inside payloads (TP in TP ...) are dissected; real messages nest 2 or 3 levels.
MAX_NESTING = 32


def _sub_dicts(subs: Sequence[Payload], depth: int, container: str) -> list[dict[str, Any]]:
    if depth > MAX_NESTING:
        raise MikeyDecodeError(f"payloads nested more than {MAX_NESTING} levels deep; not dissected",
                               payload=container)
    return [_payload_dict(s, depth) for s in subs]


def _payload_dict(p: Payload, depth: int = 0) -> dict[str, Any]:
    """``p.to_dict()`` plus whatever it carries in the clear, nested (at most :data:`MAX_NESTING` deep)."""
    d = p.to_dict()
    key, subs = _clear_contents(p)
    if subs:
        d[key] = _sub_dicts(subs, depth + 1, p.NAME)
    return d


def _clear_contents(p: Payload) -> tuple[str, list[Payload] | None]:
    """The sub-payloads *p* carries in the clear, and the key they are shown under."""
    if isinstance(p, KemacPayload):
        if p.encr_alg == EncrAlg.NULL:
            return "key_data", _try_chain(p.encr_data, _KEY_DATA_FIRST)
    elif isinstance(p, PkePayload):
        return "key_data", _try_chain(p.data, _KEY_DATA_FIRST)
    elif isinstance(p, TicketPolicyPayload | TicketPayload):
        try:
            return "tp_payloads", p.tp_payloads()
        except MikeyDecodeError:
            return "tp_payloads", None
    elif isinstance(p, IbakePayload):
        return "sub_payloads", _try_chain(p.encr_data, _IBAKE_FIRST)
    elif isinstance(p, EskPayload):
        return "sub_payloads", _try_chain(p.encr_data, _ESK_FIRST)
    return "", None


def dissect(msg: Message) -> dict[str, Any]:
    """``{"payloads": [{"type": "HDR", ...}, ...]}`` with clear sub-payloads nested, plus offsets.

    Each top-level payload dict gets ``offset`` and ``length`` (octets in the received message).
    Payloads nested deeper than :data:`MAX_NESTING` raise :class:`MikeyDecodeError`.
    """
    raw = msg.raw_bytes()
    offsets = msg.offsets if msg.raw is not None else msg.encode_with_offsets()[1]
    hdr = msg.header.to_dict()
    hdr["offset"] = 0
    hdr["length"] = offsets[0] if offsets else len(raw)
    out = [hdr]
    for i, p in enumerate(msg.payloads):
        d = _payload_dict(p)
        start, end = offsets[i], (offsets[i + 1] if i + 1 < len(offsets) else len(raw))
        d["offset"] = start
        d["length"] = end - start
        out.append(d)
    return {"payloads": out}


# --- text ------------------------------------------------------------------------------------

_WRAP = 64
_HIDDEN = {"type", "offset", "length"}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "-"
    if value == "":
        return "(empty)"
    return str(value)


def _wrapped(label: str, text: str, indent: str) -> list[str]:
    head = f"{indent}{label}: "
    if len(text) <= _WRAP:
        return [head + text]
    pad = " " * len(head)
    chunks = [text[i : i + _WRAP] for i in range(0, len(text), _WRAP)]
    return [head + chunks[0]] + [pad + c for c in chunks[1:]]


def _id_text(hexdata: str) -> str | None:
    try:
        text = bytes.fromhex(hexdata).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if text and text.isprintable():
        return text
    return None


def _fields(d: dict[str, Any], indent: str) -> list[str]:
    lines: list[str] = []
    for key, value in d.items():
        if key in _HIDDEN or (key.endswith("_name") and key[:-5] in d):
            continue
        name = d.get(key + "_name")
        if isinstance(value, dict) and value and all(isinstance(v, bool) for v in value.values()):
            on = [k for k, v in value.items() if v]
            lines.append(f"{indent}{key}: {', '.join(on) if on else '(none set)'}")
        elif isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines += _fields(value, indent + "  ")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{indent}{key}: ({len(value)})")
            for i, v in enumerate(value):
                if "type" in v and isinstance(v["type"], str):
                    lines += _payload_lines(v, indent + "  ")
                elif "param_type" in v:
                    label = v.get("name") or f"param {v['param_type']}"
                    shown = v.get("int", v.get("value"))
                    lines.append(f"{indent}  {label} ({v['param_type']}): {_scalar(shown)}")
                else:
                    lines.append(f"{indent}  #{i + 1}")
                    lines += _fields(v, indent + "    ")
        elif isinstance(value, list):
            lines += _wrapped(key, ", ".join(_scalar(v) for v in value) or "(none)", indent)
        elif key == "unix_time" and isinstance(value, int | float):
            when = datetime.datetime.fromtimestamp(value, datetime.UTC).isoformat(timespec="seconds")
            lines.append(f"{indent}{key}: {value} ({when})")
        else:
            text = _scalar(value)
            if name is not None:
                text = f"{text} ({name})"
            elif key == "data" and d.get("type") in ("ID", "IDR") and isinstance(value, str):
                as_text = _id_text(value)
                if as_text is not None:
                    lines += _wrapped(key, text, indent)
                    lines.append(f"{indent}  = \"{as_text}\"")
                    continue
            lines += _wrapped(key, text, indent)
    return lines


def _payload_lines(d: dict[str, Any], indent: str = "") -> list[str]:
    name = d.get("type", "?")
    title = PAYLOAD_TITLES.get(name, name)
    where = ""
    if "offset" in d:
        where = f", offset {d['offset']}, {d['length']} octets"
    return [f"{indent}{name} ({title}{where})"] + _fields(d, indent + "  ")


def render_text(tree: dict[str, Any], total: int) -> list[str]:
    """The dissector tree of :func:`dissect`'s output, one payload per block."""
    payloads = tree["payloads"]
    names = ", ".join(p["type"] for p in payloads)
    lines = [f"MIKEY message, {total} octets: {names}"]
    for p in payloads:
        lines += _payload_lines(p)
    return lines


# --- the command -----------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "decode",
        help="decode a MIKEY message and print its payload tree",
        description="Decode a MIKEY message (hex, base64 or 'mikey <base64>', argument, @FILE or stdin) "
        "and print every payload and field; or, given a pcap/pcapng capture file, every MIKEY message in it "
        "(SIP/RTSP SDP a=key-mgmt, RTSP KeyMgmt headers, UDP port 2269).",
    )
    p.add_argument("message", nargs="?", metavar="MSG|CAPTURE",
                   help="the message, or a capture file (pcap/pcapng); '-' or absent reads standard input")
    p.add_argument("--validate", action="store_true", help="also check the RFC rules for the data type (exit 1 if broken)")
    p.add_argument("--lint", action="store_true",
                   help="also warn of common field mistakes (SP 3 vs 11, key/SP length mismatch, SSRC 0 in a "
                   "response, NULL security); warnings do not change the exit status")
    p.add_argument("--secure-carrier", action="store_true",
                   help="with --lint: the message came over a secure carrier (TLS, IPsec), so NULL KEMAC "
                   "security is not warned of")
    p.add_argument("--tpk", type=hex_bytes, metavar="HEX",
                   help="MIKEY-TICKET: open the base ticket of a TICKET payload with this Ticket Protection Key "
                   "(RFC 6043 Appendix A: MAC checked, session key types and lengths shown)")
    p.add_argument("--show-keys", action="store_true",
                   help="with --tpk: also print MPKi, MPKr and the keys in the opened ticket (secrets)")
    add_json_option(p)
    p.set_defaults(func=run)


def _tickets(msg: Message, tpk: bytes | None, show_keys: bool) -> list[dict[str, Any]]:
    """Every TICKET payload of *msg* dissected (RFC 6043 §6.10, Appendix A); opened with *tpk*."""
    from ..modes.ticket import describe_ticket
    from ..wire import TicketPayload

    return [describe_ticket(p, tpk, show_keys=show_keys) for p in msg.payloads if isinstance(p, TicketPayload)]


def _ticket_lines(described: dict[str, Any], indent: str = "  ") -> list[str]:
    lines: list[str] = []
    for key, value in described.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines.extend(_ticket_lines(value, indent + "  "))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{indent}{key}:")
            for item in value:
                sub = _ticket_lines(item, indent + "    ")
                if sub:
                    sub[0] = f"{indent}  - {sub[0].lstrip()}"
                lines.extend(sub)
        elif value not in (None, [], ""):
            lines.append(f"{indent}{key}: {value}")
    return lines


def capture_path(source: str | None) -> str | None:
    """The file named by *source* (``PATH`` or ``@PATH``) when it starts with a pcap/pcapng magic number."""
    if source is None or source == "-":
        return None
    path = source[1:] if source.startswith("@") and len(source) > 1 else source
    try:
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            head = f.read(4)
    except (OSError, ValueError):
        return None
    return path if head in CAPTURE_MAGICS else None


def found_in_capture(path: str) -> list[Found]:
    """The MIKEY messages in the capture at *path* (:func:`mikey.capture.find_mikey`)."""
    try:
        with open(path, "rb") as f:
            return find_mikey(f)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None


def _when(t: float) -> str:
    try:
        return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="microseconds")
    except (OverflowError, OSError, ValueError):
        return str(t)


def _found_heading(f: Found) -> str:
    d = f.to_dict()
    where = [f"{f.carrier} {f.location}"]
    if f.call_id is not None:
        where.append(f"Call-ID {f.call_id}")
    if f.rtsp_session is not None:
        where.append(f"Session {f.rtsp_session}")
    return f"packet {f.packet}, {_when(f.time)}, {d['src']} -> {d['dst']} ({f.transport}), {', '.join(where)}"


def _run_capture(path: str, args: argparse.Namespace, as_json: bool) -> int:
    try:
        found = found_in_capture(path)
    except MikeyError as exc:
        if as_json:
            emit_json({"ok": False, "error": error_dict(exc)})
        else:
            print(f"cannot read capture: {one_line(exc.message)}")
        return EXIT_REJECTED
    status = EXIT_OK if found else EXIT_REJECTED
    items: list[dict[str, Any]] = []
    if not as_json:
        print(f"{path}: {len(found)} MIKEY message{'s' if len(found) != 1 else ''}")
    for f in found:
        item = f.to_dict()
        item["time_iso"] = _when(f.time)
        lines = ["", _found_heading(f)]
        try:
            if f.error is not None:
                raise MikeyDecodeError(f.error, payload="key-mgmt")
            msg = Message.decode(f.data)
            tree = dissect(msg)
        except MikeyError as exc:
            status = EXIT_REJECTED
            item.update(ok=False, error=error_dict(exc))
            lines.append(f"  cannot decode: {one_line(exc.message)}")
        else:
            item.update(ok=True, length=len(f.data), **tree)
            lines += ["  " + line for line in render_text(tree, len(f.data))]
            if args.lint:
                item["warnings"] = lint(msg, secure_carrier=args.secure_carrier)
                lines += [f"  warning: {w}" for w in item["warnings"]]
            if args.validate:
                problems = violations(msg)
                item["valid"] = not problems
                item["violations"] = problems
                if problems:
                    status = EXIT_REJECTED
                    lines.append(f"  INVALID ({len(problems)} violation{'s' if len(problems) != 1 else ''}):")
                    lines += [f"    - {v}" for v in problems]
                else:
                    lines.append("  valid")
        items.append(item)
        if not as_json:
            for line in lines:
                print(line)
    if as_json:
        emit_json({"ok": status == EXIT_OK, "capture": path, "messages": items})
    return status


def run(args: argparse.Namespace) -> int:
    as_json = bool(getattr(args, "json", False))
    path = capture_path(args.message)
    if path is not None:
        return _run_capture(path, args, as_json)
    try:
        data = read_message(args.message)
        msg = Message.decode(data)
        tree = dissect(msg)
    except MikeyError as exc:
        if as_json:
            emit_json({"ok": False, "error": error_dict(exc)})
        else:
            print(f"cannot decode: {one_line(exc.message)}")
        return EXIT_REJECTED
    problems = violations(msg) if args.validate else []
    warnings = lint(msg, secure_carrier=args.secure_carrier) if args.lint else []
    tickets = _tickets(msg, args.tpk, args.show_keys) if args.tpk is not None else []
    if as_json:
        obj: dict[str, Any] = {"ok": True, "length": len(data), **tree}
        if args.tpk is not None:
            obj["tickets"] = tickets
        if args.lint:
            obj["warnings"] = warnings
        if args.validate:
            obj["valid"] = not problems
            obj["violations"] = problems
        emit_json(obj)
    else:
        for line in render_text(tree, len(data)):
            print(line)
        for described in tickets:
            print("ticket opened with --tpk:" if "opened" in described else "ticket (--tpk):")
            for line in _ticket_lines(described):
                print(line)
        if args.validate:
            if problems:
                print(f"INVALID ({len(problems)} violation{'s' if len(problems) != 1 else ''}):")
                for v in problems:
                    print(f"  - {v}")
            else:
                print("valid")
        for w in warnings:
            print(f"warning: {w}")
    return EXIT_REJECTED if problems else EXIT_OK
