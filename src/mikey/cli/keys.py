"""``mikey keys``: the SRTP keys of the MIKEY exchanges in a capture or message, for other tools.

Acts as the Responder (RFC 3830 §4.2) on each I_MESSAGE with the credentials given
(the ``respond`` options of ``--mode``), using a fresh replay cache per message and
the message's capture time (or its T payload) as the current time, and prints per
crypto session: SSRC, ROC, SRTP profile, master key and salt — the secrets only with
``--show-keys`` — as text, GStreamer ``srtpdec`` caps fields, SDES ``inline:`` key
parameters (RFC 4568 §6.1) or JSON.
"""

from __future__ import annotations

import argparse
import base64
from dataclasses import dataclass
from typing import Any

from ..capture import Found
from ..constants import DataType, EncrAlg, PayloadType
from ..errors import MikeyDecodeError, MikeyError
from ..modes.keytransport import session_keys
from ..modes.results import CryptoSessionKeys, ExchangeResult
from ..replay import ReplayCache
from ..session import policy_params
from ..srtp import srtp_profile
from ..wire import (
    KemacPayload,
    KeyDataPayload,
    Message,
    RandPayload,
    SecurityPolicyPayload,
    decode_sub_payloads,
)
from .common import (
    EXIT_OK,
    EXIT_REJECTED,
    UsageError,
    add_json_option,
    emit_json,
    error_dict,
    hex_u32,
    one_line,
)
from .common import read_message as read_text_message
from .decode import capture_path, found_in_capture
from .plugin_base import ModePlugin

__all__ = ["register", "run", "KeyRecord", "keys_of", "SUITES"]

#: Per pylibsrtp profile name: (SDES crypto suite, srtpdec srtp-cipher, srtp-auth, srtcp-cipher, srtcp-auth).
#: libsrtp's ``_32`` profile authenticates SRTCP with an 80-bit tag (RFC 5764 §4.1.2); GCM has no separate auth.
SUITES: dict[str, tuple[str, str, str, str, str]] = {
    "SRTP_PROFILE_AES128_CM_SHA1_80": ("AES_CM_128_HMAC_SHA1_80", "aes-128-icm", "hmac-sha1-80", "aes-128-icm",
                                       "hmac-sha1-80"),
    "SRTP_PROFILE_AES128_CM_SHA1_32": ("AES_CM_128_HMAC_SHA1_32", "aes-128-icm", "hmac-sha1-32", "aes-128-icm",
                                       "hmac-sha1-80"),
    "SRTP_PROFILE_AEAD_AES_128_GCM": ("AEAD_AES_128_GCM", "aes-128-gcm", "null", "aes-128-gcm", "null"),
    "SRTP_PROFILE_AEAD_AES_256_GCM": ("AEAD_AES_256_GCM", "aes-256-gcm", "null", "aes-256-gcm", "null"),
}

_INIT_TYPES = {DataType.PSK_INIT, DataType.PK_INIT, DataType.DH_INIT, DataType.DHHMAC_INIT, DataType.RSA_R_INIT}


@dataclass(frozen=True)
class KeyRecord:
    """One crypto session's SRTP keys (RFC 3830 §4.1.3) and where the exchange was found."""

    source: str
    csb_id: int
    keys: CryptoSessionKeys
    profile: str  # a key of SUITES

    @property
    def suite(self) -> tuple[str, str, str, str, str]:
        return SUITES[self.profile]

    def gst_caps(self) -> str:
        """The fields GStreamer's ``srtpdec`` takes in its caps (``request-key`` signal or upstream caps)."""
        _, cipher, auth, rtcp_cipher, rtcp_auth = self.suite
        parts = [f"srtp-key=(buffer){(self.keys.master_key + self.keys.master_salt).hex()}",
                 f"srtp-cipher=(string){cipher}", f"srtp-auth=(string){auth}",
                 f"srtcp-cipher=(string){rtcp_cipher}", f"srtcp-auth=(string){rtcp_auth}",
                 f"roc=(uint){self.keys.roc}"]
        if self.keys.ssrc:
            parts.insert(0, f"ssrc=(uint){self.keys.ssrc}")
        return ", ".join(parts)

    def sdes(self) -> str:
        """``SUITE inline:<base64 key||salt>`` as in an SDP ``a=crypto`` line (RFC 4568 §6.1, §9.2)."""
        key = base64.b64encode(self.keys.master_key + self.keys.master_salt).decode()
        return f"{self.suite[0]} inline:{key}"

    def to_dict(self, *, secrets: bool) -> dict[str, Any]:
        d: dict[str, Any] = {
            "source": self.source,
            "csb_id": f"{self.csb_id:08x}",
            "cs_id": self.keys.cs_id,
            "ssrc": f"{self.keys.ssrc:08x}" if self.keys.ssrc is not None else None,
            "roc": self.keys.roc,
            "profile": self.profile,
            "sdes_suite": self.suite[0],
            "fingerprint": self.keys.fingerprint(),
        }
        if secrets:
            d["master_key"] = self.keys.master_key.hex()
            d["master_salt"] = self.keys.master_salt.hex()
            d["gst_caps"] = self.gst_caps()
            d["sdes"] = self.sdes()
        return d


