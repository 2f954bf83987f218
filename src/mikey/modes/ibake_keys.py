"""MIKEY-IBAKE private key request (RFC 6267 §4.2.1): REQUEST_KEY_PSK -> REQUEST_KEY_RESP, user and KMS.

REQUEST_KEY_PSK  = HDR, T, RAND, (IDRi), IDRkms, [IDRpsk], V
REQUEST_KEY_PKE  = HDR, T, RAND, (IDRi), {CERTi}, IDRkms, [CHASH], PKE, SIGNi
REQUEST_KEY_RESP = HDR, T, (IDRi), IDRkms, KEMAC, V            KEMAC = E(encr_key, (IDR || K_PR))

The response is protected with the user's pre-shared key or the envelope key of PKE (E(PKkms,
env_key), RSA PKCS#1 v1.5, 32 random octets) as RFC 3830 §4.1.4 derives keys from it (§5.2): encr_key,
auth_key and salt = PRF(PSK or env_key, const || 0xFF || CSB ID || RAND).  The PKE request is signed
(RSA, SIGN over the message || IDRi data || IDRkms data) with the user's certificate, whose
subjectAltName must bind the first IDRi; the KMS certificate is named by CHASH when it has several.  HDR: V = 1 in the request,
0 in the response, #CS = 0 and the Empty CS ID map (§6.1).  The response echoes the request's T.

mikey's profile (RFC 6267 leaves these open):

* V MAC: HMAC-SHA-256-256 with PRF-HMAC-SHA-256 (the default PRF), HMAC-SHA-1-160 with MIKEY-1; it
  covers the message without the MAC field, then the IDRi data of the first requested identity and
  the IDRkms data (as RFC 6043 §5.5 and RFC 6267 §5.4 put the identities after the message).
* KEMAC: AES-CM-128 by default (**param** ``encr_alg`` of the KMS; AES-CM-256 and AES-KW-128 too), MAC
  alg NULL (§4.2.1.3: the V payload carries the MAC).  Its plaintext is, per key, an IDR payload (the
  requested identity, same role) followed by a Key data sub-payload of type 7 (K_PR) whose Key data is
  the SEC 1 point S_id (uncompressed by default, **param** ``point_format``) and whose KV is an
  interval (KV type 2): the key period's first and last second as 8-octet NTP-UTC timestamps.  The user
  learns the date from it: the key is for ``ID || date(valid_from)`` (``KeyPeriod`` granularity, a KMS
  setting the users share), and checks e'(P, S_id) = e'(P_pub, Q_id) before storing it.
* The KMS issues the key period containing T and the ``periods - 1`` following ones (default 2: this one
  and the next, so a user holds the key across a period boundary).
* Which identities a PSK may ask for: the KMS's ``authorize(user, identity)`` (default: only the user's
  own); the user is IDRpsk's data when present, else the first IDRi.  Unknown user or bad MAC -> Error
  no 0, an identity not authorized or a foreign IDRkms -> Error no 7, stale T -> 1.

"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ..constants import (
    PRF,
    CacheType,
    CSIdMapType,
    DataType,
    EncrAlg,
    IDRole,
    IDType,
    KeyDataType,
    MacAlg,
    PayloadType,
    SignatureType,
)
from ..crypto import ibe
from ..crypto import kemac as kemac_crypto
from ..crypto import rsa as rsa_crypto
from ..crypto import x509 as x509_crypto
from ..errors import (
    AuthenticationError,
    CertificateError,
    CryptoError,
    InvalidTimestampError,
    MikeyDecodeError,
    MikeyError,
    StateError,
    UnspecifiedError,
    UnsupportedDataTypeError,
    UnsupportedEncryptionError,
    UnsupportedIDError,
    UnsupportedMACError,
    UnsupportedPRFError,
)
from ..identities import ntp_from_unix
from ..keystore import Credentials
from ..replay import DEFAULT_CLOCK_SKEW, ReplayStore
from ..wire import (
    CertPayload,
    ChashPayload,
    CommonHeader,
    IdrPayload,
    KemacPayload,
    KeyDataPayload,
    Message,
    Payload,
    PkePayload,
    RandPayload,
    SignPayload,
    TimestampPayload,
    VerificationPayload,
)
from ..wire.payloads.base import IntervalValidity, encode_sub_payloads
from .base import Admission, Rng, Side, State, build_error_message, peer_error, random_csb_id
from .keytransport import KeyTransport, decode_key_data, encrypt_key_data
from .signing import PeerVerifier, message_time, pinned_validator, sign_message

__all__ = ["IssuedKey", "IbakeKeyResult", "IbakeKeyRequest", "IbakeKms", "IbakePkSigner", "PskSource",
           "period_bounds", "ENVELOPE_KEY_LENGTH"]

#: Octets of the envelope key of REQUEST_KEY_PKE (RFC 3830 leaves it open; one PRF piece).
ENVELOPE_KEY_LENGTH = 32

#: ``user identity -> PSK`` (a mapping or a lookup returning None for an unknown user).
PskSource = Mapping[bytes, bytes] | Callable[[bytes], bytes | None]

_KEMAC_ALGS = (EncrAlg.AES_CM_128, EncrAlg.AES_CM_256, EncrAlg.AES_KW_128)


def _mac_alg(prf: int) -> int:
    return MacAlg.HMAC_SHA_256_256 if prf == PRF.PRF_HMAC_SHA_256 else MacAlg.HMAC_SHA_1_160


def _check_prf(prf: int) -> None:
    if prf not in (PRF.MIKEY_1, PRF.PRF_HMAC_SHA_256):
        raise UnsupportedPRFError(f"PRF func {prf} is not supported")


def period_bounds(when: _dt.datetime, period: ibe.KeyPeriod) -> tuple[_dt.datetime, _dt.datetime]:
    """The key period containing *when* (UTC): its first instant and the first instant of the next one."""
    when = when.astimezone(_dt.UTC) if when.tzinfo is not None else when.replace(tzinfo=_dt.UTC)
    if period is ibe.KeyPeriod.YEAR:
        start = _dt.datetime(when.year, 1, 1, tzinfo=_dt.UTC)
        return start, start.replace(year=when.year + 1)
    if period is ibe.KeyPeriod.MONTH:
        start = _dt.datetime(when.year, when.month, 1, tzinfo=_dt.UTC)
        nxt = start.replace(year=when.year + 1, month=1) if when.month == 12 else start.replace(month=when.month + 1)
        return start, nxt
    if period is ibe.KeyPeriod.DAY:
        start = _dt.datetime(when.year, when.month, when.day, tzinfo=_dt.UTC)
        return start, start + _dt.timedelta(days=1)
    start = _dt.datetime(when.year, when.month, when.day, when.hour, tzinfo=_dt.UTC)
    return start, start + _dt.timedelta(hours=1)


def _ntp(when: _dt.datetime) -> bytes:
    return ntp_from_unix(when.timestamp()).to_bytes(8, "big")


def _t_time(t: TimestampPayload, now: float) -> _dt.datetime:
    seconds = t.unix_time(now)
    if seconds is None:
        raise InvalidTimestampError("the key request needs an NTP timestamp")
    try:
        return _dt.datetime.fromtimestamp(seconds, _dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidTimestampError("the timestamp is out of range") from None


def _with_v(header: CommonHeader, payloads: Sequence[Payload], mac_alg: int, key: bytes, trailer: bytes) -> bytes:
    n = kemac_crypto.mac_len(mac_alg)
    draft = Message(header, (*payloads, VerificationPayload(mac_alg, bytes(n)))).encode()
    return draft[:-n] + kemac_crypto.compute_mac(mac_alg, key, draft[:-n] + trailer)


def _check_v(msg: Message, mac_alg: int, key: bytes, trailer: bytes) -> None:
    v = msg.payloads[-1] if msg.payloads else None
    if not isinstance(v, VerificationPayload) or len(msg.find_all(VerificationPayload)) != 1:
        raise UnspecifiedError("V must be the last payload (RFC 6267 §4.2.1)")
    if v.auth_alg != mac_alg:
        raise UnsupportedMACError(f"V uses MAC alg {v.auth_alg}; PRF {msg.header.prf} goes with {mac_alg}")
    raw = msg.raw_bytes()
    kemac_crypto.verify_mac(mac_alg, key, raw[: len(raw) - len(v.ver_data)] + trailer, v.ver_data)


def _parts(msg: Message) -> tuple[TimestampPayload, list[IdrPayload], IdrPayload, IdrPayload | None]:
    """T, the user identities (IDRi/IDRr), IDRkms and IDRpsk of a key request or response."""
    ts = msg.find_all(TimestampPayload)
    if len(ts) != 1:
        raise UnspecifiedError("the message must carry one T")
    idrs = msg.find_all(IdrPayload)
    users = [p for p in idrs if p.id_role in (IDRole.INITIATOR, IDRole.RESPONDER)]
    kms = [p for p in idrs if p.id_role == IDRole.KMS]
    psk = [p for p in idrs if p.id_role == IDRole.PSK]
    if len(kms) != 1 or len(psk) > 1 or not users:
        raise UnspecifiedError("the message needs (IDRi), one IDRkms and at most one IDRpsk (RFC 6267 §4.2.1)")
    return ts[0], users, kms[0], (psk[0] if psk else None)


@dataclass(frozen=True)
class IssuedKey:
    """One K_PR as the KMS issued it: identity, its key period [valid_from, valid_to) and the key."""

    identity: bytes
    valid_from: _dt.datetime
    valid_to: _dt.datetime
    private_key: ibe.BfPrivateKey = field(repr=False)

    @property
    def period_identity(self) -> bytes:
        """``ID || date``, the identity K_PUB is derived from (RFC 6267 §4.2.1)."""
        return self.private_key.identity


@dataclass(frozen=True)
class IbakeKeyResult:
    """What a REQUEST_KEY_RESP gave: the K_PRs, validated against the KMS parameters."""

    csb_id: int
    kms_id: bytes
    keys: tuple[IssuedKey, ...]

    @property
    def private_keys(self) -> list[ibe.BfPrivateKey]:
        return [k.private_key for k in self.keys]


@dataclass(frozen=True)
class IbakePkSigner:
    """What REQUEST_KEY_PKE needs (§4.2.1.1.2): the user's RSA key and chain (SIGN, CERT) and the KMS's
    certificate (PKE = E(PKkms, env_key); a CHASH names it when ``chash`` gives a Hash func)."""

    credentials: Credentials
    kms_certificate: x509.Certificate
    s_type: int = SignatureType.RSA_PKCS1_V1_5
    sign_hash: str = "sha256"
    include_certificate: bool = True
    chash: int | None = None

    def message(self, header: CommonHeader, before: Sequence[Payload], after: Sequence[Payload], env_key: bytes,
                trailer: bytes, now: float) -> bytes:
        """``before, {CERT}, after, [CHASH], PKE, SIGN`` with SIGN over the message || *trailer*."""
        at = datetime.fromtimestamp(now, UTC)
        pinned_validator(self.kms_certificate).validate([self.kms_certificate], at=at, purpose="encrypt")
        public_key = self.kms_certificate.public_key()
        if not isinstance(public_key, RSAPublicKey):
            raise CertificateError("the KMS certificate does not hold an RSA key")
        payloads = list(before)
        if self.include_certificate:
            payloads += [CertPayload(0, x509_crypto.certificate_der(c)) for c in self.credentials.certificates]
        payloads += after
        if self.chash is not None:
            der = x509_crypto.certificate_der(self.kms_certificate)
            payloads.append(ChashPayload(self.chash, x509_crypto.chash(self.chash, der)))
        try:
            payloads.append(PkePayload(CacheType.NO_CACHE, rsa_crypto.encrypt_envelope(public_key, env_key)))
        except CryptoError as e:
            raise UnspecifiedError(f"cannot encrypt the envelope key: {e}") from None
        return sign_message(header, payloads, self.credentials.rsa_private_key, s_type=self.s_type,
                            hash_name=self.sign_hash, trailer=trailer)


class IbakeKeyRequest:
    """The user side of REQUEST_KEY_PSK / REQUEST_KEY_RESP (RFC 6267 §4.2.1.1, §4.2.1.4), sans-I/O.

    ``identities``: the user's public identities to get K_PRs for; ``params``: the KMS's public
    parameters (each K_PR is checked against them); ``key_period``: the KMS's date granularity.
    ``psk`` for REQUEST_KEY_PSK, or ``psk=None`` and ``pk`` for REQUEST_KEY_PKE (§4.2.1.1.2).
    """

    def __init__(
        self,
        psk: bytes | None,
        identities: Sequence[bytes],
        kms_id: bytes,
        params: ibe.BfParams,
        *,
        psk_id: bytes | None = None,
        pk: IbakePkSigner | None = None,
        key_period: ibe.KeyPeriod = ibe.KeyPeriod.MONTH,
        prf: int = PRF.PRF_HMAC_SHA_256,
        role: int = IDRole.INITIATOR,
        id_type: int = IDType.URI,
        csb_id: int | None = None,
        rand: bytes | None = None,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        rng: Rng = os.urandom,
    ) -> None:
        if not identities:
            raise ValueError("name at least one identity")
        _check_prf(prf)
        if (psk is None) == (pk is None):
            raise ValueError("give either a PSK (REQUEST_KEY_PSK) or PK credentials (REQUEST_KEY_PKE)")
        self.pk = pk
        self._psk = psk if psk is not None else rng(ENVELOPE_KEY_LENGTH)  # PKE: the envelope key
        self.identities = [IdrPayload(IDRole(role), id_type, i) for i in identities]
        self.kms_id = IdrPayload(IDRole.KMS, id_type, kms_id)
        self.psk_id = IdrPayload(IDRole.PSK, IDType.BYTE_STRING, psk_id) if psk_id is not None else None
        self.params = params
        self.key_period = key_period
        self.prf = prf
        self.csb_id = csb_id if csb_id is not None else random_csb_id(rng)
        self.rand = rand if rand is not None else rng(16)
        self.clock_skew = clock_skew
        self.state = State.START
        self.timestamp: TimestampPayload | None = None
        self.request: bytes | None = None

    def __repr__(self) -> str:
        return f"IbakeKeyRequest(csb_id={self.csb_id:08x}, state={self.state.value})"

    def _transport(self, encr_alg: int = EncrAlg.NULL) -> KeyTransport:
        return KeyTransport(encr_alg, _mac_alg(self.prf), self.prf)

    def _trailer(self) -> bytes:
        return self.identities[0].data + self.kms_id.data

    def create_message(self, now: float) -> bytes:
        """REQUEST_KEY_PSK = HDR, T, RAND, (IDRi), IDRkms, [IDRpsk], V, or REQUEST_KEY_PKE (§4.2.1.1)."""
        if self.state is not State.START:
            raise StateError(f"IbakeKeyRequest is {self.state.value}")
        dt = DataType.REQUEST_KEY_PSK if self.pk is None else DataType.REQUEST_KEY_PKE
        hdr = CommonHeader(dt, self.csb_id, (), CSIdMapType.EMPTY, True, self.prf)
        t = TimestampPayload.ntp_utc(now)
        payloads: list[Payload] = [t, RandPayload(self.rand), *self.identities]
        if self.pk is not None:
            self.request = self.pk.message(hdr, payloads, [self.kms_id], self._psk, self._trailer(), now)
        else:
            payloads.append(self.kms_id)
            if self.psk_id is not None:
                payloads.append(self.psk_id)
            keys = self._transport().keys(self._psk, self.csb_id, self.rand)
            self.request = _with_v(hdr, payloads, _mac_alg(self.prf), keys.auth_key, self._trailer())
        self.timestamp = t
        self.state = State.WAIT_RESPONSE
        return self.request

    def receive(self, data: bytes, now: float) -> IbakeKeyResult:
        """Check and open REQUEST_KEY_RESP (§4.2.1.3, §4.2.1.4); raises a MikeyError when it does not check out."""
        if self.state is not State.WAIT_RESPONSE:
            raise StateError(f"IbakeKeyRequest is {self.state.value}")
        try:
            result = self._on_response(data, now)
        except MikeyError:
            self.state = State.FAILED
            raise
        self.state = State.DONE
        return result

    def _on_response(self, data: bytes, now: float) -> IbakeKeyResult:
        own_t = self.timestamp
        if own_t is None:  # pragma: no cover - set with the request
            raise StateError("no request was built")
        msg = Message.decode(data)
        if msg.data_type == DataType.ERROR:
            raise peer_error(msg)
        if msg.data_type != DataType.REQUEST_KEY_RESP:
            raise UnsupportedDataTypeError(f"expected REQUEST_KEY_RESP, got data type {msg.data_type}")
        h = msg.header
        if h.csb_id != self.csb_id or h.prf != self.prf or h.cs_id_map_type != CSIdMapType.EMPTY or h.cs_count:
            raise AuthenticationError("REQUEST_KEY_RESP's HDR does not match the request (§4.2.1.3)")
        t, users, kms, _ = _parts(msg)
        if (t.ts_type, t.ts_value) != (own_t.ts_type, own_t.ts_value):
            raise InvalidTimestampError("REQUEST_KEY_RESP must carry the request's timestamp (§4.2.1.3)")
        if kms.data != self.kms_id.data:
            raise UnsupportedIDError("REQUEST_KEY_RESP comes from another KMS")
        kemacs = msg.find_all(KemacPayload)
        if len(kemacs) != 1:
            raise UnspecifiedError("REQUEST_KEY_RESP must carry one KEMAC")
        kemac = kemacs[0]
        if kemac.encr_alg not in _KEMAC_ALGS:
            raise UnsupportedEncryptionError(f"KEMAC encryption {kemac.encr_alg} is not supported")
        transport = self._transport(int(kemac.encr_alg))
        keys = transport.keys(self._psk, self.csb_id, self.rand)
        _check_v(msg, transport.mac_alg, keys.auth_key, self._trailer())
        try:
            plain = kemac_crypto.decrypt(transport.encr_alg, keys.encr_key, keys.salt, self.csb_id, t.ts_value,
                                         kemac.encr_data, ts_type=int(t.ts_type))
            subs = _decode_keys(plain, transport.encr_alg)
        except (CryptoError, MikeyDecodeError) as e:
            raise UnspecifiedError(f"the KEMAC does not hold IDR || K_PR pairs: {e.message}") from None
        wanted = {p.data for p in self.identities}
        del users  # the clear IDRs are informative; the encrypted IDR names each key
        issued: list[IssuedKey] = []
        for idr, kd in subs:
            if idr.data not in wanted:
                raise UnsupportedIDError(f"the KMS sent a key for {idr.data!r}, which was not asked for")
            kv = kd.kv
            if not isinstance(kv, IntervalValidity) or len(kv.valid_from) != 8 or len(kv.valid_to) != 8:
                raise UnspecifiedError("a K_PR must carry its key period as an NTP interval (mikey's profile)")
            start = _t_time(TimestampPayload(0, kv.valid_from), now)
            end = _t_time(TimestampPayload(0, kv.valid_to), now)
            if period_bounds(start, self.key_period) != (start, end):
                raise UnspecifiedError("a K_PR's interval is not one key period")
            ident = ibe.period_identity(idr.data, start, self.key_period)
            try:
                key = ibe.BfPrivateKey.decode(kd.key, self.params, ident, validate=True)
            except CryptoError:
                raise AuthenticationError(f"the K_PR for {idr.data!r} does not match the KMS parameters") from None
            issued.append(IssuedKey(idr.data, start, end, key))
        if not issued:
            raise UnspecifiedError("REQUEST_KEY_RESP carries no K_PR")
        return IbakeKeyResult(self.csb_id, kms.data, tuple(issued))


def _decode_keys(plain: bytes, encr_alg: int) -> list[tuple[IdrPayload, KeyDataPayload]]:
    subs = decode_key_data(plain, encr_alg, PayloadType.IDR)
    if len(subs) % 2:
        raise UnspecifiedError("odd number of sub-payloads")
    pairs: list[tuple[IdrPayload, KeyDataPayload]] = []
    for idr, kd in zip(subs[::2], subs[1::2], strict=True):
        if not isinstance(idr, IdrPayload) or not isinstance(kd, KeyDataPayload) or kd.key_type != KeyDataType.K_PR:
            raise UnspecifiedError("expected IDR then Key data of type K_PR")
        pairs.append((idr, kd))
    return pairs


class _Admission(Side):
    """The replay cache and skew checks of the KMS (RFC 3830 §5.4), reused from the mode base."""


class IbakeKms:
    """The KMS role of RFC 6267 §4.2.1: REQUEST_KEY_PSK in, REQUEST_KEY_RESP with K_PRs out (sans-I/O).

    ``master``: the BF master secret (its parameters are the public ones); ``psks``: each user's PSK;
    ``authorize(user, identity)``: may *user* get *identity*'s keys (default: its own only).
    REQUEST_KEY_PKE is taken when ``pk_credentials`` (the KMS's RSA keys and certificates) and
    ``validator`` (trust anchors for the users' certificates) are given; the user is then the first
    IDRi, which the certificate must bind.  Long-lived
    and thread-safe (the replay cache is).  :meth:`receive` raises a MikeyError with ``error_message``
    set; :meth:`handle` returns the response or that Error message.
    """

    MODE: ClassVar[str] = "ibake"

    def __init__(
        self,
        master: ibe.BfMasterSecret,
        psks: PskSource,
        *,
        identity: bytes,
        key_period: ibe.KeyPeriod = ibe.KeyPeriod.MONTH,
        periods: int = 2,
        authorize: Callable[[bytes, bytes], bool] | None = None,
        encr_alg: int = EncrAlg.AES_CM_128,
        point_format: ibe.PointFormat = ibe.PointFormat.UNCOMPRESSED,
        pk_credentials: Sequence[Credentials] = (),
        validator: x509_crypto.CertificateValidator | None = None,
        replay_cache: ReplayStore | None = None,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
    ) -> None:
        if periods < 1:
            raise ValueError("periods must be at least 1")
        if encr_alg not in _KEMAC_ALGS:
            raise ValueError(f"encr_alg must be one of {[int(a) for a in _KEMAC_ALGS]}")
        self._master = master
        self.params = master.params
        self._psks = psks
        self.identity = identity
        self.key_period = key_period
        self.periods = periods
        self.authorize = authorize if authorize is not None else (lambda user, ident: user == ident)
        self.encr_alg = encr_alg
        self.point_format = point_format
        self.pk_credentials = tuple(pk_credentials)
        self.verifier = PeerVerifier(validator) if validator is not None else None
        self._checks = _Admission(replay_cache=replay_cache, clock_skew=clock_skew)

    def __repr__(self) -> str:
        return f"IbakeKms(identity={self.identity!r}, period={self.key_period.value})"

    def handle(self, data: bytes, now: float) -> bytes | None:
        """The REQUEST_KEY_RESP, or the Error message to answer with (None: nothing to send)."""
        try:
            return self.receive(data, now)
        except MikeyError as exc:
            return exc.error_message

    def _psk(self, user: bytes) -> bytes | None:
        if isinstance(self._psks, Mapping):
            return self._psks.get(user)
        return self._psks(user)

    def receive(self, data: bytes, now: float) -> bytes:
        """REQUEST_KEY_PSK processing (§4.2.1.2) and the REQUEST_KEY_RESP (§4.2.1.3)."""
        msg: Message | None = None
        try:
            msg = Message.decode(data)
            return self._on_request(msg, now)
        except MikeyError as exc:
            if exc.error_message is None and exc.err_no is not None:
                csb_id = msg.csb_id if msg is not None else (int.from_bytes(data[4:8], "big") if len(data) >= 8 else 0)
                prf = int(msg.header.prf) if msg is not None and msg.header.prf in (0, 1) else 0
                t = msg.find(TimestampPayload) if msg is not None else None
                exc.error_message = build_error_message(csb_id, [int(exc.err_no)], t or TimestampPayload.ntp_utc(now),
                                                        prf=prf)
            raise

    def _on_request(self, msg: Message, now: float) -> bytes:
        if msg.data_type not in (DataType.REQUEST_KEY_PSK, DataType.REQUEST_KEY_PKE):
            raise UnsupportedDataTypeError(f"the IBAKE KMS takes REQUEST_KEY_PSK/PKE, not data type {msg.data_type}")
        h = msg.header
        _check_prf(int(h.prf))
        if h.cs_count or h.cs_id_map_type != CSIdMapType.EMPTY:
            raise UnspecifiedError("a key request has #CS 0 and the Empty map (RFC 6267 §6.1)")
        t, users, kms, psk_id = _parts(msg)
        rands = msg.find_all(RandPayload)
        if len(rands) != 1:
            raise UnspecifiedError("the key request must carry one RAND")
        rand = rands[0].rand
        mac_alg = _mac_alg(int(h.prf))
        trailer = users[0].data + kms.data
        if msg.data_type == DataType.REQUEST_KEY_PKE:
            user, secret, admission = self._authenticate_pke(msg, t, users[0], kms, trailer, now)
        else:
            user = psk_id.data if psk_id is not None else users[0].data
            psk = self._psk(user)
            if psk is None:
                raise AuthenticationError("no pre-shared key for this user")
            admission = self._checks.admit(msg, t, now, user)
            secret = psk
        transport = KeyTransport(self.encr_alg, mac_alg, int(h.prf))
        keys = transport.keys(secret, h.csb_id, rand)
        if msg.data_type == DataType.REQUEST_KEY_PSK:
            _check_v(msg, mac_alg, keys.auth_key, trailer)
        if kms.data != self.identity:
            raise UnsupportedIDError("IDRkms names another KMS")
        for u in users:
            if not self.authorize(user, u.data):
                raise UnsupportedIDError(f"{user!r} may not get keys for {u.data!r}")
        self._checks.remember(admission)
        when = _t_time(t, now)
        subs: list[Payload] = []
        for u in users:
            start = when
            for _ in range(self.periods):
                start, end = period_bounds(start, self.key_period)
                key = ibe.bf_extract_for_period(self._master, u.data, start, self.key_period)
                subs.append(IdrPayload(u.id_role, u.id_type, u.data))
                subs.append(KeyDataPayload(KeyDataType.K_PR, key.encode(self.point_format),
                                           kv=IntervalValidity(_ntp(start), _ntp(end))))
                start = end
        plain = encode_sub_payloads(subs)
        if self.encr_alg == EncrAlg.AES_KW_128:
            plain = plain.ljust(max(16, -(-len(plain) // 8) * 8), b"\x00")
        encr = encrypt_key_data(transport, keys, h.csb_id, t, plain)
        hdr = CommonHeader(DataType.REQUEST_KEY_RESP, h.csb_id, (), CSIdMapType.EMPTY, False, h.prf, h.version, 0)
        body: list[Payload] = [t, *users, kms, KemacPayload(self.encr_alg, encr, MacAlg.NULL, b"")]
        return _with_v(hdr, body, mac_alg, keys.auth_key, trailer)

    def _authenticate_pke(self, msg: Message, t: TimestampPayload, user: IdrPayload, kms: IdrPayload,
                          trailer: bytes, now: float) -> tuple[bytes, bytes, Admission]:
        """REQUEST_KEY_PKE (§4.2.1.1.2): SIGN by a certificate binding IDRi, env_key from PKE (CHASH picks our key)."""
        if self.verifier is None or not self.pk_credentials:
            raise UnsupportedDataTypeError("this KMS takes no REQUEST_KEY_PKE (no PK credentials configured)")
        if not isinstance(msg.payloads[-1] if msg.payloads else None, SignPayload):
            raise AuthenticationError("SIGN must be the last payload (RFC 3830 §6.5)")
        pkes = msg.find_all(PkePayload)
        if len(pkes) != 1:
            raise UnspecifiedError("REQUEST_KEY_PKE must carry one PKE payload")
        if kms.data != self.identity:
            raise UnsupportedIDError("IDRkms names another KMS")
        admission = self._checks.admit(msg, t, now, user.data)
        chain = self.verifier.chain(msg.find_all(CertPayload))
        leaf = self.verifier.leaf(chain, at=message_time(t, now), peer_id=user.text)
        self.verifier.verify_signature(msg, leaf, trailers=(trailer,))
        own = self.pk_credentials[0]
        chash = msg.find(ChashPayload)
        if chash is not None:
            for c in self.pk_credentials:
                try:
                    x509_crypto.check_chash(int(chash.hash_func), chash.digest, x509_crypto.certificate_der(c.certificate))
                except CertificateError:
                    continue
                own = c
                break
            else:
                raise CertificateError("CHASH names none of the KMS certificates")
        try:
            env_key = rsa_crypto.decrypt_envelope(own.rsa_private_key, pkes[0].data, False)
        except CryptoError:
            raise AuthenticationError("the PKE payload does not decrypt with the KMS key") from None
        if len(env_key) < 16:
            raise AuthenticationError("the envelope key is shorter than 128 bits")
        return user.data, env_key, admission
