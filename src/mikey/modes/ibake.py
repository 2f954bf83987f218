"""MIKEY-IBAKE (RFC 6267 §4.2.2, §5): identity-based authenticated key exchange, Initiator and Responder.

I_MESSAGE_1 = HDR, T, RAND, IDRi, IDRr, {SP}, IBAKE, [ESK]      IBAKE = E(K_PUBr, IDRi || ECCPTi || IDRr)
R_MESSAGE_1 = HDR, T, IDRi, IDRr, IBAKE                          IBAKE = E(K_PUBi, IDRi || {ECCPTi} || IDRr || ECCPTr)
I_MESSAGE_2 = HDR, T, RAND, IDRi, IDRr, IBAKE, [ESK]            IBAKE = E(K_PUBr, IDRi || {ECCPTi} || IDRr || ECCPTr)
R_MESSAGE_2 = HDR, T, IDRi, IDRr, [IBAKE], V                     IBAKE = E(K_PUBi, IDRi || ECCPTi)

Each side IBE-encrypts (Boneh-Franklin, :mod:`mikey.crypto.ibe`) its EC Diffie-Hellman value to the
other's identity; the echoed values authenticate (only the holder of K_PR could read them, §7.2); the
session key [x][y]P gives MPK and TGK (§5.1); R_MESSAGE_2's V proves the Responder holds it (§5.4).
The user's K_PRs come from the KMS (:mod:`mikey.modes.ibake_keys`, §4.2.1).

mikey's MIKEY-IBAKE profile (RFC 6267 leaves these open; each deployment-dependent one is a parameter):

* IBE: RFC 5091 BF over the KMS's type-1 curve (:func:`~mikey.crypto.ibe.bf_setup`, default security
  2048: p 1024 bits, q 224, SHA-224); the public parameters travel out of band (KMS API/keystore).
* K_PUB = H1(ID || date) with ID the IDR payload's ID data and date the ASCII UTC date of the key period
  that contains the message's T (``KeyPeriod``: ``YYYY``, ``YYYY-MM`` default, ``YYYY-MM-DD``,
  ``YYYY-MM-DDTHH``; :func:`~mikey.crypto.ibe.period_identity`) -- **param** ``key_period``.
* IBAKE / ESK "Encr data" = one BF ciphertext ``U || V || W`` (RFC 5091 §5.4.1 step 13); U a SEC 1 point,
  uncompressed by default -- **param** ``point_format`` (decoders accept both unless
  ``strict_point_format``).  W is the plaintext chain below.
* The encrypted plaintext is a payload chain that always starts with an IDR payload (RFC 6043 §6.6,
  ID role Initiator): ``IDRi || {ECCPTi} || IDRr || {ECCPTr}``; ESK's is ``IDRi || SK``.  The decrypted
  IDRi/IDRr must equal the clear ones, and echoed ECCPT values must equal what was sent (Error no 0).
* ECCPT: uncompressed SEC 1 point padded with zeros to a 32-bit boundary (§6.1.4); Auth alg 0 and
  TGK len 0 (ignored by the RFC).  Curves (Table 5) that ``cryptography`` provides: P-192, P-224,
  P-256 (default), P-384, P-521 -- **param** ``curve``; the binary curves get Error no 6.
* K_SESSION = the SEC 1 uncompressed encoding ``04 || X || Y`` of [x][y]P (§5.1; computed with OpenSSL:
  ECDH gives X, the sign of Y comes from a second exchange).
* MPK, TGK = PRF(K_SESSION, const || 0xFF || 0xFFFFFFFF || RAND) with MPK 0x220E99A2, TGK 0x1F4D675B
  (§5.1), the PRF of the HDR (default PRF-HMAC-SHA-256), RAND the Initiator's (I_MESSAGE_1's, repeated in
  I_MESSAGE_2); 32 octets each -- **params** ``mpk_length``, ``tgk_length``.  TEKs/SRTP keys from the TGK
  as RFC 3830 §4.1.3.
* V (§5.4): auth_key = PRF(MPK, 0x2D22AC75 || 0xFF || CSB ID || RAND) (RFC 3830 §4.1.4); MAC alg
  HMAC-SHA-256-256 with PRF-HMAC-SHA-256, HMAC-SHA-1-160 with MIKEY-1.  The MAC covers the message
  without the MAC field and without any ESK payload (cut out as received), then IDRi data || IDRr data
  (the Responder's own IDRr of R_MESSAGE_1).
* {SP} payloads may follow IDRr in I_MESSAGE_1 (as in PSK mode); the Responder fills SSRC placeholders
  in R_MESSAGE_1's HDR (RFC 3830 §6.1.1), which the Initiator repeats in I_MESSAGE_2.
* Clear T and RAND are not covered by IBE in the first three messages (the RFC protects only what is
  IBE-encrypted): the Responder refuses an I_MESSAGE_2 whose RAND is not I_MESSAGE_1's, and any other
  change gives the sides different keys or timestamps, which R_MESSAGE_2's V exposes.
* ESK (§6.1.2) and deferred delivery: ESK = BF ciphertext to the *called* identity (the IDRr of
  I_MESSAGE_1) of ``IDRi || SK(type 1, 32 random octets)``; the IBAKE payload stays IBE-encrypted as
  §4.2.2.1 says.  An I_MESSAGE_2 re-sending ECCPTi carries an ESK (§4.2.2.4).  When the answer is a
  mailbox (:attr:`AnswerKind.DEFERRED`), the media TGK = PRF(SK, TGK label) so that the mailbox, which
  completes the exchange (MPK, V) with its own identity, cannot read the media; the user opens the stored
  message later with :func:`open_deferred`.
* Who may answer (§7.3 forking, §7.4 retargeting, §3.3 deferred delivery) is the Initiator's policy
  (:func:`answer_policy`); the Initiator keeps one :class:`IbakeLeg` per answer (keyed by IDRr and
  ECCPTr) and tells R_MESSAGE_2s apart by their V.  Answers it refuses raise Error no 7.
* Errors: a failed IBE decryption, a mismatched identity or echo -> Error no 0; an unsupported curve -> 6;
  an IDRr this Responder holds no key for and may not answer -> 7; bad timestamps -> 1.  A Responder
  holding no K_PR for the called identity answers with ECCPTr only (§4.2.2.2) when
  ``answer_unreadable`` (default True).
* The Initiator survives bad answers (a forged R_MESSAGE must not end a forked call): the error is
  raised, the Initiator keeps waiting.  A Responder takes one exchange (two messages).
* CSB update (§5.3): :class:`IbakeUpdateInitiator` / :class:`IbakeUpdateResponder`, started by either side;
  only with new EC values (the SHOULD case: the keys of the initial messages are not kept), same CSB ID,
  new T, no RAND (the initial RAND keeps being used); in the IBE plaintext each EC value follows its
  owner's identity, IDRi/IDRr keep the roles of the initial exchange.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec

from ..constants import (
    PRF,
    CSIdMapType,
    DataType,
    ECCCurve,
    IDRole,
    IDType,
    MacAlg,
    PayloadType,
    SecretKeyType,
)
from ..crypto import ibe
from ..crypto import kemac as kemac_crypto
from ..crypto import prf as prf_crypto
from ..errors import (
    AuthenticationError,
    CryptoError,
    IbeFormatError,
    InvalidTimestampError,
    KeyMaterialError,
    MikeyDecodeError,
    MikeyError,
    MikeyProtocolError,
    PeerError,
    ReplayError,
    StateError,
    UnspecifiedError,
    UnsupportedDataTypeError,
    UnsupportedDHGroupError,
    UnsupportedIDError,
    UnsupportedMACError,
    UnsupportedPRFError,
)
from ..replay import DEFAULT_CLOCK_SKEW, ReplayStore
from ..wire import (
    CommonHeader,
    EccptPayload,
    EskPayload,
    IbakePayload,
    IdrPayload,
    Message,
    Payload,
    RandPayload,
    SecurityPolicyPayload,
    SkPayload,
    TimestampPayload,
    VerificationPayload,
)
from ..wire.payloads.base import decode_sub_payloads, encode_sub_payloads
from ..wire.payloads.rfc6267 import ecc_point_field_length
from .base import (
    Rng,
    Side,
    State,
    build_error_message,
    build_header,
    derive_crypto_sessions,
    fill_ssrcs,
    merge_responder_ssrcs,
    peer_error,
    random_csb_id,
    shared_default_srtp_policy,
)
from .results import CryptoSessionSpec, ExchangeResult

__all__ = [
    "MPK_CONSTANT",
    "TGK_CONSTANT",
    "SUPPORTED_CURVES",
    "AnswerKind",
    "AnswerPolicy",
    "answer_policy",
    "IbakeCredentials",
    "IbakeStep",
    "IbakeLeg",
    "IbakeInitiator",
    "IbakeResponder",
    "open_deferred",
    "session_point",
    "derive_mpk_tgk",
    "v_mac_alg",
    "v_auth_key",
]

#: RFC 6267 §5.1 Table 1.
MPK_CONSTANT = 0x220E99A2
TGK_CONSTANT = 0x1F4D675B
SK_LENGTH = 32

#: RFC 6267 Table 5 curves that ``cryptography`` provides: value -> (curve class, field prime p).
_CURVES: dict[int, tuple[type[ec.EllipticCurve], int]] = {
    ECCCurve.P_192: (ec.SECP192R1, 2**192 - 2**64 - 1),
    ECCCurve.P_224: (ec.SECP224R1, 2**224 - 2**96 + 1),
    ECCCurve.P_256: (ec.SECP256R1, 2**256 - 2**224 + 2**192 + 2**96 - 1),
    ECCCurve.P_384: (ec.SECP384R1, 2**384 - 2**128 - 2**96 + 2**32 - 1),
    ECCCurve.P_521: (ec.SECP521R1, 2**521 - 1),
}
SUPPORTED_CURVES = frozenset(_CURVES)


# --- EC Diffie-Hellman (RFC 6267 §5.1, §6.1.4) ----------------------------------------------------


def _curve(curve_id: int) -> tuple[ec.EllipticCurve, int, int]:
    """(curve object, p, coordinate octets), or Error no 6 for a curve we cannot use."""
    entry = _CURVES.get(int(curve_id))
    if entry is None:
        raise UnsupportedDHGroupError(f"ECC curve {curve_id} is not supported (P-192/224/256/384/521 are)")
    cls, p = entry
    return cls(), p, (p.bit_length() + 7) // 8


def _generate(curve_id: int, scalar: int | None) -> ec.EllipticCurvePrivateKey:
    curve, _, _ = _curve(curve_id)
    try:
        if scalar is not None:
            return ec.derive_private_key(scalar, curve)
        return ec.generate_private_key(curve)
    except UnsupportedAlgorithm:
        raise UnsupportedDHGroupError(f"ECC curve {curve_id} is not available in this OpenSSL") from None


def _eccpt(curve_id: int, key: ec.EllipticCurvePublicKey) -> EccptPayload:
    """ECCPT with the uncompressed point padded to a 32-bit boundary (§6.1.4)."""
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    n = ecc_point_field_length(curve_id)
    if n is None:  # pragma: no cover - _curve() refused it before
        raise UnsupportedDHGroupError(f"ECC curve {curve_id} has no point length")
    return EccptPayload(ECCCurve(curve_id), raw.ljust(n, b"\x00"))


def _peer_point(p: EccptPayload, expected_curve: int) -> ec.EllipticCurvePublicKey:
    """The peer's EC point: the agreed curve, a valid uncompressed point, zero padding (Error no 6 / 0)."""
    if int(p.curve) != int(expected_curve):
        raise UnsupportedDHGroupError(f"the peer's ECCPT uses curve {p.curve}, this exchange uses {expected_curve}")
    curve, _, size = _curve(expected_curve)
    n = 1 + 2 * size
    point, pad = p.point[:n], p.point[n:]
    if point[:1] != b"\x04" or any(pad):
        raise AuthenticationError("the peer's ECCPT is not an uncompressed point with zero padding (§6.1.4)")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    except ValueError:
        raise AuthenticationError("the peer's ECCPT is not a point of the curve") from None


