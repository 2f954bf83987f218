"""Key transport shared by the modes: KEMAC, the verification message, Error payloads, PSK lookup.

PSK (RFC 3830 §3.1), PK (§3.2), RSA-R (RFC 4738) and DH-HMAC (RFC 4650) -- and
the coming TICKET (RFC 6043) and IBAKE (RFC 6267) -- carry or authenticate keys
the same way; this module is the one copy of that machinery:

* :class:`KeyTransport` -- the KEMAC algorithms and the transport keys (encr_key,
  auth_key, salt) derived from a pre-shared or envelope key (§4.1.4).
* KEMAC, two layouts (§5.2): *PSK* -- ``E(encr_key, {Key data}) || MAC`` with the MAC
  over the whole message up to the MAC field (:func:`kemac_message`); *with ID*
  (PK, RSA-R) -- ``E(encr_key, ID || {Key data}) || MAC`` with the MAC over the KEMAC
  payload alone, Next payload zero (§3.2, §6.2, :func:`build_kemac`).  One
  :func:`open_kemac` verifies and decrypts either.
* The verification message ``HDR, T, [IDr], V`` with the MAC over the message
  followed by ``IDi || IDr || T`` (§5.2): :func:`verification_message`,
  :func:`check_verification`.
* Error messages, authenticated with V once keys are known and unauthenticated
  before (§5.1.2): :func:`attach_error`.
* PSK lookup (:data:`PskLookup`, :func:`resolve_psk`), the envelope key cache
  (:class:`EnvelopeKeyCache`, §3.2, §4.5), PSK-layout I_MESSAGE processing shared by
  the PSK Responder and the PK Responder's update path (:func:`receive_psk_message`),
  and the constructor keywords the transport modes share (:class:`TransportOptions`).

Deployed variants (``compat``) are named once, here and in :mod:`mikey.modes.signing`;
:data:`COMPAT_BY_MODE` lists what each mode accepts (the CLI's ``--compat`` choices).
A refusal caused by a known variant names its switch (:func:`compat_hint`).

The response timestamp: RFC 3830 §5.2 has the Responder echo the Initiator's T in
the R_MESSAGE, and the V MAC (or SIGNr) covers ``... || T`` with the Initiator's T.
Deployed PSK, PK and DH responders put their own clock in the R_MESSAGE's T while
still MACing over the Initiator's T.  Since V binds the response to the Initiator's
T, accepting a different T loses nothing -- but it is not the RFC's message, so it
is accepted only behind :data:`COMPAT_FRESH_RESPONSE_TIMESTAMP` in every mode that
has a response (PSK, PK, DH, DH-HMAC, RSA-R); the fresh T must then lie within the
allowable clock skew, and the MAC/signature is still checked over the Initiator's T.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, TypedDict

from ..constants import (
    MAC_LENGTHS,
    PRF,
    CacheType,
    CSIdMapType,
    DataType,
    EncrAlg,
    KeyDataType,
    MacAlg,
    PayloadType,
)
from ..crypto import kemac as kemac_crypto
from ..crypto import prf as prf_crypto
from ..errors import (
    AuthenticationError,
    CryptoError,
    MikeyDecodeError,
    MikeyProtocolError,
    StateError,
    UnspecifiedError,
    UnsupportedEncryptionError,
    UnsupportedMACError,
    UnsupportedPRFError,
)
from ..wire import (
    CommonHeader,
    GenericIdEntry,
    IdPayload,
    KemacPayload,
    KeyDataPayload,
    Message,
    Payload,
    RandPayload,
    SecurityPolicyPayload,
    SrtpIdEntry,
    TimestampPayload,
    VerificationPayload,
    decode_sub_payloads,
    encode_sub_payloads,
)
from ..wire.payloads.base import KeyValidity
from .base import (
    IdResponderKeywords,
    InitiatorKeywords,
    Responder,
    Rng,
    build_error_message,
    check_timestamp,
    derive_crypto_sessions,
    fill_ssrcs,
    id_data,
)
from .results import CryptoSessionKeys, CryptoSessionSpec, ExchangeResult, ResponderOutcome
from .signing import COMPAT_SIGN_EXCLUDES_HEADER

if TYPE_CHECKING:
    from typing import Unpack  # noqa: F401  (used in the mode modules' annotations)

__all__ = [
    "COMPAT_FRESH_RESPONSE_TIMESTAMP",
    "COMPAT_RESPONSE_WITHOUT_IDS",
    "COMPAT_INIT_WITHOUT_IDR",
    "COMPAT_KEMAC_WITHOUT_ID",
    "COMPAT_RSA_R_SIGN_NO_TRAILER",
    "COMPAT_RSA_R_FRESH_TIMESTAMP",
    "COMPAT_RESPONSE_RAND",
    "COMPAT_BY_MODE",
    "compat_hint",
    "VERIFICATION_COVERAGE",
    "ENVELOPE_KEY_LENGTH",
    "KeyTransport",
    "PskLookup",
    "BundleLookup",
    "OpenedKemac",
    "CachedEnvelopeKey",
    "EnvelopeKeyCache",
    "TransportOptions",
    "TransportKeywords",
    "KeyKeywords",
    "RsaRResponderKeywords",
    "check_algorithms",
    "refuse_null_security",
    "default_tgk_length",
    "decode_key_data",
    "key_material",
    "resolve_psk",
    "encrypt_key_data",
    "build_kemac",
    "kemac_message",
    "open_kemac",
    "psk_payloads",
    "verification_trailer",
    "verification_message",
    "check_response_timestamp",
    "check_verification",
    "attach_error",
    "session_keys",
    "updated_sessions",
    "rand_for",
    "specs_from_header",
    "receive_psk_message",
]

# --- deployed variants (one registry) ------------------------------------------------------------

#: The response carries the Responder's clock in T, MAC/signature still over the Initiator's T.
COMPAT_FRESH_RESPONSE_TIMESTAMP = "fresh-response-timestamp"
#: A DH R_MESSAGE without IDr and IDi (MiniSIP libmikey).
COMPAT_RESPONSE_WITHOUT_IDS = "response-without-ids"
#: A DH-HMAC I_MESSAGE without the IDr RFC 4650 §3 requires (MiniSIP libmikey).
COMPAT_INIT_WITHOUT_IDR = "init-without-idr"
#: A PK/RSA-R KEMAC whose encrypted data lacks the leading ID sub-payload (minisip libmikey).
COMPAT_KEMAC_WITHOUT_ID = "kemac-without-id"
#: SIGNr over the R_MESSAGE alone, without IDi || IDr || T (minisip libmikey, RSA-R).
COMPAT_RSA_R_SIGN_NO_TRAILER = "rsa-r-sign-no-trailer"
#: The older RSA-R name of :data:`COMPAT_FRESH_RESPONSE_TIMESTAMP` (kept working).
COMPAT_RSA_R_FRESH_TIMESTAMP = "rsa-r-fresh-timestamp"
#: A unicast RSA-R R_MESSAGE that repeats the I_MESSAGE's RAND (deployed RSA-R responders).
COMPAT_RESPONSE_RAND = "response-rand"

#: The compatibility names each mode accepts (``compat=`` / ``--compat NAME``).
COMPAT_BY_MODE: Mapping[str, frozenset[str]] = {
    "psk": frozenset({COMPAT_FRESH_RESPONSE_TIMESTAMP}),
    "pk": frozenset({COMPAT_SIGN_EXCLUDES_HEADER, COMPAT_KEMAC_WITHOUT_ID, COMPAT_FRESH_RESPONSE_TIMESTAMP}),
    "rsa-r": frozenset({
        COMPAT_SIGN_EXCLUDES_HEADER, COMPAT_KEMAC_WITHOUT_ID, COMPAT_RSA_R_SIGN_NO_TRAILER,
        COMPAT_RSA_R_FRESH_TIMESTAMP, COMPAT_FRESH_RESPONSE_TIMESTAMP, COMPAT_RESPONSE_RAND,
    }),
    "dh": frozenset({COMPAT_FRESH_RESPONSE_TIMESTAMP, COMPAT_RESPONSE_WITHOUT_IDS}),
    "dhhmac": frozenset({COMPAT_FRESH_RESPONSE_TIMESTAMP, COMPAT_RESPONSE_WITHOUT_IDS}),
    "dhhmac-responder": frozenset({COMPAT_INIT_WITHOUT_IDR}),
}


def compat_hint(name: str) -> str:
    """The sentence a refusal ends with when a known deployed variant caused it."""
    return f"a known deployed variant: accept it with compat={{{name!r}}} (--compat {name})"


#: How the verification MAC is computed: "rfc" (message || IDi || IDr || T, RFC 3830 §5.2) or
#: "timestamp-only" (message || T), a deployed variant accepted only when asked for.
VERIFICATION_COVERAGE = ("rfc", "timestamp-only")

#: Default envelope key length in octets (RFC 3830 leaves it open; 256 bits fills one PRF piece, §4.1.2).
ENVELOPE_KEY_LENGTH = 32

#: ``(IDi, IDr) -> pre-shared key``, or None for an unknown peer.
PskLookup = Callable[[IdPayload | None, IdPayload | None], bytes | None]
#: The established bundles an update message may refer to, by CSB ID (RFC 3830 §4.5).
BundleLookup = Mapping[int, ExchangeResult] | Callable[[int], ExchangeResult | None]


# --- algorithms and transport keys (RFC 3830 §4.1.4, §4.2.3, §4.2.4) -----------------------------


class KeyTransport(NamedTuple):
    """What the KEMAC protects: algorithms and transport keys from the PSK/envelope key (RFC 3830 §4.1.4)."""

    encr_alg: int
    mac_alg: int
    prf: int

    def keys(self, secret: bytes, csb_id: int, rand: bytes) -> prf_crypto.TransportKeys:
        try:
            return prf_crypto.derive_transport_keys(
                secret,
                csb_id,
                rand,
                encr_len=kemac_crypto.encr_key_len(self.encr_alg),
                auth_len=kemac_crypto.mac_key_len(self.mac_alg),
                salt_len=kemac_crypto.salt_len(self.encr_alg),
                prf_func=self.prf,
            )
        except CryptoError as e:
            raise UnspecifiedError(str(e)) from None


def check_algorithms(encr_alg: int, mac_alg: int, prf: int) -> None:
    """Raise the RFC error for algorithms this implementation does not support."""
    if prf not in (PRF.MIKEY_1, PRF.PRF_HMAC_SHA_256):
        raise UnsupportedPRFError(f"PRF func {prf} is not supported")
    if encr_alg not in (EncrAlg.NULL, EncrAlg.AES_CM_128, EncrAlg.AES_KW_128, EncrAlg.AES_CM_256):
        raise UnsupportedEncryptionError(f"KEMAC encryption algorithm {encr_alg} is not supported")
    if mac_alg not in (MacAlg.NULL, MacAlg.HMAC_SHA_1_160, MacAlg.HMAC_SHA_256_256):
        raise UnsupportedMACError(f"KEMAC MAC algorithm {mac_alg} is not supported")


def refuse_null_security(encr_alg: int, mac_alg: int) -> None:
    """Refuse NULL KEMAC algorithms: RFC 3830 §4.2.3/§4.2.4 say NULL "MUST NOT be used unless the
    underlying protocols can guarantee security"; only the caller knows that (``allow_null_security``)."""
    if encr_alg == EncrAlg.NULL:
        raise UnsupportedEncryptionError(
            "NULL KEMAC encryption carries the TGK in the clear; RFC 3830 §4.2.3 allows it only over a "
            "carrier that guarantees security (allow_null_security=True, --allow-null-security)"
        )
    if mac_alg == MacAlg.NULL:
        raise UnsupportedMACError(
            "a NULL KEMAC MAC leaves the key transport unauthenticated; RFC 3830 §4.2.4 allows it only over a "
            "carrier that guarantees security (allow_null_security=True, --allow-null-security)"
        )