def _profile_name(cs: CryptoSessionKeys) -> str:
    import pylibsrtp

    value = srtp_profile(policy_params(cs))
    for name in SUITES:
        if getattr(pylibsrtp.Policy, name) == value:
            return name
    raise UsageError(f"crypto session {cs.cs_id}: SRTP profile {value} has no GStreamer/SDES name")


def records_of(result: ExchangeResult, source: str) -> list[KeyRecord]:
    """A :class:`KeyRecord` per crypto session of *result*."""
    return [KeyRecord(source, result.csb_id, cs, _profile_name(cs)) for cs in result.crypto_sessions]


def _message_time(data: bytes) -> float | None:
    msg = Message.decode(data)
    for p in msg.payloads:
        unix = p.to_dict().get("unix_time")
        if isinstance(unix, int | float):
            return float(unix)
    return None


def clear_keys(msg: Message, source: str) -> list[KeyRecord] | None:
    """The keys of a KEMAC with NULL encryption (RFC 3830 §4.2.3, §6.2): in the clear, so no credentials needed.

    Its MAC is not checked (that needs the PSK).  None when *msg* has no such KEMAC.
    """
    kemac = next((p for p in msg.payloads if isinstance(p, KemacPayload)), None)
    if kemac is None or kemac.encr_alg != EncrAlg.NULL:
        return None
    subs = decode_sub_payloads(kemac.encr_data, PayloadType.KEY_DATA) if kemac.encr_data else []
    key_data = next((s for s in subs if isinstance(s, KeyDataPayload)), None)
    rand = next((p.rand for p in msg.payloads if isinstance(p, RandPayload)), None)
    if key_data is None or rand is None:
        raise MikeyDecodeError("the NULL-encrypted KEMAC needs a Key data sub-payload and the message a RAND",
                               payload="KEMAC")
    policies = [p for p in msg.payloads if isinstance(p, SecurityPolicyPayload)]
    sessions = session_keys(key_data.key, int(key_data.key_type), msg.header, rand, policies, key_data.salt)
    return [KeyRecord(source, msg.header.csb_id, cs, _profile_name(cs)) for cs in sessions]


