"""``mikey keys``: the SRTP keys of the MIKEY exchanges in a capture or message, for other tools.

Where the I_MESSAGE carries the key (PSK, PK, MIKEY-SAKKE: RFC 3830 §3.1, §3.2, RFC 6509 §2.1)
it acts as the Responder with the ``respond`` options of ``--mode``; where the Responder
chooses (RSA-R, RFC 4738 §3) or co-derives (DH, RFC 3830 §3.3; DH-HMAC, RFC 4650 §3) the
TGK, as the Initiator that receives the captured R_MESSAGE, with the ``complete`` options
(the Initiator's private key or DH exponent).  Without ``--mode``, only keys a NULL-encrypted
KEMAC carries in the clear are read (``--gstreamer``: as GStreamer's misread SP and TEK meant
them).  Each message is taken at its capture time (or its T payload; at its own T, noted, when
its sender's clock is off), with a fresh replay cache.  SSRC placeholders (0) of an I_MESSAGE
are filled from the captured response when there is one (RFC 3830 §6.1.1).  Prints per crypto
session: SSRC, ROC, SRTP profile, master key and salt — the secrets only with
``--show-keys`` — as text, GStreamer ``srtpdec`` caps fields, SDES ``inline:`` key
parameters (RFC 4568 §6.1) or JSON.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..capture import Found
from ..constants import DataType, EncrAlg, KeyDataType, PayloadType, ProtType, SRTPParam
from ..errors import InvalidTimestampError, MikeyDecodeError, MikeyError
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
    SrtpIdEntry,
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

__all__ = ["register", "run", "KeyRecord", "keys_of", "SUITES", "RESPONDER_SIDE", "INITIATOR_SIDE", "add_mode_arguments",
           "clear_keys", "gstreamer_shaped"]

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

#: Modes whose I_MESSAGE carries the keys: the Responder recovers them (``respond`` options).
RESPONDER_SIDE: dict[str, DataType] = {"psk": DataType.PSK_INIT, "pk": DataType.PK_INIT, "sakke": DataType.SAKKE}
#: Modes whose keys need the R_MESSAGE: the Initiator recovers them (``complete`` options); I and R data types.
INITIATOR_SIDE: dict[str, tuple[DataType, DataType]] = {
    "dh": (DataType.DH_INIT, DataType.DH_RESP),
    "dhhmac": (DataType.DHHMAC_INIT, DataType.DHHMAC_RESP),
    "rsa-r": (DataType.RSA_R_INIT, DataType.RSA_R_RESP),
}
_RESPONSE_OF: dict[int, int] = {DataType.PSK_INIT: DataType.PSK_RESP, DataType.PK_INIT: DataType.PK_RESP,
                **dict(INITIATOR_SIDE.values())}
_INIT_TYPES = {DataType.PSK_INIT, DataType.PK_INIT, DataType.DH_INIT, DataType.DHHMAC_INIT, DataType.RSA_R_INIT,
               DataType.SAKKE}


@dataclass(frozen=True)
class KeyRecord:
    """One crypto session's SRTP keys (RFC 3830 §4.1.3) and where the exchange was found."""

    source: str
    csb_id: int
    keys: CryptoSessionKeys
    profile: str  # a key of SUITES
    note: str | None = None

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
        if self.note is not None:
            d["note"] = self.note
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


#: SP parameter 3 values that are tag lengths (octets of the 32/80-bit HMAC-SHA1 tags), and the SRTP defaults
#: of RFC 3830 Table 6.10.1.b a GStreamer-made SP relies on.
_TAG_LENGTHS = (4, 10)
_NEEDS_MODE = "give --mode"
_DEFAULT_KEY_LEN, _DEFAULT_SALT_LEN, _HMAC_SHA1_KEY_LEN = 16, 14, 20


def _sp_int(sp: SecurityPolicyPayload, ptype: int) -> int | None:
    value = next((v for t, v in sp.params if t == ptype), None)
    return int.from_bytes(value, "big") if value else None