def default_tgk_length(encr_alg: int, key_type: int) -> int:
    """TGK length: 16 octets, or 20 with AES-KW so the Key data sub-payload is a multiple of 8 (RFC 3394)."""
    if encr_alg == EncrAlg.AES_KW_128 and key_type in (KeyDataType.TGK, KeyDataType.TEK):
        return 20
    return 16


def resolve_psk(psk: bytes | PskLookup, id_i: IdPayload | None, id_r: IdPayload | None) -> bytes:
    """The pre-shared key: *psk* itself, or what the lookup returns for (IDi, IDr)."""
    if isinstance(psk, bytes | bytearray):
        return bytes(psk)
    key = psk(id_i, id_r)
    if key is None:
        raise AuthenticationError("no pre-shared key for this Initiator")
    return key


# --- KEMAC (RFC 3830 §3.1, §3.2, §4.2.3, §5.2, §6.2) --------------------------------------------------


def decode_key_data(plaintext: bytes, encr_alg: int, first: int = PayloadType.KEY_DATA) -> list[Payload]:
    """Decode decrypted KEMAC data; AES-KW plaintext may carry zero padding after the chain."""
    try:
        return decode_sub_payloads(plaintext, first)
    except MikeyDecodeError:
        if encr_alg != EncrAlg.AES_KW_128:
            raise
    stripped = plaintext.rstrip(b"\x00")
    for extra in range(0, 8):
        candidate = plaintext[: len(stripped) + extra]
        try:
            return decode_sub_payloads(candidate, first)
        except MikeyDecodeError:
            continue
    return decode_sub_payloads(plaintext, first)