def session_point(curve_id: int, private: ec.EllipticCurvePrivateKey, peer: ec.EllipticCurvePublicKey) -> bytes:
    """K_SESSION: [x][y]P as SEC 1 uncompressed ``04 || X || Y`` (RFC 6267 §5.1).

    ECDH gives X; of the two points with that X, the one S with x(S + Q) = ECDH(x+1, Q)
    (or x(S - Q) with x-1) is [x]Q -- the chord formula needs only p.
    """
    curve, p, size = _curve(curve_id)
    sx = int.from_bytes(private.exchange(ec.ECDH(), peer), "big")
    y0 = ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x02" + sx.to_bytes(size, "big")).public_numbers().y
    k = private.private_numbers().private_value
    q = peer.public_numbers()
    qx, qy = q.x, q.y
    try:
        t = int.from_bytes(ec.derive_private_key(k + 1, curve).exchange(ec.ECDH(), peer), "big")
    except ValueError:  # k + 1 = n: use x(S - Q) instead
        t = int.from_bytes(ec.derive_private_key(k - 1, curve).exchange(ec.ECDH(), peer), "big")
        qy = (-qy) % p
    if sx == qx:
        raise CryptoError("degenerate EC Diffie-Hellman values")
    for y in (y0, (-y0) % p):
        lam = (qy - y) * pow(qx - sx, -1, p) % p
        if (lam * lam - sx - qx) % p == t:
            return b"\x04" + sx.to_bytes(size, "big") + y.to_bytes(size, "big")
    raise CryptoError("cannot recover the session point")  # pragma: no cover - impossible for valid points


# --- key derivation (RFC 6267 §5.1, §5.2, §5.4) ----------------------------------------------------


def _session_label(constant: int, rand: bytes) -> bytes:
    return constant.to_bytes(4, "big") + b"\xff\xff\xff\xff\xff" + rand


def derive_mpk_tgk(k_session: bytes, rand: bytes, prf_func: int, mpk_length: int = 32,
                   tgk_length: int = 32) -> tuple[bytes, bytes]:
    """MPK and TGK from K_SESSION: PRF(K_SESSION, const || 0xFF || 0xFFFFFFFF || RAND) (§5.1)."""
    mpk, tgk = prf_crypto.prf_many(
        k_session, [(_session_label(MPK_CONSTANT, rand), mpk_length), (_session_label(TGK_CONSTANT, rand), tgk_length)],
        prf_func,
    )
    return mpk, tgk


def _tgk_from_sk(sk: bytes, rand: bytes, prf_func: int, tgk_length: int) -> bytes:
    """The deferred-delivery TGK: PRF(SK, TGK const || 0xFF || 0xFFFFFFFF || RAND) (mikey's profile)."""
    return prf_crypto.prf(sk, _session_label(TGK_CONSTANT, rand), tgk_length, prf_func)


def v_mac_alg(prf_func: int) -> int:
    """The V MAC algorithm of this profile: HMAC-SHA-256-256 with PRF-HMAC-SHA-256, else HMAC-SHA-1-160."""
    return MacAlg.HMAC_SHA_256_256 if prf_func == PRF.PRF_HMAC_SHA_256 else MacAlg.HMAC_SHA_1_160


def v_auth_key(mpk: bytes, csb_id: int, rand: bytes, prf_func: int) -> bytes:
    """auth_key = PRF(MPK, 0x2D22AC75 || 0xFF || CSB ID || RAND) (§5.2, RFC 3830 §4.1.4)."""
    return prf_crypto.derive_transport_keys(
        mpk, csb_id, rand, encr_len=0, auth_len=kemac_crypto.mac_key_len(v_mac_alg(prf_func)), salt_len=0,
        prf_func=prf_func,
    ).auth_key


def _mac_coverage(msg: Message, mac_len: int, id_i: bytes, id_r: bytes) -> bytes:
    """The message without the MAC field and without ESK payloads, then IDRi || IDRr data (§5.4)."""
    raw = msg.raw_bytes()
    out = bytearray()
    pos = 0
    for i, p in enumerate(msg.payloads):
        if isinstance(p, EskPayload):
            start, end = msg.payload_span(i)
            out += raw[pos:start]
            pos = end
    out += raw[pos : len(raw) - mac_len]
    return bytes(out) + id_i + id_r


def _with_v(header: CommonHeader, payloads: Sequence[Payload], mac_alg: int, key: bytes, id_i: bytes,
            id_r: bytes) -> bytes:
    n = kemac_crypto.mac_len(mac_alg)
    draft = Message(header, (*payloads, VerificationPayload(mac_alg, bytes(n)))).encoded()
    mac = kemac_crypto.compute_mac(mac_alg, key, _mac_coverage(draft, n, id_i, id_r))
    return draft.raw_bytes()[: -n] + mac


# --- credentials -------------------------------------------------------------------------------------


class IbakeCredentials:
    """What one user holds: its KMS's public parameters and its K_PRs by ``ID || date`` (§4.2.1).

    ``peer_params`` gives the public parameters of peers of other KMSs (§7.2), by identity; by
    default every peer shares ``params``.  ``key_period`` is the KMS's date granularity.
    ``rand_below(n)`` draws BF encryption's rho (default :mod:`secrets`; fixed only for known answers).
    """

    def __init__(
        self,
        params: ibe.BfParams,
        private_keys: Iterable[ibe.BfPrivateKey] = (),
        *,
        key_period: ibe.KeyPeriod = ibe.KeyPeriod.MONTH,
        peer_params: Mapping[bytes, ibe.BfParams] | Callable[[bytes], ibe.BfParams | None] | None = None,
        point_format: ibe.PointFormat = ibe.PointFormat.UNCOMPRESSED,
        strict_point_format: bool = False,
        rand_below: ibe.RandBelow | None = None,
    ) -> None:
        self.params = params
        self.rand_below = rand_below
        self.key_period = key_period
        self.point_format = point_format
        self.strict_point_format = strict_point_format
        self._peer_params = peer_params
        self._keys: dict[bytes, ibe.BfPrivateKey] = {}
        self._lock = threading.Lock()
        for k in private_keys:
            self.add(k)

    def __repr__(self) -> str:
        return f"IbakeCredentials(keys={len(self._keys)}, period={self.key_period.value})"

    def add(self, key: ibe.BfPrivateKey) -> None:
        """Hold one more K_PR (its identity is ``ID || date``)."""
        if key.params != self.params:
            raise KeyMaterialError("this K_PR belongs to other public parameters than the credentials'")
        with self._lock:
            self._keys[key.identity] = key

    def period_identity(self, identity: bytes, when: _dt.datetime) -> bytes:
        return ibe.period_identity(identity, when, self.key_period)

    def private_key(self, identity: bytes, when: _dt.datetime) -> ibe.BfPrivateKey | None:
        """The K_PR of *identity* for the key period containing *when*, if held."""
        return self._keys.get(self.period_identity(identity, when))

    def params_for(self, identity: bytes) -> ibe.BfParams:
        """The public parameters to encrypt to *identity* (its KMS's)."""
        found: ibe.BfParams | None = None
        if isinstance(self._peer_params, Mapping):
            found = self._peer_params.get(identity)
        elif self._peer_params is not None:
            found = self._peer_params(identity)
        return found if found is not None else self.params

    # -- IBE on MIKEY payload chains -----------------------------------------------------------

    def encrypt(self, identity: bytes, when: _dt.datetime, plaintext: bytes) -> bytes:
        """Encr data: BF ciphertext of *plaintext* to ``identity || date``."""
        params = self.params_for(identity)
        try:
            ct = ibe.bf_encrypt(params, self.period_identity(identity, when), plaintext, self.rand_below)
        except CryptoError as e:
            raise UnspecifiedError(f"IBE encryption failed: {e.message}") from None
        return ct.encode(params, self.point_format)

    def decrypt(self, key: ibe.BfPrivateKey, encr_data: bytes, what: str) -> bytes:
        """BF-decrypt Encr data with *key*; any failure is Error no 0 (§4.2.2.2, §7.2)."""
        try:
            return ibe.bf_decrypt(key.params, key, self._ciphertext(key.params, encr_data))
        except CryptoError:
            raise AuthenticationError(f"the {what} payload does not decrypt with this identity's K_PR") from None

    def _ciphertext(self, params: ibe.BfParams, data: bytes) -> ibe.BfCiphertext:
        """U || V || W with U on the curve (SEC 1, the allowed format), V hashlen octets.

        :meth:`ibe.BfCiphertext.decode` also checks that U has order q (a scalar multiplication,
        ~1/3 of a decryption); :func:`ibe.bf_decrypt` does not need it -- its U = [l]P check (RFC 5091
        §5.5.1) refuses any U outside the group with the same error -- so it is left out here.
        """
        if not data:
            raise IbeFormatError("empty BF ciphertext")
        allowed = (4,) if self.strict_point_format and self.point_format is ibe.PointFormat.UNCOMPRESSED else (
            (2, 3) if self.strict_point_format else (2, 3, 4))
        curve = params.curve
        if data[0] not in allowed:
            raise IbeFormatError("BF ciphertext U: not a point in the expected format")
        n = curve.point_length(data[0])
        if not n + params.hashlen <= len(data) <= n + params.hashlen + ibe.MAX_MESSAGE_LENGTH:
            raise IbeFormatError("BF ciphertext has the wrong length")
        try:
            u = curve.decode_point(data[:n])
        except ValueError:
            raise IbeFormatError("BF ciphertext U is not a point of the curve") from None
        return ibe.BfCiphertext(u, data[n : n + params.hashlen], data[n + params.hashlen :])