def gstreamer_shaped(msg: Message) -> bool:
    """Whether *msg* has the shape of ``gst_mikey_message_new_from_caps`` (GStreamer 1.8+, used by rtsp-server
    and rtspclientsink): an SRTP SP whose parameter 3 holds the tag length (no parameter 11) and a NULL KEMAC
    whose TEK is the master key followed by the salt (no salt field)."""
    sps = [p for p in msg.payloads if isinstance(p, SecurityPolicyPayload) and p.prot_type == ProtType.SRTP]
    kemac = next((p for p in msg.payloads if isinstance(p, KemacPayload)), None)
    if len(sps) != 1 or kemac is None or kemac.encr_alg != EncrAlg.NULL or not kemac.encr_data:
        return False
    try:
        subs = decode_sub_payloads(kemac.encr_data, PayloadType.KEY_DATA)
    except MikeyDecodeError:
        return False
    kd = next((s for s in subs if isinstance(s, KeyDataPayload)), None)
    sp = sps[0]
    key_len = _sp_int(sp, SRTPParam.SESSION_ENCR_KEY_LEN) or _DEFAULT_KEY_LEN
    salt_len = _sp_int(sp, SRTPParam.SESSION_SALT_KEY_LEN) or _DEFAULT_SALT_LEN
    return (_sp_int(sp, SRTPParam.SESSION_AUTH_KEY_LEN) in _TAG_LENGTHS and _sp_int(sp, SRTPParam.AUTH_TAG_LEN) is None
            and kd is not None and kd.key_type == KeyDataType.TEK and kd.salt is None
            and len(kd.key) == key_len + salt_len)


def _as_gstreamer_meant(msg: Message, key_data: KeyDataPayload) -> tuple[list[SecurityPolicyPayload], KeyDataPayload]:
    """The SP and Key data GStreamer meant: parameter 3's value as the tag length (11) with a 20-octet HMAC-SHA1
    key, and the TEK split into master key and salt (a TEK+salt, RFC 3830 §6.13)."""
    out = []
    for sp in (p for p in msg.payloads if isinstance(p, SecurityPolicyPayload)):
        tag = _sp_int(sp, SRTPParam.SESSION_AUTH_KEY_LEN)
        params = tuple((t, v) for t, v in sp.params if t != SRTPParam.SESSION_AUTH_KEY_LEN)
        params += ((SRTPParam.SESSION_AUTH_KEY_LEN, bytes([_HMAC_SHA1_KEY_LEN])),
                   (SRTPParam.AUTH_TAG_LEN, bytes([tag or 10])))
        out.append(dataclasses.replace(sp, params=params))
    key_len = _sp_int(out[0], SRTPParam.SESSION_ENCR_KEY_LEN) or _DEFAULT_KEY_LEN
    split = KeyDataPayload(KeyDataType.TEK_SALT, key_data.key[:key_len], key_data.key[key_len:], key_data.kv)
    return out, split


def clear_keys(msg: Message, source: str, *, gstreamer: bool = False) -> list[KeyRecord] | None:
    """The keys of a KEMAC with NULL encryption (RFC 3830 §4.2.3, §6.2): in the clear, so no credentials needed.

    Its MAC is not checked (that needs the PSK).  None when *msg* has no such KEMAC.  With *gstreamer*, a
    :func:`gstreamer_shaped` message is read as GStreamer meant it (:func:`_as_gstreamer_meant`); without, its
    failure names the switch.
    """
    kemac = next((p for p in msg.payloads if isinstance(p, KemacPayload)), None)
    if kemac is None or kemac.encr_alg != EncrAlg.NULL or not kemac.encr_data:  # DH-HMAC: a KEMAC with no key
        return None
    subs = decode_sub_payloads(kemac.encr_data, PayloadType.KEY_DATA) if kemac.encr_data else []
    key_data = next((s for s in subs if isinstance(s, KeyDataPayload)), None)
    rand = next((p.rand for p in msg.payloads if isinstance(p, RandPayload)), None)
    if key_data is None or rand is None:
        raise MikeyDecodeError("the NULL-encrypted KEMAC needs a Key data sub-payload and the message a RAND",
                               payload="KEMAC")
    policies = [p for p in msg.payloads if isinstance(p, SecurityPolicyPayload)]
    shaped = gstreamer_shaped(msg)
    if gstreamer and shaped:
        policies, key_data = _as_gstreamer_meant(msg, key_data)
    try:
        sessions = session_keys(key_data.key, int(key_data.key_type), msg.header, rand, policies, key_data.salt)
        return [KeyRecord(source, msg.header.csb_id, cs, _profile_name(cs)) for cs in sessions]
    except MikeyError as exc:
        if shaped and not gstreamer:
            raise UsageError(f"{one_line(exc.message)}; the message is shaped as GStreamer writes it (SP parameter 3 "
                             "= tag length, TEK = master key || salt): --gstreamer reads it so") from None
        raise