def keys_of(args: argparse.Namespace, data: bytes, now: float, source: str) -> list[KeyRecord]:
    """Act as the Responder of ``--mode`` on the I_MESSAGE *data* at time *now*; its key records.

    Without ``--mode``, only keys sent in the clear (:func:`clear_keys`) are recovered.
    """
    plugins: dict[str, ModePlugin] = args.plugins
    if args.mode is None:
        clear = clear_keys(Message.decode(data), source)
        if clear is None:
            raise UsageError("give --mode and its credentials (as for 'mikey respond') to recover the keys")
        return clear
    args.replay_store = ReplayCache()
    try:
        outcome = plugins[args.mode].respond(args, data, now)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return records_of(outcome.result, source)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], plugins: dict[str, ModePlugin],
             mode: str | None) -> None:
    plugin = plugins.get(mode) if mode is not None else None
    p = subparsers.add_parser(
        "keys", help="print the SRTP keys of the MIKEY exchanges in a capture or message",
        description="Recover the SRTP master keys of each I_MESSAGE (in a pcap/pcapng capture, or one message) "
        "by acting as its Responder with the credentials of --mode (the 'respond' options); print per crypto "
        "session SSRC, ROC, profile and keys (secrets only with --show-keys). Without --mode, keys sent in a "
        "NULL-encrypted KEMAC are read as they are (its MAC unchecked).",
    )
    p.add_argument("source", metavar="CAPTURE|MSG", help="a capture file, or a message (hex, base64, @FILE)")
    p.add_argument("--mode", choices=list(plugins), metavar="MODE", help="key exchange method: " + ", ".join(plugins))
    p.add_argument("--ssrc", type=hex_u32, action="append", metavar="HEX",
                   help="own SSRC filling the Initiator's SSRC-0 placeholders (as for respond)")
    p.add_argument("--show-keys", action="store_true", help="print master keys and salts (gst and sdes need it)")
    p.add_argument("--format", choices=("text", "gst", "sdes", "json"), default="text",
                   help="text (default), GStreamer srtpdec caps fields, SDES inline key params, or JSON")
    add_json_option(p)
    if plugin is not None:
        plugin.add_arguments(p.add_argument_group(f"--mode {plugin.name} options", plugin.help), "respond")
    p.set_defaults(func=run, plugins=plugins)


def collect(args: argparse.Namespace) -> tuple[list[KeyRecord], list[tuple[str, str]]]:
    """Key records of every I_MESSAGE in ``args.source``, and (source, error) for those that failed."""
    path = capture_path(args.source)
    items: list[tuple[str, bytes, float | None]] = []
    if path is not None:
        for f in found_in_capture(path):
            if f.error is None:
                items.append((_where(f), f.data, f.time))
    else:
        items.append(("message", read_text_message(args.source), None))
    records: list[KeyRecord] = []
    failures: list[tuple[str, str]] = []
    for source, data, when in items:
        try:
            msg = Message.decode(data)
            if msg.header.data_type not in _INIT_TYPES:
                continue
            now = when if when is not None else _message_time(data)
            if now is None:
                raise UsageError(f"{source}: the message has no timestamp; cannot tell its time")
            records += keys_of(args, data, now, source)
        except MikeyError as exc:
            failures.append((source, one_line(exc.message)))
    return records, failures


def _where(f: Found) -> str:
    return f"packet {f.packet}"


def run(args: argparse.Namespace) -> int:
    fmt = "json" if getattr(args, "json", False) else args.format
    if fmt in ("gst", "sdes") and not args.show_keys:
        raise UsageError(f"--format {fmt} prints secrets: add --show-keys")
    if getattr(args, "ssrc", None) is None:
        args.ssrc = []
    try:
        records, failures = collect(args)
    except MikeyError as exc:
        if fmt == "json":
            emit_json({"ok": False, "error": error_dict(exc)})
        else:
            print(f"cannot read: {one_line(exc.message)}")
        return EXIT_REJECTED
    status = EXIT_OK if records and not failures else EXIT_REJECTED
    if fmt == "json":
        emit_json({"ok": status == EXIT_OK,
                   "crypto_sessions": [r.to_dict(secrets=bool(args.show_keys)) for r in records],
                   "failures": [{"source": s, "error": e} for s, e in failures]})
        return status
    for r in records:
        ssrc = f"{r.keys.ssrc:08x}" if r.keys.ssrc is not None else "-"
        if fmt == "gst":
            print(r.gst_caps())
        elif fmt == "sdes":
            print(r.sdes())
        else:
            print(f"{r.source}: CSB {r.csb_id:08x} CS {r.keys.cs_id}: SSRC {ssrc}, ROC {r.keys.roc}, "
                  f"{r.suite[0]}, fingerprint {r.keys.fingerprint()}")
            if args.show_keys:
                print(f"  master key:  {r.keys.master_key.hex()}")
                print(f"  master salt: {r.keys.master_salt.hex()}")
    for source, error in failures:
        print(f"{source}: cannot recover keys: {error}")
    if not records and not failures:
        print("no I_MESSAGE found")
    return status