def _when(t: TimestampPayload, now: float) -> _dt.datetime:
    """The UTC time of a T payload: its key period is the one of K_PUB = H1(ID || date)."""
    seconds = t.unix_time(now)
    if seconds is None:
        raise InvalidTimestampError("MIKEY-IBAKE needs an NTP timestamp (the key period comes from T)")
    try:
        return _dt.datetime.fromtimestamp(seconds, _dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidTimestampError("the timestamp is out of range") from None


# --- IBE plaintext chains (mikey's profile) -----------------------------------------------------------


@dataclass(frozen=True)
class _Content:
    """A decrypted IBAKE plaintext: IDRi || {ECCPTi} || [IDRr || {ECCPTr}]."""

    id_i: bytes
    eccpt_i: EccptPayload | None
    id_r: bytes | None
    eccpt_r: EccptPayload | None


def _idr(role: int, data: bytes, id_type: int = IDType.URI) -> IdrPayload:
    return IdrPayload(IDRole(role), id_type, data)


def _content(id_i: IdrPayload, eccpt_i: EccptPayload | None, id_r: IdrPayload | None,
             eccpt_r: EccptPayload | None) -> bytes:
    parts: list[Payload] = [id_i]
    if eccpt_i is not None:
        parts.append(eccpt_i)
    if id_r is not None:
        parts.append(id_r)
    if eccpt_r is not None:
        parts.append(eccpt_r)
    return encode_sub_payloads(parts)


def _parse_content(plaintext: bytes) -> _Content:
    try:
        subs = decode_sub_payloads(plaintext, PayloadType.IDR)
    except MikeyDecodeError as e:
        raise UnspecifiedError(f"the IBAKE plaintext is not a payload chain: {e.message}") from None
    first = subs[0] if subs else None
    if not isinstance(first, IdrPayload) or first.id_role != IDRole.INITIATOR:
        raise UnspecifiedError("the IBAKE plaintext must start with IDRi")
    rest = subs[1:]
    eccpt_i: EccptPayload | None = None
    id_r: IdrPayload | None = None
    eccpt_r: EccptPayload | None = None
    head = rest.pop(0) if rest else None
    if isinstance(head, EccptPayload):
        eccpt_i, head = head, (rest.pop(0) if rest else None)
    if isinstance(head, IdrPayload):
        if head.id_role != IDRole.RESPONDER:
            raise UnspecifiedError("the second identity of the IBAKE plaintext must be IDRr")
        id_r, head = head, (rest.pop(0) if rest else None)
        if isinstance(head, EccptPayload):
            eccpt_r, head = head, (rest.pop(0) if rest else None)
    if head is not None:
        raise UnspecifiedError(f"unexpected {head.NAME} in the IBAKE plaintext")
    return _Content(first.data, eccpt_i, id_r.data if id_r is not None else None, eccpt_r)


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def _ids(msg: Message) -> tuple[IdrPayload | None, IdrPayload | None]:
    """(IDRi, IDRr) in the clear; more than one of a role is refused."""
    id_i = [p for p in msg.payloads if isinstance(p, IdrPayload) and p.id_role == IDRole.INITIATOR]
    id_r = [p for p in msg.payloads if isinstance(p, IdrPayload) and p.id_role == IDRole.RESPONDER]
    if len(id_i) > 1 or len(id_r) > 1:
        raise UnspecifiedError("more than one IDRi or IDRr")
    return (id_i[0] if id_i else None), (id_r[0] if id_r else None)


_P = TypeVar("_P", bound=Payload)


def _one(msg: Message, cls: type[_P], what: str, *, required: bool = True) -> Any:
    found = msg.find_all(cls)
    if len(found) > 1 or (required and not found):
        raise UnspecifiedError(f"{DataType(msg.data_type).name} must carry {'one' if required else 'at most one'} {what}")
    return found[0] if found else None


def _check_header(got: CommonHeader, sent: CommonHeader, what: str) -> None:
    """version, PRF func, CSB ID, #CS and CS ID map type as in the message answered (§4.2.2.3, §4.2.2.7)."""
    if (got.version, got.prf, got.csb_id, got.cs_id_map_type, got.n_cs) != (
            sent.version, sent.prf, sent.csb_id, sent.cs_id_map_type, sent.n_cs):
        raise AuthenticationError(f"{what}'s HDR does not match the message it answers (version, PRF, CSB ID, #CS, map)")


def _check_prf(prf: int) -> None:
    if prf not in (PRF.MIKEY_1, PRF.PRF_HMAC_SHA_256):
        raise UnsupportedPRFError(f"PRF func {prf} is not supported")


def _esk(creds: IbakeCredentials, called: bytes, when: _dt.datetime, id_i: IdrPayload, sk: bytes) -> EskPayload:
    """ESK = E(K_PUB of the called identity, IDRi || SK) (§4.2.2.1, §6.1.2, §6.1.5)."""
    return EskPayload(creds.encrypt(called, when, encode_sub_payloads([id_i, SkPayload(SecretKeyType.SK, sk)])))


def _open_esk(creds: IbakeCredentials, key: ibe.BfPrivateKey, esk: EskPayload, id_i: bytes) -> bytes:
    plain = creds.decrypt(key, esk.encr_data, "ESK")
    try:
        subs = decode_sub_payloads(plain, PayloadType.IDR)
    except MikeyDecodeError as e:
        raise UnspecifiedError(f"the ESK plaintext is not IDRi || SK: {e.message}") from None
    if (len(subs) != 2 or not isinstance(subs[0], IdrPayload) or not isinstance(subs[1], SkPayload)
            or subs[1].sk_type != SecretKeyType.SK or not subs[1].key):
        raise UnspecifiedError("the ESK plaintext is not IDRi || SK")
    if not _same(subs[0].data, id_i):
        raise AuthenticationError("the ESK names another Initiator than IDRi")
    return subs[1].key


# --- answers (§7.3, §7.4, §3.3) ----------------------------------------------------------------------


class AnswerKind(Enum):
    """Who answered an I_MESSAGE_1, as the Initiator's policy classifies R_MESSAGE_1."""

    #: The called identity (or, without the echo, the called identity that could not read I_MESSAGE_1).
    DIRECT = "direct"
    #: Another identity echoing ECCPTi: a device holding the called identity's K_PR (forking, §7.3).
    FORKED = "forked"
    #: Another identity without the echo: a diverted-to party (retargeting, §7.4).
    RETARGETED = "retargeted"
    #: A mailbox without the echo: deferred delivery, media keyed from the ESK's SK (§3.3, §7.5).
    DEFERRED = "deferred"


#: ``(called identity, answering identity, ECCPTi echoed) -> AnswerKind`` or None to refuse (Error no 7).
AnswerPolicy = Callable[[bytes, bytes, bool], AnswerKind | None]

_Names = Collection[bytes] | Callable[[bytes], bool]


def _member(names: _Names, identity: bytes) -> bool:
    return names(identity) if callable(names) else identity in names


def answer_policy(*, forks: _Names = (), retargets: _Names = (), mailboxes: _Names = ()) -> AnswerPolicy:
    """The Initiator's policy: the called identity always; other identities only as named here.

    ``forks``: device identities that may answer for the called one (§7.3); ``retargets``:
    diverted-to identities (§7.4); ``mailboxes``: deferred-delivery servers (§3.3).  Each a
    collection of identities or a predicate.
    """

    def decide(called: bytes, answering: bytes, echoed: bool) -> AnswerKind | None:
        if answering == called:
            return AnswerKind.DIRECT
        if echoed:
            return AnswerKind.FORKED if _member(forks, answering) else None
        if _member(mailboxes, answering):
            return AnswerKind.DEFERRED
        if _member(retargets, answering):
            return AnswerKind.RETARGETED
        return None

    return decide


DIRECT_ONLY: AnswerPolicy = answer_policy()


@dataclass(frozen=True)
class IbakeStep:
    """What a received IBAKE message gives: the message to send back (or None) and the keys so far.

    ``result`` is None until the side knows the session key; ``confirmed`` is True once the
    peer proved it holds the same keys (Initiator: R_MESSAGE_2's V; Responder: I_MESSAGE_2).
    """

    response: bytes | None
    result: ExchangeResult | None
    kind: AnswerKind | None = None
    responder_id: bytes | None = None
    confirmed: bool = False
    leg: int | None = None


# --- the Initiator ---------------------------------------------------------------------------------------


class IbakeLeg:
    """One answer to an I_MESSAGE_1 (one Responder device or identity) and its keys; never shows them."""

    def __init__(self, index: int, responder_id: bytes, kind: AnswerKind, echoed: bool, eccpt_r: bytes) -> None:
        self.index = index
        self.responder_id = responder_id
        self.kind = kind
        self.echoed = echoed
        self.eccpt_r = eccpt_r
        self.state = State.WAIT_RESPONSE
        self.k_session = b""
        self.mpk = b""
        self.auth_key = b""
        self.timestamp: TimestampPayload | None = None
        self.i_message_2: bytes | None = None
        self.result: ExchangeResult | None = None

    def __repr__(self) -> str:
        return f"IbakeLeg({self.index}, {self.responder_id!r}, {self.kind.value}, state={self.state.value})"


class _IbakeSide(Side):
    """A side that takes more than one message (one at a time)."""

    def __init__(self, *, replay_cache: ReplayStore | None, clock_skew: float, rng: Rng) -> None:
        super().__init__(replay_cache=replay_cache, clock_skew=clock_skew, rng=rng)
        self._busy = threading.Lock()

    def _decode(self, data: bytes) -> Message:
        msg = Message.decode(data)
        if msg.data_type == DataType.ERROR:
            raise peer_error(msg)
        return msg


class IbakeInitiator(_IbakeSide):
    """The IBAKE Initiator (§4.2.2): I_MESSAGE_1 out; per answer, R_MESSAGE_1 in, I_MESSAGE_2 out,
    R_MESSAGE_2 in.

    ``id_i``/``id_r`` are the identities (IDR ID data); ``credentials`` hold the own K_PRs and the
    KMS parameters.  ``answers`` decides who may answer (:func:`answer_policy`; default: only
    ``id_r``).  ``esk`` puts an ESK for ``id_r`` into I_MESSAGE_1 already.  ``ec_private`` fixes x
    (tests only).  A bad answer raises its error and leaves the Initiator waiting for others.
    """

    MODE: ClassVar[str] = "ibake"

    def __init__(
        self,
        credentials: IbakeCredentials,
        id_i: bytes,
        id_r: bytes,
        *,
        answers: AnswerPolicy = DIRECT_ONLY,
        curve: int = ECCCurve.P_256,
        prf: int = PRF.PRF_HMAC_SHA_256,
        crypto_sessions: Sequence[CryptoSessionSpec] | None = None,
        policies: Sequence[SecurityPolicyPayload] | None = None,
        csb_id: int | None = None,
        rand: bytes | None = None,
        cs_id_map_type: int = CSIdMapType.SRTP_ID,
        id_type: int = IDType.URI,
        esk: bool = False,
        sk: bytes | None = None,
        mpk_length: int = 32,
        tgk_length: int = 32,
        ec_private: int | None = None,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        rng: Rng = os.urandom,
    ) -> None:
        super().__init__(replay_cache=None, clock_skew=clock_skew, rng=rng)
        _check_prf(prf)
        self.credentials = credentials
        self.id_i = _idr(IDRole.INITIATOR, id_i, id_type)
        self.id_r = _idr(IDRole.RESPONDER, id_r, id_type)
        self.id_type = id_type
        self.answers = answers
        self.curve = int(curve)
        self._x = _generate(self.curve, ec_private)
        self.eccpt_i = _eccpt(self.curve, self._x.public_key())
        self.prf = int(prf)
        self.specs = list(crypto_sessions) if crypto_sessions else [CryptoSessionSpec()]
        self.policies = list(policies) if policies is not None else [shared_default_srtp_policy(0)]
        self.csb_id = csb_id if csb_id is not None else random_csb_id(rng)
        self.rand = rand if rand is not None else rng(16)
        self.cs_id_map_type = cs_id_map_type
        self.send_esk = esk
        self._sk = sk if sk is not None else rng(SK_LENGTH)
        self.mpk_length = mpk_length
        self.tgk_length = tgk_length
        self.header: CommonHeader | None = None
        self.timestamp: TimestampPayload | None = None
        self.i_message: bytes | None = None
        self.legs: list[IbakeLeg] = []

    def __repr__(self) -> str:
        return f"IbakeInitiator(csb_id={self.csb_id:08x}, legs={len(self.legs)}, state={self.state.value})"

    def export_secrets(self) -> tuple[int, bytes]:
        """(x, SK): what a stateless Initiator keeps between I_MESSAGE_1 and the answers (keep it secret)."""
        return self._x.private_numbers().private_value, self._sk

    @classmethod
    def from_i_message(
        cls,
        credentials: IbakeCredentials,
        i_message: bytes,
        *,
        ec_private: int,
        sk: bytes,
        answers: AnswerPolicy = DIRECT_ONLY,
        curve: int = ECCCurve.P_256,
        mpk_length: int = 32,
        tgk_length: int = 32,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
    ) -> IbakeInitiator:
        """The Initiator that sent *i_message* (a stateless ``complete``), from it and :meth:`export_secrets`.

        The IBAKE payload is encrypted to the Responder, so x (and ``curve``, which must be the one
        used) is not checked here: a wrong one shows as an R_MESSAGE_1 echoing another ECCPTi (Error no 0).
        """
        msg = Message.decode(i_message)
        if msg.data_type != DataType.IBAKE_I_MESSAGE_1:
            raise UnsupportedDataTypeError("not an IBAKE I_MESSAGE_1")
        t: TimestampPayload = _one(msg, TimestampPayload, "T")
        rand_p: RandPayload = _one(msg, RandPayload, "RAND")
        id_i, id_r = _ids(msg)
        if id_i is None or id_r is None:
            raise UnspecifiedError("I_MESSAGE_1 must carry IDRi and IDRr")
        h = msg.header
        side = cls(credentials, id_i.data, id_r.data, answers=answers, prf=int(h.prf), csb_id=h.csb_id,
                   rand=rand_p.rand, policies=msg.find_all(SecurityPolicyPayload), cs_id_map_type=int(h.cs_id_map_type),
                   id_type=int(id_i.id_type), esk=msg.find(EskPayload) is not None, sk=sk, mpk_length=mpk_length,
                   tgk_length=tgk_length, ec_private=ec_private, clock_skew=clock_skew,
                   curve=curve)
        side.header, side.timestamp, side.i_message = h, t, msg.raw_bytes()
        side.state = State.WAIT_RESPONSE
        return side

    @property
    def results(self) -> list[ExchangeResult]:
        """The keys of every answer so far (confirmed or not, see ``extras["confirmed"]``)."""
        return [leg.result for leg in self.legs if leg.result is not None]

    def create_message(self, now: float) -> bytes:
        """I_MESSAGE_1 = HDR, T, RAND, IDRi, IDRr, {SP}, IBAKE, [ESK] (§4.2.2.1)."""
        self.require_state(State.START)
        try:
            hdr = build_header(DataType.IBAKE_I_MESSAGE_1, self.csb_id, self.specs, map_type=self.cs_id_map_type,
                               v=True, prf=self.prf)
            t = TimestampPayload.ntp_utc(now)
            when = _when(t, now)
            ibake_p = IbakePayload(self.credentials.encrypt(
                self.id_r.data, when, _content(self.id_i, self.eccpt_i, self.id_r, None)))
            payloads: list[Payload] = [t, RandPayload(self.rand), self.id_i, self.id_r, *self.policies, ibake_p]
            if self.send_esk:
                payloads.append(_esk(self.credentials, self.id_r.data, when, self.id_i, self._sk))
            self.i_message = Message(hdr, tuple(payloads)).encode()
        except Exception:
            self.state = State.FAILED
            raise
        self.header, self.timestamp = hdr, t
        self.state = State.WAIT_RESPONSE
        return self.i_message

    def receive(self, data: bytes, now: float) -> IbakeStep:
        """R_MESSAGE_1 (a new answer: returns its I_MESSAGE_2) or R_MESSAGE_2 (completes an answer)."""
        self.require_state(State.WAIT_RESPONSE)
        if not self._busy.acquire(blocking=False):
            raise StateError("IbakeInitiator is handling another message")
        try:
            msg = self._decode(data)
            if msg.data_type == DataType.IBAKE_R_MESSAGE_1:
                return self._on_r_message_1(msg, now)
            if msg.data_type == DataType.IBAKE_R_MESSAGE_2:
                return self._on_r_message_2(msg, now)
            dt = getattr(msg.data_type, "name", msg.data_type)
            raise UnsupportedDataTypeError(f"the IBAKE Initiator does not take data type {dt}")
        finally:
            self._busy.release()

    def _own_key(self, when: _dt.datetime) -> ibe.BfPrivateKey:
        key = self.credentials.private_key(self.id_i.data, when)
        if key is None:
            raise KeyMaterialError(f"no K_PR for {self.id_i.data!r} in the key period of {when:%Y-%m-%d %H:%M}")
        return key

    def _on_r_message_1(self, msg: Message, now: float) -> IbakeStep:
        """R_MESSAGE_1 = HDR, T, IDRi, IDRr, IBAKE (§4.2.2.3, §4.2.2.4)."""
        hdr, t_own = self.header, self.timestamp
        if hdr is None or t_own is None:
            raise StateError("no I_MESSAGE_1 has been built")
        _check_header(msg.header, hdr, "R_MESSAGE_1")
        t = _one(msg, TimestampPayload, "T")
        if t.ts_type != t_own.ts_type or t.ts_value != t_own.ts_value:
            raise InvalidTimestampError("R_MESSAGE_1 must carry I_MESSAGE_1's timestamp (§4.2.2.3)")
        id_i, id_r = _ids(msg)
        if id_i is None or id_r is None:
            raise UnspecifiedError("R_MESSAGE_1 must carry IDRi and IDRr (§4.2.2.3)")
        if id_i.data != self.id_i.data:
            raise AuthenticationError("R_MESSAGE_1's IDRi is not this Initiator")
        ibake_p: IbakePayload = _one(msg, IbakePayload, "IBAKE")
        when = _when(t, now)
        content = _parse_content(self.credentials.decrypt(self._own_key(when), ibake_p.encr_data, "IBAKE"))
        if not _same(content.id_i, self.id_i.data) or content.id_r is None or not _same(content.id_r, id_r.data):
            raise AuthenticationError("the identities inside R_MESSAGE_1's IBAKE differ from IDRi/IDRr")
        if content.eccpt_r is None:
            raise UnspecifiedError("R_MESSAGE_1's IBAKE carries no ECCPTr")
        echoed = content.eccpt_i is not None
        if content.eccpt_i is not None and not (
            content.eccpt_i.curve == self.eccpt_i.curve and _same(content.eccpt_i.point, self.eccpt_i.point)
        ):
            raise AuthenticationError("R_MESSAGE_1 echoes another ECCPTi than this Initiator's [x]P (§4.2.2.4)")
        peer = _peer_point(content.eccpt_r, self.curve)
        responder = id_r.data
        for leg in self.legs:
            if leg.responder_id == responder and _same(leg.eccpt_r, content.eccpt_r.point):
                raise ReplayError("this R_MESSAGE_1 was already taken")
        kind = self.answers(self.id_r.data, responder, echoed)
        if kind is None:
            raise UnsupportedIDError(f"{responder!r} answered for {self.id_r.data!r}; the answer policy refuses it")
        leg = IbakeLeg(len(self.legs), responder, kind, echoed, content.eccpt_r.point)
        try:
            leg.k_session = session_point(self.curve, self._x, peer)
        except CryptoError as e:
            raise AuthenticationError(f"unusable ECCPTr: {e.message}") from None
        leg.mpk, tgk = derive_mpk_tgk(leg.k_session, self.rand, self.prf, self.mpk_length, self.tgk_length)
        if kind is AnswerKind.DEFERRED:
            tgk = _tgk_from_sk(self._sk, self.rand, self.prf, self.tgk_length)
        leg.auth_key = v_auth_key(leg.mpk, self.csb_id, self.rand, self.prf)
        merged = merge_responder_ssrcs(hdr, msg.header)
        # I_MESSAGE_2 (§4.2.2.5)
        t2 = TimestampPayload.ntp_utc(now)
        when2 = _when(t2, now)
        id_r2 = _idr(IDRole.RESPONDER, responder, self.id_type)
        plain = _content(self.id_i, None if echoed else self.eccpt_i, id_r2, content.eccpt_r)
        payloads: list[Payload] = [t2, RandPayload(self.rand), self.id_i, id_r2,
                                   IbakePayload(self.credentials.encrypt(responder, when2, plain))]
        if not echoed or self.send_esk:
            payloads.append(_esk(self.credentials, self.id_r.data, when2, self.id_i, self._sk))
        hdr2 = CommonHeader(DataType.IBAKE_I_MESSAGE_2, self.csb_id, merged.cs_id_map, merged.cs_id_map_type, True,
                            self.prf, merged.version, merged.cs_count)
        leg.i_message_2 = Message(hdr2, tuple(payloads)).encode()
        leg.timestamp = t2
        sessions = derive_crypto_sessions(tgk, merged, self.rand, self.policies)
        leg.result = ExchangeResult(
            mode=self.MODE, csb_id=self.csb_id, tgk=tgk, rand=self.rand, prf=self.prf, crypto_sessions=sessions,
            authenticated=echoed, header=merged, policies=tuple(self.policies), initiator_id=self.id_i.data,
            responder_id=responder,
            extras={"answer": kind.value, "confirmed": False, "curve": self.curve, "called_id": self.id_r.data,
                    "leg": leg.index},
        )
        self.legs.append(leg)
        return IbakeStep(leg.i_message_2, leg.result, kind, responder, False, leg.index)

    def _on_r_message_2(self, msg: Message, now: float) -> IbakeStep:
        """R_MESSAGE_2 = HDR, T, [IDRi], [IDRr], [IBAKE], V (§4.2.2.7, §4.2.2.8)."""
        t: TimestampPayload = _one(msg, TimestampPayload, "T")
        v: VerificationPayload = _one(msg, VerificationPayload, "V")
        if msg.payloads[-1] is not v:
            raise UnspecifiedError("V must be the last payload of R_MESSAGE_2")
        id_i, id_r = _ids(msg)
        if id_i is not None and id_i.data != self.id_i.data:
            raise AuthenticationError("R_MESSAGE_2's IDRi is not this Initiator")
        mac_alg = v_mac_alg(self.prf)
        if v.auth_alg != mac_alg:
            raise UnsupportedMACError(f"V uses MAC alg {v.auth_alg}; this exchange uses {mac_alg}")
        n = kemac_crypto.mac_len(mac_alg)
        matched: IbakeLeg | None = None
        if self.header is None:
            raise StateError("no I_MESSAGE_1 has been built")
        _check_header(msg.header, self.header, "R_MESSAGE_2")
        for leg in self.legs:
            lt = leg.timestamp
            if lt is None or (t.ts_type, t.ts_value) != (lt.ts_type, lt.ts_value):
                continue
            if id_r is not None and id_r.data != leg.responder_id:
                continue
            want = kemac_crypto.compute_mac(mac_alg, leg.auth_key,
                                            _mac_coverage(msg, n, self.id_i.data, leg.responder_id))
            if _same(want, v.ver_data):
                matched = leg
                break
        if matched is None:
            raise AuthenticationError("R_MESSAGE_2's V verifies for no answer waiting for it (§5.4)")
        if matched.state is not State.WAIT_RESPONSE:
            raise ReplayError("this answer's R_MESSAGE_2 was already taken")
        ibake_p: IbakePayload | None = _one(msg, IbakePayload, "IBAKE", required=False)
        if ibake_p is None and not matched.echoed:
            raise UnspecifiedError("R_MESSAGE_2 must echo ECCPTi in an IBAKE payload (§4.2.2.7)")
        if ibake_p is not None:
            content = _parse_content(self.credentials.decrypt(self._own_key(_when(t, now)), ibake_p.encr_data,
                                                              "IBAKE"))
            if (not _same(content.id_i, self.id_i.data) or content.eccpt_i is None
                    or not _same(content.eccpt_i.point, self.eccpt_i.point)):
                raise AuthenticationError("R_MESSAGE_2's IBAKE does not echo IDRi and ECCPTi (§4.2.2.7)")
        matched.state = State.DONE
        old = matched.result
        if old is None:  # pragma: no cover - set with the leg
            raise StateError("answer without keys")
        extras = dict(old.extras)
        extras["confirmed"] = True
        matched.result = ExchangeResult(
            mode=old.mode, csb_id=old.csb_id, tgk=old.tgk, rand=old.rand, prf=old.prf,
            crypto_sessions=old.crypto_sessions, authenticated=True, header=old.header, policies=old.policies,
            initiator_id=old.initiator_id, responder_id=old.responder_id, extras=extras,
        )
        return IbakeStep(None, matched.result, matched.kind, matched.responder_id, True, matched.index)


# --- the Responder ------------------------------------------------------------------------------------


class IbakeResponder(_IbakeSide):
    """The IBAKE Responder (§4.2.2): I_MESSAGE_1 in, R_MESSAGE_1 out, I_MESSAGE_2 in, R_MESSAGE_2 out.

    ``id_r`` is the identity it answers with (IDRr of R_MESSAGE_1): a forked device's own identity,
    a diverted-to or mailbox identity; default the called one.  It decrypts I_MESSAGE_1 with its
    K_PR for the called identity when it holds one (forking: the common identity's); otherwise, with
    ``answer_unreadable``, it answers with ECCPTr only (§4.2.2.2), else Error no 7.  ``mailbox``: a
    deferred-delivery server -- its result holds no media keys, only the message to forward
    (``extras["deferred_messages"]``, see :func:`open_deferred`).  ``curve``: the curve used when
    I_MESSAGE_1 could not be read; ``allowed_curves`` the curves accepted.
    """

    MODE: ClassVar[str] = "ibake"

    def __init__(
        self,
        credentials: IbakeCredentials,
        id_r: bytes | None = None,
        *,
        answer_unreadable: bool = True,
        mailbox: bool = False,
        curve: int = ECCCurve.P_256,
        allowed_curves: Collection[int] = SUPPORTED_CURVES,
        own_ssrcs: Sequence[int] = (),
        id_type: int = IDType.URI,
        mpk_length: int = 32,
        tgk_length: int = 32,
        ec_private: int | None = None,
        replay_cache: ReplayStore | None = None,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        rng: Rng = os.urandom,
    ) -> None:
        super().__init__(replay_cache=replay_cache, clock_skew=clock_skew, rng=rng)
        self.credentials = credentials
        self.own_id = id_r
        self.answer_unreadable = answer_unreadable
        self.mailbox = mailbox
        self.curve = int(curve)
        self.allowed_curves = frozenset(int(c) for c in allowed_curves)
        self.own_ssrcs = list(own_ssrcs)
        self.id_type = id_type
        self.mpk_length = mpk_length
        self.tgk_length = tgk_length
        self._fixed_y = ec_private
        self._y: ec.EllipticCurvePrivateKey | None = None
        self.eccpt_r: EccptPayload | None = None
        self.eccpt_i: EccptPayload | None = None
        self.id_i: IdrPayload | None = None
        self.id_r: IdrPayload | None = None
        self.called: bytes | None = None
        self.header: CommonHeader | None = None
        self.rand: bytes | None = None
        self.policies: tuple[SecurityPolicyPayload, ...] = ()
        self.echoed = False
        self.i_message_1 = b""
        self.k_session = b""
        self.result: ExchangeResult | None = None

    def __repr__(self) -> str:
        return f"IbakeResponder(state={self.state.value})"

    def export_ec_private(self) -> int:
        """y, for a stateless Responder that answers I_MESSAGE_2 later (:meth:`resume`); keep it secret."""
        if self._y is None:
            raise StateError("no I_MESSAGE_1 has been taken")
        return self._y.private_numbers().private_value

    @classmethod
    def resume(cls, credentials: IbakeCredentials, i_message_1: bytes, ec_private: int, *, id_r: bytes | None = None,
               mailbox: bool = False, curve: int = ECCCurve.P_256, own_ssrcs: Sequence[int] = (),
               replay_cache: ReplayStore | None = None, clock_skew: float = DEFAULT_CLOCK_SKEW) -> IbakeResponder:
        """The Responder that answered *i_message_1* with y = *ec_private*, waiting for I_MESSAGE_2.

        I_MESSAGE_1 is processed again at its own time (its replay check in a private cache; the
        replay check that counts is the one of the first pass), so the state is the same as then.
        """
        side = cls(credentials, id_r, mailbox=mailbox, curve=curve, own_ssrcs=own_ssrcs, ec_private=ec_private,
                   clock_skew=clock_skew)
        msg = Message.decode(i_message_1)
        t = msg.find(TimestampPayload)
        when = t.unix_time() if t is not None else None
        if when is None:
            raise InvalidTimestampError("I_MESSAGE_1 needs an NTP timestamp")
        side.receive(i_message_1, when)
        if replay_cache is not None:
            side.replay_cache = replay_cache
        return side

    def receive(self, data: bytes, now: float) -> IbakeStep:
        """I_MESSAGE_1 -> R_MESSAGE_1; I_MESSAGE_2 -> R_MESSAGE_2 and the keys.

        On failure raises a :class:`~mikey.errors.MikeyError` whose ``error_message`` is the Error
        message to send (unauthenticated, RFC 3830 §5.1.2); the Responder is then FAILED.
        """
        if self.state in (State.DONE, State.FAILED):
            raise StateError(f"IbakeResponder is {self.state.value}; it takes no more messages")
        if not self._busy.acquire(blocking=False):
            raise StateError("IbakeResponder is handling another message")
        msg: Message | None = None
        try:
            msg = self._decode(data)
            if self.state is State.START and msg.data_type == DataType.IBAKE_I_MESSAGE_1:
                return self._on_i_message_1(msg, now)
            if self.state is State.WAIT_RESPONSE and msg.data_type == DataType.IBAKE_I_MESSAGE_2:
                return self._on_i_message_2(msg, now)
            dt = getattr(msg.data_type, "name", msg.data_type)
            raise UnsupportedDataTypeError(f"the IBAKE Responder in state {self.state.value} does not take {dt}")
        except MikeyError as exc:
            self.state = State.FAILED
            if exc.error_message is None and exc.err_no is not None and not isinstance(exc, PeerError):
                self._attach_error(exc, msg, data, now)
            raise
        finally:
            self._busy.release()

    def _attach_error(self, exc: MikeyError, msg: Message | None, data: bytes, now: float) -> None:
        err_no = int(exc.err_no) if isinstance(exc, MikeyProtocolError | MikeyDecodeError) and exc.err_no is not None \
            else 12
        csb_id = msg.csb_id if msg is not None else (int.from_bytes(data[4:8], "big") if len(data) >= 8 else 0)
        t = msg.find(TimestampPayload) if msg is not None else None
        prf = int(msg.header.prf) if msg is not None and msg.header.prf in (0, 1) else 0
        try:
            exc.error_message = build_error_message(csb_id, [err_no], t or TimestampPayload.ntp_utc(now), prf=prf)
        except MikeyError:  # pragma: no cover - a received T always re-encodes
            exc.error_message = build_error_message(csb_id, [err_no], TimestampPayload.ntp_utc(now), prf=prf)

    def _key(self, identity: bytes, when: _dt.datetime) -> ibe.BfPrivateKey | None:
        return self.credentials.private_key(identity, when)

    def _on_i_message_1(self, msg: Message, now: float) -> IbakeStep:
        """I_MESSAGE_1 processing (§4.2.2.2) and R_MESSAGE_1 (§4.2.2.3)."""
        t: TimestampPayload = _one(msg, TimestampPayload, "T")
        rand_p: RandPayload = _one(msg, RandPayload, "RAND")
        ibake_p: IbakePayload = _one(msg, IbakePayload, "IBAKE")
        esk_p: EskPayload | None = _one(msg, EskPayload, "ESK", required=False)
        id_i, id_r = _ids(msg)
        if id_i is None or id_r is None:
            raise UnspecifiedError("I_MESSAGE_1 must carry IDRi and IDRr (§4.2.2.1)")
        _check_prf(int(msg.header.prf))
        admission = self.admit(msg, t, now, id_i.data)
        when = _when(t, now)
        called = id_r.data
        answer_id = self.own_id if self.own_id is not None else called
        key = self._key(called, when)
        curve = self.curve
        eccpt_i: EccptPayload | None = None
        if key is not None:
            content = _parse_content(self.credentials.decrypt(key, ibake_p.encr_data, "IBAKE"))
            if not _same(content.id_i, id_i.data) or content.id_r is None or not _same(content.id_r, called):
                raise AuthenticationError("the identities inside I_MESSAGE_1's IBAKE differ from IDRi/IDRr (§7.2)")
            if content.eccpt_i is None or content.eccpt_r is not None:
                raise UnspecifiedError("I_MESSAGE_1's IBAKE must carry ECCPTi alone")
            eccpt_i = content.eccpt_i
            curve = int(eccpt_i.curve)
            if curve not in self.allowed_curves:
                raise UnsupportedDHGroupError(f"ECC curve {curve} is not allowed here")
            if esk_p is not None:  # the ESK must be for us too; a mailbox keeps it with the message
                _open_esk(self.credentials, key, esk_p, id_i.data)
        elif not self.answer_unreadable:
            raise UnsupportedIDError(f"no K_PR for the called identity {called!r} (§4.2.2.2)")
        if self._key(answer_id, when) is None:
            raise UnsupportedIDError(f"this Responder holds no K_PR for its own identity {answer_id!r}")
        self._y = _generate(curve, self._fixed_y)
        self.eccpt_r = _eccpt(curve, self._y.public_key())
        if eccpt_i is not None:
            try:
                self.k_session = session_point(curve, self._y, _peer_point(eccpt_i, curve))
            except CryptoError as e:
                raise AuthenticationError(f"unusable ECCPTi: {e.message}") from None
        self.remember(admission)
        self.curve = curve
        self.eccpt_i = eccpt_i
        self.echoed = eccpt_i is not None
        self.id_i = id_i
        self.id_r = _idr(IDRole.RESPONDER, answer_id, self.id_type)
        self.called = called
        self.i_message_1 = msg.raw_bytes()
        self.rand = rand_p.rand
        self.policies = tuple(msg.find_all(SecurityPolicyPayload))
        header = fill_ssrcs(msg.header, self.own_ssrcs)
        self.header = header
        plain = _content(_idr(IDRole.INITIATOR, id_i.data, id_i.id_type), eccpt_i, self.id_r, self.eccpt_r)
        ibake_r = IbakePayload(self.credentials.encrypt(id_i.data, when, plain))
        hdr = CommonHeader(DataType.IBAKE_R_MESSAGE_1, header.csb_id, header.cs_id_map, header.cs_id_map_type, True,
                           header.prf, header.version, header.cs_count)
        response = Message(hdr, (t, id_i, self.id_r, ibake_r)).encode()
        self.state = State.WAIT_RESPONSE
        return IbakeStep(response, None, None, answer_id, False)

    def _on_i_message_2(self, msg: Message, now: float) -> IbakeStep:
        """I_MESSAGE_2 processing (§4.2.2.6) and R_MESSAGE_2 (§4.2.2.7)."""
        id_i0, own, header, rand, eccpt_r, y = self.id_i, self.id_r, self.header, self.rand, self.eccpt_r, self._y
        if id_i0 is None or own is None or header is None or rand is None or eccpt_r is None or y is None:
            raise StateError("no I_MESSAGE_1 was taken")
        _check_header(msg.header, header, "I_MESSAGE_2")
        t: TimestampPayload = _one(msg, TimestampPayload, "T")
        rand_p: RandPayload = _one(msg, RandPayload, "RAND")
        ibake_p: IbakePayload = _one(msg, IbakePayload, "IBAKE")
        esk_p: EskPayload | None = _one(msg, EskPayload, "ESK", required=False)
        id_i, id_r = _ids(msg)
        if id_i is None or id_r is None:
            raise UnspecifiedError("I_MESSAGE_2 must carry IDRi and IDRr (§4.2.2.5)")
        if id_i.data != id_i0.data or id_r.data != own.data:
            raise AuthenticationError("I_MESSAGE_2's IDRi/IDRr are not this exchange's (§4.2.2.5)")
        if not _same(rand_p.rand, rand):
            raise AuthenticationError("I_MESSAGE_2's RAND is not I_MESSAGE_1's")
        admission = self.admit(msg, t, now, id_i.data)
        when = _when(t, now)
        key = self._key(own.data, when)
        if key is None:
            raise UnsupportedIDError(f"no K_PR for {own.data!r} in the key period of I_MESSAGE_2")
        content = _parse_content(self.credentials.decrypt(key, ibake_p.encr_data, "IBAKE"))
        if not _same(content.id_i, id_i.data) or content.id_r is None or not _same(content.id_r, own.data):
            raise AuthenticationError("the identities inside I_MESSAGE_2's IBAKE differ from IDRi/IDRr")
        if content.eccpt_r is None or not _same(content.eccpt_r.point, eccpt_r.point):
            raise AuthenticationError("I_MESSAGE_2 does not echo this Responder's ECCPTr (§4.2.2.5)")
        resend = content.eccpt_i
        if self.eccpt_i is None:
            if resend is None:
                raise UnspecifiedError("I_MESSAGE_2 must carry ECCPTi: I_MESSAGE_1 could not be read (§4.2.2.5)")
            try:
                self.k_session = session_point(self.curve, y, _peer_point(resend, self.curve))
            except CryptoError as e:
                raise AuthenticationError(f"unusable ECCPTi: {e.message}") from None
        elif resend is not None and not _same(resend.point, self.eccpt_i.point):
            raise AuthenticationError("I_MESSAGE_2 carries another ECCPTi than I_MESSAGE_1")
        self.remember(admission)
        prf = int(header.prf)
        mpk, tgk = derive_mpk_tgk(self.k_session, rand, prf, self.mpk_length, self.tgk_length)
        auth_key = v_auth_key(mpk, header.csb_id, rand, prf)
        payloads: list[Payload] = [t, id_i, own]
        if resend is not None:
            plain = _content(_idr(IDRole.INITIATOR, id_i.data, id_i.id_type), resend, None, None)
            payloads.append(IbakePayload(self.credentials.encrypt(id_i.data, when, plain)))
        hdr2 = CommonHeader(DataType.IBAKE_R_MESSAGE_2, header.csb_id, header.cs_id_map, header.cs_id_map_type, False,
                            header.prf, header.version, header.cs_count)
        response = _with_v(hdr2, payloads, v_mac_alg(prf), auth_key, id_i.data, own.data)
        extras: dict[str, Any] = {"answer": "mailbox" if self.mailbox else "responder", "confirmed": True,
                                  "curve": self.curve, "called_id": self.called, "echoed": self.echoed}
        if self.mailbox:
            sessions: tuple[Any, ...] = ()
            tgk = b""
            extras["deferred_messages"] = (self.i_message_1, msg.raw_bytes())
            extras["esk"] = esk_p is not None
        else:
            sessions = derive_crypto_sessions(tgk, header, rand, self.policies)
        self.result = ExchangeResult(
            mode=self.MODE, csb_id=header.csb_id, tgk=tgk, rand=rand, prf=prf, crypto_sessions=sessions,
            authenticated=True, header=header, policies=self.policies, initiator_id=id_i.data,
            responder_id=own.data, extras=extras,
        )
        self.state = State.DONE
        return IbakeStep(response, self.result, None, own.data, True)


# --- deferred delivery (§3.3, §7.5) ------------------------------------------------------------------


def open_deferred(messages: bytes | Sequence[bytes], credentials: IbakeCredentials, identity: bytes, *,
                  now: float, tgk_length: int = 32) -> ExchangeResult:
    """The media keys of stored I_MESSAGEs (deferred delivery, §3.3): decrypt the ESK with *identity*'s
    K_PR for the message's key period, TGK = PRF(SK, TGK label) (mikey's profile).

    *messages* are what the mailbox kept (``extras["deferred_messages"]``: I_MESSAGE_1, which has the
    SPs, and I_MESSAGE_2, which has the ESK and the HDR with the SSRCs); the last one with an ESK is
    used.  They are old, so T is not checked for freshness.  ``authenticated`` is False: the mailbox
    authenticated the Initiator (§7.5); the ESK itself only says who the Initiator claims to be.
    """
    raw = [messages] if isinstance(messages, bytes | bytearray) else list(messages)
    decoded = [Message.decode(m) for m in raw]
    if not decoded or any(m.data_type not in (DataType.IBAKE_I_MESSAGE_1, DataType.IBAKE_I_MESSAGE_2)
                          for m in decoded):
        raise UnsupportedDataTypeError("deferred delivery needs the IBAKE I_MESSAGEs")
    with_esk = [m for m in decoded if m.find(EskPayload) is not None]
    if not with_esk:
        raise UnspecifiedError("no message carries an ESK")
    msg = with_esk[-1]
    if any(m.csb_id != msg.csb_id for m in decoded):
        raise UnspecifiedError("the messages belong to different exchanges")
    t: TimestampPayload = _one(msg, TimestampPayload, "T")
    rand_p: RandPayload = _one(msg, RandPayload, "RAND")
    esk_p: EskPayload = _one(msg, EskPayload, "ESK")
    id_i, _ = _ids(msg)
    if id_i is None:
        raise UnspecifiedError("the message carries no IDRi")
    _check_prf(int(msg.header.prf))
    key = credentials.private_key(identity, _when(t, now))
    if key is None:
        raise UnsupportedIDError(f"no K_PR for {identity!r} in the message's key period")
    sk = _open_esk(credentials, key, esk_p, id_i.data)
    prf = int(msg.header.prf)
    tgk = _tgk_from_sk(sk, rand_p.rand, prf, tgk_length)
    policies = tuple(p for m in decoded for p in m.find_all(SecurityPolicyPayload))
    return ExchangeResult(
        mode="ibake", csb_id=msg.csb_id, tgk=tgk, rand=rand_p.rand, prf=prf,
        crypto_sessions=derive_crypto_sessions(tgk, msg.header, rand_p.rand, policies), authenticated=False,
        header=msg.header, policies=policies, initiator_id=id_i.data, responder_id=identity,
        extras={"answer": AnswerKind.DEFERRED.value, "deferred": True},
    )


# --- CSB update (§5.3) ---------------------------------------------------------------------------------


def _chain(id_i: IdrPayload, id_r: IdrPayload, mine: EccptPayload | None, theirs: EccptPayload | None,
           i_am_initiator: bool) -> bytes:
    """IDRi || {ECCPT} || IDRr || {ECCPT}: each EC value right after its owner's identity (mikey's profile)."""
    own_first = (mine, theirs) if i_am_initiator else (theirs, mine)
    return _content(id_i, own_first[0], id_r, own_first[1])


class _UpdateBase:
    """What both update sides share: the established exchange (one side's result) and the own role."""

    def __init__(self, credentials: IbakeCredentials, established: ExchangeResult, own_id: bytes, *,
                 id_type: int, ec_private: int | None, mpk_length: int, tgk_length: int, clock_skew: float) -> None:
        if established.mode != IbakeInitiator.MODE or established.initiator_id is None \
                or established.responder_id is None:
            raise ValueError("a CSB update needs the result of an IBAKE exchange (with both identities)")
        if own_id not in (established.initiator_id, established.responder_id):
            raise ValueError("own_id must be the established exchange's IDRi or IDRr")
        self.credentials = credentials
        self.established = established
        self.i_am_initiator = own_id == established.initiator_id
        self.own_id = own_id
        self.peer_id = established.responder_id if self.i_am_initiator else established.initiator_id
        self.id_i = _idr(IDRole.INITIATOR, established.initiator_id, id_type)
        self.id_r = _idr(IDRole.RESPONDER, established.responder_id, id_type)
        self.curve = int(established.extras.get("curve", ECCCurve.P_256))
        self._fixed = ec_private
        self.mpk_length = mpk_length
        self.tgk_length = tgk_length
        self.clock_skew = clock_skew
        self.k_session = b""
        self.state = State.START

    def __repr__(self) -> str:
        return f"{type(self).__name__}(csb_id={self.established.csb_id:08x}, state={self.state.value})"

    def _check_ids(self, msg: Message) -> None:
        id_i, id_r = _ids(msg)
        if (id_i is not None and id_i.data != self.id_i.data) or (id_r is not None and id_r.data != self.id_r.data):
            raise AuthenticationError("the update names other parties than the established exchange (§5.3)")

    def _open(self, ibake_p: IbakePayload | None, when: _dt.datetime) -> _Content:
        if ibake_p is None:
            raise UnspecifiedError("mikey updates a CSB with new EC Diffie-Hellman values only: IBAKE is needed")
        key = self.credentials.private_key(self.own_id, when)
        if key is None:
            raise UnsupportedIDError(f"no K_PR for {self.own_id!r} in the key period of the update")
        c = _parse_content(self.credentials.decrypt(key, ibake_p.encr_data, "IBAKE"))
        if not _same(c.id_i, self.id_i.data) or c.id_r is None or not _same(c.id_r, self.id_r.data):
            raise AuthenticationError("the identities inside the update's IBAKE are not the established ones")
        return c

    def _result(self, header: CommonHeader, policies: Sequence[SecurityPolicyPayload], *,
                authenticated: bool) -> tuple[ExchangeResult, bytes]:
        e = self.established
        mpk, tgk = derive_mpk_tgk(self.k_session, e.rand, e.prf, self.mpk_length, self.tgk_length)
        sessions = derive_crypto_sessions(tgk, header, e.rand, policies)
        extras = {**{k: v for k, v in e.extras.items() if k not in ("leg",)}, "update": True,
                  "confirmed": authenticated}
        result = ExchangeResult(
            mode=e.mode, csb_id=e.csb_id, tgk=tgk, rand=e.rand, prf=e.prf, crypto_sessions=sessions,
            authenticated=authenticated, header=header, policies=tuple(policies), initiator_id=e.initiator_id,
            responder_id=e.responder_id, extras=extras,
        )
        return result, v_auth_key(mpk, e.csb_id, e.rand, e.prf)


class IbakeUpdateInitiator(_UpdateBase):
    """Starts a CSB update of an established IBAKE exchange (§5.3), from either side.

    Update I_MESSAGE_1 = HDR, T, IDRi, IDRr, {SP}, IBAKE (no RAND) with a new EC value for the peer;
    update R_MESSAGE_1 = HDR, T, IDRi, IDRr, IBAKE, V: the peer's new value, V keyed from the new
    K_SESSION's MPK (§5.2).  Keys: the new [x'][y']P with the initial RAND; the same CSB ID.
    ``established`` is this side's result of the initial exchange, ``own_id`` this side's identity.
    ``crypto_sessions``/``policies`` change the bundle's crypto sessions (default: the established ones).
    """

    def __init__(
        self,
        credentials: IbakeCredentials,
        established: ExchangeResult,
        own_id: bytes,
        *,
        crypto_sessions: Sequence[CryptoSessionSpec] | None = None,
        policies: Sequence[SecurityPolicyPayload] | None = None,
        id_type: int = IDType.URI,
        ec_private: int | None = None,
        mpk_length: int = 32,
        tgk_length: int = 32,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
    ) -> None:
        super().__init__(credentials, established, own_id, id_type=id_type, ec_private=ec_private,
                         mpk_length=mpk_length, tgk_length=tgk_length, clock_skew=clock_skew)
        self.specs = list(crypto_sessions) if crypto_sessions is not None else None
        self.new_policies = list(policies) if policies is not None else None
        self._x = _generate(self.curve, ec_private)
        self.eccpt = _eccpt(self.curve, self._x.public_key())
        self.header: CommonHeader | None = None
        self.timestamp: TimestampPayload | None = None
        self.result: ExchangeResult | None = None

    def create_message(self, now: float) -> bytes:
        """The update I_MESSAGE_1 (§5.3)."""
        if self.state is not State.START:
            raise StateError(f"IbakeUpdateInitiator is {self.state.value}")
        e = self.established
        if self.specs is not None:
            hdr = build_header(DataType.IBAKE_I_MESSAGE_1, e.csb_id, self.specs, map_type=e.header.cs_id_map_type,
                               v=True, prf=e.prf)
        else:
            h = e.header
            hdr = CommonHeader(DataType.IBAKE_I_MESSAGE_1, e.csb_id, h.cs_id_map, h.cs_id_map_type, True, e.prf,
                               h.version, h.cs_count)
        t = TimestampPayload.ntp_utc(now)
        plain = _chain(self.id_i, self.id_r, self.eccpt, None, self.i_am_initiator)
        ibake_p = IbakePayload(self.credentials.encrypt(self.peer_id, _when(t, now), plain))
        msg = Message(hdr, (t, self.id_i, self.id_r, *(self.new_policies or ()), ibake_p)).encode()
        self.header, self.timestamp = hdr, t
        self.state = State.WAIT_RESPONSE
        return msg

    def receive(self, data: bytes, now: float) -> ExchangeResult:
        """The update R_MESSAGE_1: echo, V, new keys (any failure: FAILED, MikeyError raised)."""
        if self.state is not State.WAIT_RESPONSE:
            raise StateError(f"IbakeUpdateInitiator is {self.state.value}")
        try:
            result = self._on_response(data, now)
        except MikeyError:
            self.state = State.FAILED
            raise
        self.state = State.DONE
        self.result = result
        return result

    def _on_response(self, data: bytes, now: float) -> ExchangeResult:
        hdr, t_own = self.header, self.timestamp
        if hdr is None or t_own is None:  # pragma: no cover - set with the message
            raise StateError("no update message was built")
        msg = Message.decode(data)
        if msg.data_type == DataType.ERROR:
            raise peer_error(msg)
        if msg.data_type != DataType.IBAKE_R_MESSAGE_1:
            raise UnsupportedDataTypeError("a CSB update is answered with R_MESSAGE_1 (§5.3)")
        _check_header(msg.header, hdr, "the update R_MESSAGE_1")
        t: TimestampPayload = _one(msg, TimestampPayload, "T")
        if (t.ts_type, t.ts_value) != (t_own.ts_type, t_own.ts_value):
            raise InvalidTimestampError("the update R_MESSAGE_1 must carry the update's timestamp")
        v: VerificationPayload = _one(msg, VerificationPayload, "V")
        if msg.payloads[-1] is not v:
            raise UnspecifiedError("V must be the last payload of the update R_MESSAGE_1")
        self._check_ids(msg)
        c = self._open(_one(msg, IbakePayload, "IBAKE", required=False), _when(t, now))
        mine, theirs = (c.eccpt_i, c.eccpt_r) if self.i_am_initiator else (c.eccpt_r, c.eccpt_i)
        if mine is None or not _same(mine.point, self.eccpt.point):
            raise AuthenticationError("the update R_MESSAGE_1 does not echo this side's new EC value")
        if theirs is None:
            raise UnspecifiedError("the update R_MESSAGE_1 carries no new EC value of the peer")
        try:
            self.k_session = session_point(self.curve, self._x, _peer_point(theirs, self.curve))
        except CryptoError as e:
            raise AuthenticationError(f"unusable EC value: {e.message}") from None
        policies = self.new_policies if self.new_policies is not None else list(self.established.policies)
        result, auth_key = self._result(merge_responder_ssrcs(hdr, msg.header), policies, authenticated=True)
        mac_alg = v_mac_alg(result.prf)
        if v.auth_alg != mac_alg:
            raise UnsupportedMACError(f"V uses MAC alg {v.auth_alg}; this exchange uses {mac_alg}")
        n = kemac_crypto.mac_len(mac_alg)
        want = kemac_crypto.compute_mac(mac_alg, auth_key, _mac_coverage(msg, n, self.id_i.data, self.id_r.data))
        if not _same(want, v.ver_data):
            raise AuthenticationError("the update R_MESSAGE_1's V does not verify (§5.2, §5.4)")
        return result


class IbakeUpdateResponder(_UpdateBase):
    """Answers a CSB update of an established IBAKE exchange (§5.3), on either side.

    Its result has ``authenticated=False``: the update R_MESSAGE_1 is the last message, so this side
    never sees proof that the update came from the peer (anyone can encrypt to K_PUB); only the peer
    can use the new keys, though, since the new EC value travels IBE-encrypted to it.
    """

    def __init__(
        self,
        credentials: IbakeCredentials,
        established: ExchangeResult,
        own_id: bytes,
        *,
        own_ssrcs: Sequence[int] = (),
        id_type: int = IDType.URI,
        ec_private: int | None = None,
        mpk_length: int = 32,
        tgk_length: int = 32,
        replay_cache: ReplayStore | None = None,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
    ) -> None:
        super().__init__(credentials, established, own_id, id_type=id_type, ec_private=ec_private,
                         mpk_length=mpk_length, tgk_length=tgk_length, clock_skew=clock_skew)
        self.own_ssrcs = list(own_ssrcs)
        self._side = Side(replay_cache=replay_cache, clock_skew=clock_skew)
        self.result: ExchangeResult | None = None

    def receive(self, data: bytes, now: float) -> IbakeStep:
        """The update I_MESSAGE_1 -> the update R_MESSAGE_1 and the new keys; failures carry an Error message."""
        if self.state is not State.START:
            raise StateError(f"IbakeUpdateResponder is {self.state.value}")
        msg: Message | None = None
        try:
            msg = Message.decode(data)
            step = self._on_update(msg, now)
        except MikeyError as exc:
            self.state = State.FAILED
            if exc.error_message is None and exc.err_no is not None and not isinstance(exc, PeerError):
                csb = msg.csb_id if msg is not None else (int.from_bytes(data[4:8], "big") if len(data) >= 8 else 0)
                t = msg.find(TimestampPayload) if msg is not None else None
                exc.error_message = build_error_message(csb, [int(exc.err_no)], t or TimestampPayload.ntp_utc(now),
                                                        prf=self.established.prf)
            raise
        self.state = State.DONE
        return step

    def _on_update(self, msg: Message, now: float) -> IbakeStep:
        if msg.data_type == DataType.ERROR:
            raise peer_error(msg)
        if msg.data_type != DataType.IBAKE_I_MESSAGE_1:
            raise UnsupportedDataTypeError("a CSB update starts with I_MESSAGE_1 (§5.3)")
        e = self.established
        h = msg.header
        if h.csb_id != e.csb_id or h.prf != e.prf:
            raise AuthenticationError("the update is for another CSB (CSB ID, PRF) (§5.3)")
        if msg.find(RandPayload) is not None:
            raise UnspecifiedError("a CSB update must not carry RAND (§5.3)")
        t: TimestampPayload = _one(msg, TimestampPayload, "T")
        self._check_ids(msg)
        admission = self._side.admit(msg, t, now, self.peer_id)
        when = _when(t, now)
        c = self._open(_one(msg, IbakePayload, "IBAKE", required=False), when)
        theirs, mine = (c.eccpt_r, c.eccpt_i) if self.i_am_initiator else (c.eccpt_i, c.eccpt_r)
        if theirs is None or mine is not None:
            raise UnspecifiedError("the update's IBAKE must carry the starter's new EC value alone")
        y = _generate(self.curve, self._fixed)
        own = _eccpt(self.curve, y.public_key())
        try:
            self.k_session = session_point(self.curve, y, _peer_point(theirs, self.curve))
        except CryptoError as exc:
            raise AuthenticationError(f"unusable EC value: {exc.message}") from None
        self._side.remember(admission)
        header = fill_ssrcs(h, self.own_ssrcs)
        new_policies = msg.find_all(SecurityPolicyPayload)
        policies = new_policies or list(e.policies)
        result, auth_key = self._result(header, policies, authenticated=False)
        plain = _chain(self.id_i, self.id_r, own, theirs, self.i_am_initiator)
        ibake_r = IbakePayload(self.credentials.encrypt(self.peer_id, when, plain))
        hdr = CommonHeader(DataType.IBAKE_R_MESSAGE_1, header.csb_id, header.cs_id_map, header.cs_id_map_type, False,
                           header.prf, header.version, header.cs_count)
        response = _with_v(hdr, [t, self.id_i, self.id_r, ibake_r], v_mac_alg(e.prf), auth_key, self.id_i.data,
                           self.id_r.data)
        self.result = result
        return IbakeStep(response, result, None, self.peer_id, False)


__all__ += ["DIRECT_ONLY", "SK_LENGTH", "IbakeUpdateInitiator", "IbakeUpdateResponder"]