def keys_of(args: argparse.Namespace, data: bytes, now: float, source: str,
            r_message: bytes | None = None) -> list[KeyRecord]:
    """The key records of the exchange whose I_MESSAGE is *data*, at time *now*.

    Without ``--mode``, only keys sent in the clear (:func:`clear_keys`) are recovered; with a
    :data:`RESPONDER_SIDE` mode, as its Responder; with an :data:`INITIATOR_SIDE` mode, as its
    Initiator receiving *r_message* (required).
    """
    plugins: dict[str, ModePlugin] = args.plugins
    if args.mode is None:
        clear = clear_keys(Message.decode(data), source, gstreamer=bool(getattr(args, "gstreamer", False)))
        if clear is None:
            raise UsageError(_NEEDS_MODE + " and its credentials (as for 'mikey respond') to recover the keys")
        return clear
    plugin = plugins[args.mode]
    try:
        if args.mode in INITIATOR_SIDE:
            if r_message is None:
                raise UsageError(f"--mode {args.mode}: the keys need the R_MESSAGE too (in the capture, or --rmsg)")
            return records_of(plugin.complete(args, data, r_message, now), source)
        args.replay_store = ReplayCache()
        outcome = plugin.respond(args, data, now)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return records_of(outcome.result, source)


def add_mode_arguments(p: argparse.ArgumentParser, plugins: dict[str, ModePlugin], mode: str | None) -> None:
    """``--mode`` and its credential options: those of ``respond`` or, for :data:`INITIATOR_SIDE`, ``complete``."""
    p.add_argument("--mode", choices=list(plugins), metavar="MODE",
                   help="key exchange method: " + ", ".join(plugins) + " (credentials: the 'respond' options; "
                   "for " + ", ".join(INITIATOR_SIDE) + " the Initiator's, as for 'complete')")
    p.add_argument("--rmsg", metavar="MSG", help="the R_MESSAGE, when the source is one I_MESSAGE of "
                   + ", ".join(INITIATOR_SIDE) + " (hex, base64, @FILE)")
    p.add_argument("--gstreamer", action="store_true",
                   help="without --mode: read a NULL-KEMAC message shaped as GStreamer writes it "
                   "(gst_mikey_message_new_from_caps: SP parameter 3 = tag length, TEK = master key || salt) as meant")
    plugin = plugins.get(mode) if mode is not None else None
    if plugin is not None:
        command = "complete" if plugin.name in INITIATOR_SIDE else "respond"
        plugin.add_arguments(p.add_argument_group(f"--mode {plugin.name} options ({command})", plugin.help), command)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], plugins: dict[str, ModePlugin],
             mode: str | None) -> None:
    p = subparsers.add_parser(
        "keys", help="print the SRTP keys of the MIKEY exchanges in a capture or message",
        description="Recover the SRTP master keys of each I_MESSAGE (in a pcap/pcapng capture, or one message) "
        "by acting as its Responder with the credentials of --mode (the 'respond' options) or, for dh, dhhmac "
        "and rsa-r, as the Initiator receiving the R_MESSAGE (the 'complete' options); print per crypto "
        "session SSRC, ROC, profile and keys (secrets only with --show-keys). Without --mode, keys sent in a "
        "NULL-encrypted KEMAC are read as they are (its MAC unchecked).",
    )
    p.add_argument("source", metavar="CAPTURE|MSG", help="a capture file, or a message (hex, base64, @FILE)")
    add_mode_arguments(p, plugins, mode)
    p.add_argument("--ssrc", type=hex_u32, action="append", metavar="HEX",
                   help="own SSRC filling the Initiator's SSRC-0 placeholders (as for respond)")
    p.add_argument("--show-keys", action="store_true", help="print master keys and salts (gst and sdes need it)")
    p.add_argument("--format", choices=("text", "gst", "sdes", "json"), default="text",
                   help="text (default), GStreamer srtpdec caps fields, SDES inline key params, or JSON")
    add_json_option(p)
    p.set_defaults(func=run, plugins=plugins)


@dataclass(frozen=True)
class _Item:
    source: str
    data: bytes
    time: float | None
    msg: Message


def _wanted(mode: str | None, data_type: int) -> bool:
    if mode in RESPONDER_SIDE:
        return data_type == RESPONDER_SIDE[mode]
    if mode in INITIATOR_SIDE:
        return data_type == INITIATOR_SIDE[mode][0]
    return data_type in _INIT_TYPES