def key_material(subs: Sequence[Payload]) -> tuple[bytes, bytes | None, int, KeyValidity]:
    """The TGK (or TEK), optional salt, key type and key validity from Key data sub-payloads."""
    for s in subs:
        if isinstance(s, KeyDataPayload):
            return s.key, s.salt, int(s.key_type), s.kv
    raise UnspecifiedError("KEMAC carries no Key data sub-payload")


def encrypt_key_data(
    transport: KeyTransport, keys: prf_crypto.TransportKeys, csb_id: int, t: TimestampPayload, plaintext: bytes
) -> bytes:
    """E(encr_key, plaintext), the IV from the salt, CSB ID and T (RFC 3830 §4.2.3)."""
    try:
        return kemac_crypto.encrypt(
            transport.encr_alg, keys.encr_key, keys.salt, csb_id, t.ts_value, plaintext, ts_type=int(t.ts_type)
        )
    except CryptoError as e:
        raise UnspecifiedError(f"cannot encrypt the key data: {e}") from None


def build_kemac(
    transport: KeyTransport,
    keys: prf_crypto.TransportKeys,
    csb_id: int,
    t: TimestampPayload,
    sub_payloads: Sequence[Payload],
) -> KemacPayload:
    """KEMAC with ID: E(encr_key, ID || {Key data}) || MAC over the KEMAC payload alone (§3.2, §5.2)."""
    plaintext = encode_sub_payloads(list(sub_payloads))
    if transport.encr_alg == EncrAlg.AES_KW_128:
        # RFC 3394 wraps whole 64-bit blocks; the ID makes the length arbitrary, so zero-pad
        # (the receiver ignores octets after the last sub-payload, see decode_key_data).
        plaintext = plaintext.ljust(max(16, -(-len(plaintext) // 8) * 8), b"\x00")
    encr = encrypt_key_data(transport, keys, csb_id, t, plaintext)
    n = MAC_LENGTHS[transport.mac_alg]
    draft = KemacPayload(transport.encr_alg, encr, transport.mac_alg, bytes(n))
    body = encode_sub_payloads([draft])  # a lone payload: Next payload = 0, as §5.2 asks
    mac = kemac_crypto.compute_mac(transport.mac_alg, keys.auth_key, body[: len(body) - n])
    return KemacPayload(transport.encr_alg, encr, transport.mac_alg, mac)


def kemac_message(
    header: CommonHeader,
    payloads: Sequence[Payload],
    transport: KeyTransport,
    keys: prf_crypto.TransportKeys,
    encr_data: bytes,
) -> bytes:
    """PSK layout: the message with a last KEMAC whose MAC covers everything before the MAC (§5.2)."""
    n = MAC_LENGTHS[transport.mac_alg]
    draft = Message(header, (*payloads, KemacPayload(transport.encr_alg, encr_data, transport.mac_alg, bytes(n))))
    raw = draft.encode()
    mac = kemac_crypto.compute_mac(transport.mac_alg, keys.auth_key, raw[: len(raw) - n])
    return raw[: len(raw) - n] + mac


class OpenedKemac(NamedTuple):
    """What a verified and decrypted KEMAC carried.  The repr shows no keys.

    ``id_payload`` is the encrypted ID of the with-ID layout (None in the PSK layout or
    with ``kemac-without-id``); ``key`` is empty for a PSK update without Key data (§4.5).
    """

    key: bytes
    salt: bytes | None
    key_type: int
    key_validity: KeyValidity
    authenticated: bool
    id_payload: IdPayload | None = None

    def __repr__(self) -> str:
        return f"OpenedKemac(key=<{len(self.key)} octets>, key_type={self.key_type}, authenticated={self.authenticated})"


def psk_payloads(msg: Message) -> tuple[TimestampPayload, RandPayload | None, KemacPayload]:
    """T, RAND and the last-payload KEMAC of a PSK I_MESSAGE (RFC 3830 §3.1).

    RAND is None in an update message, which must not carry one (§4.5).
    """
    t = msg.find(TimestampPayload)
    rand_p = msg.find(RandPayload)
    kemac = msg.find(KemacPayload)
    if t is None or kemac is None:
        raise UnspecifiedError("PSK I_MESSAGE needs T and KEMAC (RFC 3830 §3.1)")
    if msg.payloads[-1] is not kemac:
        raise UnspecifiedError("KEMAC must be the last payload of a PSK I_MESSAGE")
    return t, rand_p, kemac


def open_kemac(
    msg: Message,
    transport: KeyTransport,
    keys: prf_crypto.TransportKeys,
    t: TimestampPayload,
    *,
    kemac: KemacPayload | None = None,
    with_id: bool = False,
    compat: frozenset[str] = frozenset(),
    csb_id: int | None = None,
    verified: Callable[[], None] | None = None,
) -> OpenedKemac:
    """Verify the KEMAC MAC over the received bytes (§5.2), then decrypt the Key data (§4.2.3).

    PSK layout (default): the MAC covers the whole message up to the MAC field.  With
    ``with_id`` (PK, RSA-R): the MAC covers the KEMAC payload alone, and the plaintext
    starts with the sender's ID sub-payload (§3.2), unless ``kemac-without-id`` is in
    *compat*.  ``csb_id`` overrides the HDR's in the IV (RFC 4738 group mode).
    *verified* runs after the MAC checks and before decryption (the Responder
    remembers the message there, RFC 3830 §5.3).  A PSK update may carry no Key
    data (§4.5): then ``key`` is empty.
    """
    if kemac is None:
        kemac = msg.find(KemacPayload)
        if kemac is None:
            raise UnspecifiedError("the message has no KEMAC payload")
    raw = msg.raw_bytes()
    n = len(kemac.mac)
    if with_id:
        start, end = msg.payload_span(msg.payloads.index(kemac))
        covered = b"\x00" + raw[start + 1 : end - n]
    else:
        covered = raw[: len(raw) - n]
    kemac_crypto.verify_mac(transport.mac_alg, keys.auth_key, covered, kemac.mac)
    authenticated = transport.mac_alg != MacAlg.NULL
    if verified is not None:
        verified()
    if not kemac.encr_data and not with_id:
        return OpenedKemac(b"", None, KeyDataType.TGK, None, authenticated)
    csb = msg.csb_id if csb_id is None else csb_id
    try:
        plaintext = kemac_crypto.decrypt(
            transport.encr_alg, keys.encr_key, keys.salt, csb, t.ts_value, kemac.encr_data, ts_type=int(t.ts_type)
        )
    except CryptoError as e:
        raise AuthenticationError(f"cannot decrypt the key data: {e}") from None
    if not with_id:
        try:
            key, salt, key_type, kv = key_material(decode_key_data(plaintext, transport.encr_alg))
        except MikeyDecodeError as exc:
            raise UnspecifiedError(f"malformed key data: {exc}") from None
        return OpenedKemac(key, salt, key_type, kv, authenticated)
    subs: list[Payload] = []
    try:
        subs = decode_key_data(plaintext, transport.encr_alg, PayloadType.ID)
    except MikeyDecodeError:
        pass
    if not any(isinstance(s, KeyDataPayload) for s in subs[1:]):
        if COMPAT_KEMAC_WITHOUT_ID not in compat:
            raise AuthenticationError(
                "KEMAC does not decrypt to ID || Key data (RFC 3830 §3.2); if it holds the Key data alone, that is "
                + compat_hint(COMPAT_KEMAC_WITHOUT_ID)
            )
        subs = decode_key_data(plaintext, transport.encr_alg, PayloadType.KEY_DATA)
    id_p = subs[0] if subs and isinstance(subs[0], IdPayload) else None
    key, salt, key_type, kv = key_material(subs)
    return OpenedKemac(key, salt, key_type, kv, authenticated, id_p)


# --- the verification message (RFC 3830 §5.2) ------------------------------------------------------


def verification_trailer(coverage: str, id_i: IdPayload | None, id_r: IdPayload | None, t_value: bytes) -> bytes:
    """What the V MAC covers after the message: IDi || IDr || T, or T alone ("timestamp-only")."""
    if coverage == "timestamp-only":
        return t_value
    return id_data(id_i) + id_data(id_r) + t_value


def check_coverage(coverage: str) -> str:
    if coverage not in VERIFICATION_COVERAGE:
        raise ValueError(f"verification_coverage must be one of {VERIFICATION_COVERAGE}")
    return coverage


def verification_message(
    data_type: int,
    header: CommonHeader,
    t: TimestampPayload,
    mac_alg: int,
    auth_key: bytes,
    id_r: IdPayload | None,
    trailer: bytes,
) -> bytes:
    """R_MESSAGE = HDR, T, [IDr], V with the Initiator's T; MAC over message || trailer (§3.1, §3.2, §5.2)."""
    hdr = CommonHeader(
        data_type, header.csb_id, header.cs_id_map, header.cs_id_map_type, False, header.prf, header.version,
        header.cs_count,
    )
    payloads: list[Payload] = [t]
    if id_r is not None:
        payloads.append(id_r)
    n = MAC_LENGTHS[mac_alg]
    payloads.append(VerificationPayload(mac_alg, bytes(n)))
    draft = Message(hdr, tuple(payloads)).encode()
    mac = kemac_crypto.compute_mac(mac_alg, auth_key, draft[: len(draft) - n] + trailer)
    return draft[: len(draft) - n] + mac


def check_response_timestamp(
    t: TimestampPayload | None,
    own: TimestampPayload,
    compat: frozenset[str],
    now: float,
    skew: float,
    *,
    rfc: str = "RFC 3830 §5.2",
    error: type[MikeyProtocolError] = AuthenticationError,
    names: Iterable[str] = (COMPAT_FRESH_RESPONSE_TIMESTAMP,),
) -> None:
    """The response must echo the Initiator's T, or (a named variant) carry a fresh one within the skew."""
    if t is None:
        raise UnspecifiedError("the response has no T payload")
    if t.ts_value == own.ts_value and t.ts_type == own.ts_type:
        return
    names = tuple(names)
    if not any(n in compat for n in names):
        raise error(
            f"R_MESSAGE must carry the Initiator's timestamp ({rfc}); one with the Responder's own clock is "
            + compat_hint(names[0])
        )
    check_timestamp(t, now, skew)


def check_verification(
    msg: Message,
    own_t: TimestampPayload,
    transport: KeyTransport,
    keys: prf_crypto.TransportKeys,
    trailer: bytes,
    compat: frozenset[str],
    now: float,
    skew: float,
    csb_id: int,
) -> None:
    """Check an R_MESSAGE = HDR, T, [IDr], V: CSB ID, T (see :func:`check_response_timestamp`), V (§5.2)."""
    if msg.csb_id != csb_id:
        raise AuthenticationError("R_MESSAGE CSB ID does not match the I_MESSAGE")
    check_response_timestamp(msg.find(TimestampPayload), own_t, compat, now, skew)
    v = msg.find(VerificationPayload)
    if v is None:
        raise AuthenticationError("R_MESSAGE has no V payload")
    if v.auth_alg != transport.mac_alg:
        raise UnsupportedMACError(f"V uses MAC alg {v.auth_alg}, the I_MESSAGE used {transport.mac_alg}")
    raw = msg.raw_bytes()
    n = len(v.ver_data)
    kemac_crypto.verify_mac(transport.mac_alg, keys.auth_key, raw[: len(raw) - n] + trailer, v.ver_data)


# --- Error messages (RFC 3830 §5.1.2) --------------------------------------------------------------


def attach_error(
    exc: MikeyProtocolError,
    msg: Message,
    t: TimestampPayload | None,
    mac: tuple[int, bytes] | None,
    id_i: IdPayload | None,
    id_r: IdPayload | None,
) -> None:
    """Set ``exc.error_message``: HDR, T, ERR, with V over ``... || IDi || IDr || T`` when *mac*
    ``(mac_alg, auth_key)`` is known (the peer authenticated), unauthenticated otherwise (§5.1.2)."""
    if exc.err_no is None:
        return
    ts = t if t is not None else TimestampPayload.ntp_utc(0)
    mac_arg = None
    if mac is not None and mac[0] in MAC_LENGTHS:
        mac_arg = (mac[0], mac[1], id_data(id_i) + id_data(id_r) + ts.ts_value)
    prf = int(msg.header.prf) if msg.header.prf in (0, 1) else 0
    exc.error_message = build_error_message(msg.csb_id, [exc.err_no], ts, prf=prf, mac=mac_arg)


# --- keys and updates (RFC 3830 §4.1.3, §4.5) ------------------------------------------------------


def session_keys(
    key: bytes,
    key_type: int,
    header: CommonHeader,
    rand: bytes,
    policies: Sequence[SecurityPolicyPayload],
    salt: bytes | None,
    cs_ids: Sequence[int] | None = None,
    csb_id: int | None = None,
) -> tuple[CryptoSessionKeys, ...]:
    """Per-CS SRTP keys from a TGK (§4.1.3), or a transported TEK used as the master key.

    *csb_id* overrides the HDR's in the PRF label (RFC 4738 group mode).
    """
    derived = derive_crypto_sessions(key, header, rand, policies, salt=salt, cs_ids=cs_ids, csb_id=csb_id)
    if key_type in (KeyDataType.TEK, KeyDataType.TEK_SALT):
        return tuple(
            CryptoSessionKeys(cs.cs_id, cs.ssrc, cs.roc, cs.policy, key, salt if salt is not None else cs.master_salt,
                              cs.spi)
            for cs in derived
        )
    return derived


def updated_sessions(
    previous: ExchangeResult, header: CommonHeader, policies: Sequence[SecurityPolicyPayload]
) -> tuple[CryptoSessionKeys, ...]:
    """Keys of an update that carried no new TGK: the bundle's TGK, with the updated map and policies."""
    salt = None
    if previous.crypto_sessions and previous.extras.get("transported_salt"):
        salt = previous.crypto_sessions[0].master_salt
    return session_keys(previous.tgk, int(previous.extras.get("key_type", KeyDataType.TGK)), header,
                        previous.rand, policies, salt)


def rand_for(msg: Message, rand_p: RandPayload | None, previous: ExchangeResult | None) -> bytes:
    """The RAND keys derive from: the message's, or for an update message the bundle's (§4.5)."""
    if rand_p is not None:
        if previous is not None and rand_p.rand != previous.rand:
            raise UnspecifiedError("an update message must not carry a new RAND (RFC 3830 §4.5)")
        return rand_p.rand
    if previous is None:
        raise UnspecifiedError(
            f"message has no RAND and CSB {msg.csb_id:08x} is not a known bundle to update (RFC 3830 §4.5)"
        )
    if previous.csb_id != msg.csb_id:
        raise UnspecifiedError("update message CSB ID does not match the bundle")
    return previous.rand


def specs_from_header(header: CommonHeader) -> list[CryptoSessionSpec]:
    """The crypto sessions an HDR's CS ID map offers."""
    specs = []
    for e in header.cs_id_map:
        if isinstance(e, SrtpIdEntry):
            specs.append(CryptoSessionSpec(ssrc=e.ssrc, roc=e.roc, policy_no=e.policy_no))
        elif isinstance(e, GenericIdEntry):
            specs.append(
                CryptoSessionSpec(
                    ssrc=e.ssrc or 0, roc=e.roc or 0, policy_no=e.policies[0] if e.policies else 0, cs_id=e.cs_id
                )
            )
    return specs


# --- the PSK-layout I_MESSAGE, Responder side (RFC 3830 §3.1, §4.5, §5.3) ---------------------------


def _bundle(bundles: BundleLookup | None, csb_id: int) -> ExchangeResult | None:
    if bundles is None:
        return None
    if callable(bundles):
        return bundles(csb_id)
    return bundles.get(csb_id)


def receive_psk_message(
    side: Responder,
    msg: Message,
    now: float,
    psk: bytes | PskLookup,
    *,
    own_ssrcs: Sequence[int] = (),
    id_r: IdPayload | None = None,
    allow_null_security: bool = False,
    verification_coverage: str = "rfc",
    bundles: BundleLookup | None = None,
) -> ResponderOutcome:
    """Take a PSK-layout I_MESSAGE: T and replay checks, KEMAC MAC, decryption, keys, and the R_MESSAGE.

    Used by the PSK Responder and by the PK Responder for updates keyed with a cached
    envelope key (RFC 3830 §4.5).  A NULL-MAC message proves nothing about its sender:
    it never enters the replay cache nor moves the per-peer counter (§5.3).  Errors
    carry the Error message to send (:func:`attach_error`).
    """
    t: TimestampPayload | None = None
    rand_p: RandPayload | None = None
    kemac: KemacPayload | None = None
    ids: list[IdPayload] = []
    sps: list[SecurityPolicyPayload] = []
    for p in msg.payloads:  # one pass (RFC 3830 §3.1 layout: T, RAND, [IDi], [IDr], {SP}, KEMAC)
        cls = type(p)
        if cls is TimestampPayload and t is None:
            t = p  # type: ignore[assignment]
        elif cls is RandPayload and rand_p is None:
            rand_p = p  # type: ignore[assignment]
        elif cls is IdPayload:
            ids.append(p)  # type: ignore[arg-type]
        elif cls is SecurityPolicyPayload:
            sps.append(p)  # type: ignore[arg-type]
        elif cls is KemacPayload:
            kemac = p  # type: ignore[assignment]
    id_i = ids[0] if ids else None
    id_r_msg = ids[1] if len(ids) > 1 else None
    hdr = msg.header
    auth: list[tuple[int, bytes]] = []
    try:
        if t is None or kemac is None:
            raise UnspecifiedError("PSK I_MESSAGE needs T and KEMAC (RFC 3830 §3.1)")
        if msg.payloads[-1] is not kemac:
            raise UnspecifiedError("KEMAC must be the last payload of a PSK I_MESSAGE")
        transport = KeyTransport(int(kemac.encr_alg), int(kemac.mac_alg), int(hdr.prf))
        check_algorithms(*transport)
        null_security = transport.encr_alg == EncrAlg.NULL or transport.mac_alg == MacAlg.NULL
        if null_security and not allow_null_security:
            refuse_null_security(transport.encr_alg, transport.mac_alg)
        admission = side.admit(msg, t, now, id_data(id_i))
        authenticates = transport.mac_alg != MacAlg.NULL
        previous = _bundle(bundles, hdr.csb_id) if rand_p is None else None
        rand = rand_for(msg, rand_p, previous)
        keys = transport.keys(resolve_psk(psk, id_i, id_r_msg), hdr.csb_id, rand)

        def remember() -> None:
            if authenticates:
                auth.append((transport.mac_alg, keys.auth_key))
                side.remember(admission)

        opened = open_kemac(msg, transport, keys, t, kemac=kemac, verified=remember)
        header = fill_ssrcs(hdr, own_ssrcs) if own_ssrcs else hdr
        policies = tuple(sps)
        if not policies and previous is not None:
            policies = previous.policies
        if opened.key:
            sessions = session_keys(opened.key, opened.key_type, header, rand, policies, opened.salt)
            key, key_type, transported_salt = opened.key, opened.key_type, opened.salt is not None
        else:
            if previous is None:
                raise UnspecifiedError("KEMAC carries no Key data sub-payload")
            sessions = updated_sessions(previous, header, policies)
            key = previous.tgk
            key_type = int(previous.extras.get("key_type", KeyDataType.TGK))
            transported_salt = bool(previous.extras.get("transported_salt"))
    except MikeyProtocolError as exc:
        attach_error(exc, msg, t, auth[0] if auth else None, id_i, id_r_msg)
        raise
    result = ExchangeResult(
        mode=side.MODE,
        csb_id=hdr.csb_id,
        tgk=key,
        rand=rand,
        prf=int(hdr.prf),
        crypto_sessions=sessions,
        authenticated=opened.authenticated,
        header=header,
        policies=policies,
        initiator_id=id_i.data if id_i else None,
        responder_id=id_r_msg.data if id_r_msg else (id_r.data if id_r else None),
        key_validity=opened.key_validity,
        extras={"key_type": key_type, "transported_salt": transported_salt, "update": rand_p is None,
                "null_security": null_security},
    )
    response = None
    if hdr.v:
        trailer = verification_trailer(verification_coverage, id_i, id_r_msg, t.ts_value)
        response = verification_message(
            DataType.PSK_RESP, header, t, transport.mac_alg, keys.auth_key, id_r, trailer
        )
    return ResponderOutcome(result, response)


# --- the envelope key cache (RFC 3830 §3.2, §4.5, Table 6.3) ----------------------------------------


@dataclass(frozen=True)
class CachedEnvelopeKey:
    """A cached envelope key, usable as the PSK of update messages for ``csb_id`` (or any CSB, C = 1)."""

    peer: bytes
    csb_id: int
    rand: bytes
    cache_type: int
    expires: float
    key: bytes = field(repr=False)


class EnvelopeKeyCache:
    """Envelope keys kept as pre-shared keys for later exchanges (RFC 3830 §3.2, §4.5).

    C = 1 (Cache) entries serve any CSB with the same peer; C = 2 (Cache for
    CSB) entries only the CSB they came from.  ``max_age`` bounds how long an
    entry lives (§3.2: not indefinitely; at least the CSB's lifetime -- local
    policy).  Keys never appear in ``repr``.  A PSK-mode update Initiator keyed
    from an entry is :meth:`mikey.modes.psk.PskInitiator.from_envelope_key`.
    """

    def __init__(self, max_age: float = 24 * 3600.0) -> None:
        self.max_age = max_age
        self._entries: dict[tuple[bytes, int], CachedEnvelopeKey] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EnvelopeKeyCache(entries={len(self._entries)})"

    def __len__(self) -> int:
        return len(self._entries)

    def store(self, peer: bytes, csb_id: int, rand: bytes, key: bytes, cache_type: int, now: float) -> None:
        if cache_type not in (CacheType.CACHE, CacheType.CACHE_FOR_CSB):
            return
        with self._lock:
            self._entries[(peer, csb_id)] = CachedEnvelopeKey(peer, csb_id, rand, int(cache_type), now + self.max_age,
                                                              key)

    def lookup(self, peer: bytes, csb_id: int, now: float) -> CachedEnvelopeKey | None:
        """The entry for (peer, CSB), else the newest C = 1 entry for the peer; expired ones are dropped."""
        with self._lock:
            for k in [k for k, e in self._entries.items() if e.expires < now]:
                del self._entries[k]
            exact = self._entries.get((peer, csb_id))
            if exact is not None:
                return exact
            general = [e for (p, _), e in self._entries.items() if p == peer and e.cache_type == CacheType.CACHE]
            return max(general, key=lambda e: e.expires) if general else None

    def require(self, peer: bytes, csb_id: int, now: float) -> CachedEnvelopeKey:
        """:meth:`lookup`, raising :class:`StateError` when there is no entry."""
        entry = self.lookup(peer, csb_id, now)
        if entry is None:
            raise StateError("no cached envelope key for this peer and CSB")
        return entry

    def forget(self, peer: bytes, csb_id: int | None = None) -> None:
        with self._lock:
            for k in [k for k in self._entries if k[0] == peer and (csb_id is None or k[1] == csb_id)]:
                del self._entries[k]


# --- the constructor keywords of the sides that send a key (shared ones: mikey.modes.base) ---


class KeyKeywords(TypedDict, total=False):
    """The side that sends the key in a KEMAC (PSK and PK Initiators, RSA-R Responder):
    ``tgk``/``tgk_salt`` (random when None), ``key_type``/``key_validity`` of the Key data
    sub-payload and the KEMAC's ``encr_alg``/``mac_alg`` (RFC 3830 §6.2, §6.13)."""

    tgk: bytes | None
    tgk_salt: bytes | None
    key_type: int
    key_validity: KeyValidity
    encr_alg: int
    mac_alg: int


class TransportKeywords(InitiatorKeywords, KeyKeywords, total=False):
    """Keywords of the PSK and PK Initiators (see :class:`TransportOptions`): the shared Initiator
    and key keywords, ``v`` (ask for a verification message) and ``verification_coverage``."""

    v: bool
    verification_coverage: str


class RsaRResponderKeywords(IdResponderKeywords, KeyKeywords, total=False):
    """Keywords of the RSA-R Responder shared with the other modes (it sends the key, RFC 4738 §3.6)."""


@dataclass(slots=True)  # not frozen: built once per Initiator, and frozen __init__ costs µs on the PSK path
class TransportOptions:
    """The offer and key material of a key-transport Initiator, defined once (PSK, PK).

    ``crypto_sessions`` (default one SRTP stream, SSRC filled in by the Responder),
    ``policies`` (default the RFC 3830 SRTP policy), ``csb_id``, ``tgk``/``tgk_salt``,
    ``rand`` (random when None), ``key_type``/``key_validity`` of the Key data,
    ``encr_alg``/``mac_alg``/``prf`` of the KEMAC, ``v`` (ask for a verification
    message), ``id_i``/``id_r``, ``cs_id_map_type``, ``verification_coverage`` and
    ``compat`` (deployed variants), ``clock_skew`` (for a fresh response T) and ``rng``
    -- :class:`TransportKeywords` as attributes.  Initiators keep no replay cache (only
    Responders check for replays, RFC 3830 §5.4), so ``replay_cache`` is not among them.
    """

    crypto_sessions: Sequence[CryptoSessionSpec] | None = None
    policies: Sequence[SecurityPolicyPayload] | None = None
    csb_id: int | None = None
    tgk: bytes | None = field(default=None, repr=False)
    tgk_salt: bytes | None = field(default=None, repr=False)
    rand: bytes | None = None
    key_type: int = KeyDataType.TGK
    key_validity: KeyValidity = None
    encr_alg: int = EncrAlg.AES_CM_128
    mac_alg: int = MacAlg.HMAC_SHA_1_160
    prf: int = PRF.MIKEY_1
    v: bool = False
    id_i: IdPayload | None = None
    id_r: IdPayload | None = None
    cs_id_map_type: int = CSIdMapType.SRTP_ID
    verification_coverage: str = "rfc"
    compat: Iterable[str] = ()
    clock_skew: float | None = None
    rng: Rng | None = None

    def transport(self) -> KeyTransport:
        check_algorithms(self.encr_alg, self.mac_alg, self.prf)
        return KeyTransport(self.encr_alg, self.mac_alg, self.prf)