def _response(items: Sequence[_Item], i: int) -> _Item | None:
    """The later message answering ``items[i]``: the response data type with the same CSB ID, else (RSA-R
    group mode names the group's CSB ID, RFC 4738 §3.2) the next message of that type."""
    want = _RESPONSE_OF.get(int(items[i].msg.header.data_type))
    if want is None:
        return None
    later = [it for it in items[i + 1:] if it.msg.header.data_type == want]
    csb = items[i].msg.header.csb_id
    return next((it for it in later if it.msg.header.csb_id == csb), later[0] if later else None)


def _filled_ssrcs(i_msg: Message, r_msg: Message) -> list[int]:
    """The SSRCs the Responder put in place of the I_MESSAGE's 0 placeholders (RFC 3830 §6.1.1), in map order."""
    return [theirs.ssrc for mine, theirs in zip(i_msg.header.cs_id_map, r_msg.header.cs_id_map, strict=False)
            if isinstance(mine, SrtpIdEntry) and isinstance(theirs, SrtpIdEntry) and mine.ssrc == 0 and theirs.ssrc]


def collect(args: argparse.Namespace) -> tuple[list[KeyRecord], list[tuple[str, str]]]:
    """Key records of every I_MESSAGE in ``args.source``, and (source, error) for those that failed."""
    path = capture_path(args.source)
    raw: list[tuple[str, bytes, float | None]] = []
    if path is not None:
        raw = [(_where(f), f.data, f.time) for f in found_in_capture(path) if f.error is None]
    else:
        raw.append(("message", read_text_message(args.source), None))
        rmsg = getattr(args, "rmsg", None)
        if rmsg is not None:
            raw.append(("R_MESSAGE", read_text_message(rmsg), None))
    records: list[KeyRecord] = []
    failures: list[tuple[str, str]] = []
    items: list[_Item] = []
    for source, data, when in raw:
        try:
            items.append(_Item(source, data, when, Message.decode(data)))
        except MikeyError as exc:
            failures.append((source, one_line(exc.message)))
    given_ssrcs = list(args.ssrc or [])
    needs_mode: list[tuple[str, str]] = []  # without --mode: exchanges whose keys are not in the clear
    for i, it in enumerate(items):
        if not _wanted(args.mode, it.msg.header.data_type):
            continue
        try:
            response = _response(items, i)
            if args.mode in INITIATOR_SIDE and response is None:
                failures.append((it.source, f"no R_MESSAGE answering CSB ID {it.msg.header.csb_id:08x} in the "
                                 f"capture: with --mode {args.mode} the keys come with it"))
                continue
            now = it.time if it.time is not None else _message_time(it.data)
            if args.mode in INITIATOR_SIDE and response is not None:
                now = response.time if response.time is not None else _message_time(response.data)
            if now is None:
                raise UsageError(f"{it.source}: the message has no timestamp; cannot tell its time")
            args.ssrc = given_ssrcs or (_filled_ssrcs(it.msg, response.msg) if response is not None else [])
            r_data = response.data if response is not None else None
            try:
                records += keys_of(args, it.data, now, it.source, r_data)
            except InvalidTimestampError:
                # A sender with a wrong clock (a camera without NTP): its own T says when it meant the message.
                own = _message_time(r_data if args.mode in INITIATOR_SIDE and r_data is not None else it.data)
                if own is None or own == now:
                    raise
                note = (f"T is {own - now:+.0f} s from the capture time: keys recovered at the message's own time "
                        "(RFC 3830 §5.4 freshness not checked)")
                records += [dataclasses.replace(r, note=note) for r in keys_of(args, it.data, own, it.source, r_data)]
        except MikeyError as exc:
            failures.append((it.source, one_line(exc.message)))
        except UsageError as exc:
            if args.mode is not None or not str(exc).startswith(_NEEDS_MODE):
                raise
            needs_mode.append((it.source, str(exc)))
    args.ssrc = given_ssrcs
    if needs_mode and not records and not failures:
        raise UsageError(needs_mode[0][1])  # nothing readable at all: the credentials are missing
    return records, failures + needs_mode


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
            if r.note is not None:
                print(f"  note: {r.note}")
            if args.show_keys:
                print(f"  master key:  {r.keys.master_key.hex()}")
                print(f"  master salt: {r.keys.master_salt.hex()}")
    for source, error in failures:
        print(f"{source}: cannot recover keys: {error}")
    if not records and not failures:
        print("no I_MESSAGE found")
    return status
