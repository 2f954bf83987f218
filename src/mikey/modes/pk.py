"""Public-key transport mode (RFC 3830 §3.2, §4.1.4, §4.5, §5.2, §6.2, §6.3, §6.5, §6.7, §6.8).

I_MESSAGE = HDR, T, RAND, [IDi|CERTi], [IDr], {SP}, KEMAC, [CHASH], PKE, SIGNi
R_MESSAGE = HDR, T, [IDr], V                          (only when the Initiator sets V)

* PKE = E(PKr, env_key): RSAES-PKCS1-v1_5 (mandatory, §4.2.5) or RSAES-OAEP.
* KEMAC = E(encr_key, IDi || {TGK}) || MAC, keys from env_key (§4.1.4); the MAC
  covers the KEMAC payload only, with its Next payload field set to zero (§5.2, §6.2).
* SIGNi covers the whole message up to the Signature field (§5.2), computed on
  the received bytes; the S type selects PKCS#1 v1.5 (0) or PSS (1).
* The V message is the PSK one, keyed from env_key (§3.2, §5.2).
* The envelope key cache (PKE C field, Table 6.3): a cached env_key is used as
  the pre-shared key of later PSK-mode update messages (§3.2, §4.5); see
  :class:`EnvelopeKeyCache`.

Signing, CERT payloads and the peer's certificate and SIGN checks are the shared
:mod:`mikey.modes.signing`.  The KEMAC-with-ID helpers of this module are shared
with :mod:`mikey.modes.rsa_r` (RFC 4738), whose R_MESSAGE is built like this
I_MESSAGE.

Compatibility options (``compat``), all off by default -- each names a known
deployed variant and is accepted only when asked for:

* ``"sign-excludes-header"``: the signature does not cover the 2-octet S type /
  Signature len header of SIGN (minisip libmikey signs ``message - SIGN
  payload``; also a literal reading of RFC 4738 §3.6).  When set we sign that
  way, and accept both coverages.
* ``"kemac-without-id"``: accept a KEMAC whose encrypted data starts directly
  with the Key data sub-payloads, without the encrypted IDi/IDr (minisip
  libmikey's PK mode).  The encrypted-ID check of §3.2 is then skipped.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ..constants import (
    MAC_LENGTHS,
    PRF,
    CacheType,
    CSIdMapType,
    DataType,
    EncrAlg,
    IDType,
    KeyDataType,
    MacAlg,
    PayloadType,
    SignatureType,
)
from ..crypto import kemac as kemac_crypto
from ..crypto import prf as prf_crypto
from ..crypto import rsa as rsa_crypto
from ..crypto import x509 as x509_crypto
from ..errors import (
    AuthenticationError,
    CertificateError,
    CryptoError,
    MikeyDecodeError,
    MikeyError,
    MikeyProtocolError,
    StateError,
    UnspecifiedError,
    UnsupportedEncryptionError,
    UnsupportedHashError,
    UnsupportedMACError,
)
from ..keystore import Credentials
from ..replay import DEFAULT_CLOCK_SKEW, ReplayCache
from ..wire import (
    CertPayload,
    ChashPayload,
    CommonHeader,
    IdPayload,
    KemacPayload,
    KeyDataPayload,
    Message,
    Payload,
    PkePayload,
    RandPayload,
    SecurityPolicyPayload,
    SignPayload,
    TimestampPayload,
    VerificationPayload,
    encode_sub_payloads,
)
from ..wire.payloads.base import KeyValidity
from .base import (
    CryptoSessionKeys,
    CryptoSessionSpec,
    ExchangeResult,
    Initiator,
    Responder,
    ResponderOutcome,
    Rng,
    Side,
    State,
    build_error_message,
    build_header,
    derive_crypto_sessions,
    fill_ssrcs,
    id_data,
    merge_responder_ssrcs,
    random_csb_id,
    shared_default_srtp_policy,
    verification_mac_input,
)
from .psk import (
    VERIFICATION_COVERAGE,
    KeyTransport,
    PskInitiator,
    PskResponder,
    check_algorithms,
    decode_key_data,
    default_tgk_length,
    key_material,
)
from .signing import (
    SIGNATURE_HASHES,
    CertResolver,
    PeerVerifier,
    Signer,
    check_compat,
    identity_of,
    message_time,
    pinned_validator,
    subject_text,
)

__all__ = [
    "PkInitiator",
    "PkResponder",
    "EnvelopeKeyCache",
    "CachedEnvelopeKey",
    "CertResolver",
    "COMPAT_OPTIONS",
    "SIGNATURE_HASHES",
    "kemac_mac_input",
    "build_kemac",
    "open_kemac",
    "check_key_encipherment",
]

#: Deployed-variant switches accepted in ``compat`` (see the module docstring and rsa_r).
COMPAT_OPTIONS = frozenset(
    {"sign-excludes-header", "kemac-without-id", "rsa-r-sign-no-trailer", "rsa-r-fresh-timestamp"}
)

#: Default envelope key length in octets (RFC 3830 leaves it open; 256 bits fills one PRF piece, §4.1.2).
ENVELOPE_KEY_LENGTH = 32


# --- certificates (RFC 3830 §4.3, §6.7, §6.8; RFC 4738 §3.8) ------------------------------------


def check_key_encipherment(cert: x509.Certificate) -> None:
    """A certificate we encrypt an envelope key to must allow keyEncipherment when it has keyUsage."""
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    except ValueError:
        raise CertificateError("certificate has malformed extensions") from None
    if not ku.key_encipherment:
        raise CertificateError("the peer's certificate does not allow keyEncipherment")


def _chash_matches(chash: ChashPayload, cert: x509.Certificate) -> bool:
    try:
        x509_crypto.check_chash(int(chash.hash_func), chash.digest, x509_crypto.certificate_der(cert))
    except CertificateError:
        return False
    return True


# --- KEMAC with ID, public-key flavour (RFC 3830 §3.2, §5.2, §6.2; RFC 4738 §3.6) ---------------


def kemac_mac_input(msg: Message, index: int) -> bytes:
    """The KEMAC payload as received, Next payload set to zero and without the MAC field (§5.2)."""
    raw = msg.raw_bytes()
    start, end = msg.payload_span(index)
    kemac = msg.payloads[index]
    assert isinstance(kemac, KemacPayload)
    return b"\x00" + raw[start + 1 : end - len(kemac.mac)]


def build_kemac(
    transport: KeyTransport,
    keys: prf_crypto.TransportKeys,
    csb_id: int,
    t: TimestampPayload,
    sub_payloads: Sequence[Payload],
) -> KemacPayload:
    """KEMAC = E(encr_key, ID || {Key data}) || MAC over the KEMAC payload alone (§3.2, §5.2)."""
    plaintext = encode_sub_payloads(list(sub_payloads))
    if transport.encr_alg == EncrAlg.AES_KW_128:
        # RFC 3394 wraps whole 64-bit blocks; the ID makes the length arbitrary, so zero-pad
        # (the receiver ignores octets after the last sub-payload, see psk.decode_key_data).
        plaintext = plaintext.ljust(max(16, -(-len(plaintext) // 8) * 8), b"\x00")
    try:
        encr = kemac_crypto.encrypt(
            transport.encr_alg, keys.encr_key, keys.salt, csb_id, t.ts_value, plaintext, ts_type=int(t.ts_type)
        )
    except CryptoError as e:
        raise UnspecifiedError(f"cannot encrypt the key data: {e}") from None
    n = MAC_LENGTHS[transport.mac_alg]
    draft = KemacPayload(transport.encr_alg, encr, transport.mac_alg, bytes(n))
    body = encode_sub_payloads([draft])  # a lone payload: Next payload = 0, as §5.2 asks
    mac = kemac_crypto.compute_mac(transport.mac_alg, keys.auth_key, body[: len(body) - n])
    return KemacPayload(transport.encr_alg, encr, transport.mac_alg, mac)


@dataclass(frozen=True)
class OpenedKemac:
    """What a public-key KEMAC carried: the encrypted ID (None in compat mode) and the key material."""

    id_payload: IdPayload | None
    key: bytes = field(repr=False)
    salt: bytes | None = field(repr=False)
    key_type: int
    kv: KeyValidity


def open_kemac(
    msg: Message,
    transport: KeyTransport,
    keys: prf_crypto.TransportKeys,
    csb_id: int,
    t: TimestampPayload,
    compat: frozenset[str],
) -> OpenedKemac:
    """Verify the KEMAC MAC (§5.2), decrypt, and split off the leading ID sub-payload (§3.2)."""
    idx = msg.index(KemacPayload)
    kemac = msg.payloads[idx]
    assert isinstance(kemac, KemacPayload)
    kemac_crypto.verify_mac(transport.mac_alg, keys.auth_key, kemac_mac_input(msg, idx), kemac.mac)
    try:
        plaintext = kemac_crypto.decrypt(
            transport.encr_alg, keys.encr_key, keys.salt, csb_id, t.ts_value, kemac.encr_data, ts_type=int(t.ts_type)
        )
    except CryptoError as e:
        raise AuthenticationError(f"cannot decrypt the key data: {e}") from None
    subs: list[Payload] = []
    try:
        subs = decode_key_data(plaintext, transport.encr_alg, PayloadType.ID)
    except MikeyDecodeError:
        pass
    if not any(isinstance(s, KeyDataPayload) for s in subs[1:]):
        if "kemac-without-id" not in compat:
            raise AuthenticationError("KEMAC does not decrypt to ID || Key data (RFC 3830 §3.2)")
        subs = decode_key_data(plaintext, transport.encr_alg, PayloadType.KEY_DATA)
    id_p = subs[0] if subs and isinstance(subs[0], IdPayload) else None
    key, salt, key_type, kv = key_material(subs)
    return OpenedKemac(id_p, key, salt, key_type, kv)


def session_keys_for(
    key: bytes,
    key_type: int,
    header: CommonHeader,
    rand: bytes,
    policies: Sequence[SecurityPolicyPayload],
    salt: bytes | None,
    csb_id: int | None = None,
) -> tuple[CryptoSessionKeys, ...]:
    """Per-CS SRTP keys from the TGK (§4.1.3) or a transported TEK; *csb_id* overrides the HDR's (RFC 4738)."""
    derived = derive_crypto_sessions(key, header, rand, policies, salt=salt, csb_id=csb_id)
    if key_type in (KeyDataType.TEK, KeyDataType.TEK_SALT):
        return tuple(
            CryptoSessionKeys(cs.cs_id, cs.ssrc, cs.roc, cs.policy, key, salt if salt is not None else cs.master_salt,
                              cs.spi)
            for cs in derived
        )
    return derived


def same_id(a: IdPayload, b: IdPayload) -> bool:
    return int(a.id_type) == int(b.id_type) and a.data == b.data


def verification_message(
    data_type: int,
    header: CommonHeader,
    t: TimestampPayload,
    mac_alg: int,
    auth_key: bytes,
    id_r: IdPayload | None,
    trailer: bytes,
) -> bytes:
    """R_MESSAGE = HDR, T, [IDr], V with the Initiator's T; MAC over message || trailer (§3.2, §5.2)."""
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


def split_ids(msg: Message) -> tuple[IdPayload | None, IdPayload | None]:
    """The clear (IDi, IDr) of ``[IDi|CERTi], [IDr]``: an ID after a CERT is IDr (§3.2, RFC 4738 §3.4)."""
    id_i: IdPayload | None = None
    id_r: IdPayload | None = None
    seen_cert = False
    for p in msg.payloads:
        if isinstance(p, CertPayload):
            seen_cert = True
        elif isinstance(p, IdPayload):
            if id_i is None and not seen_cert:
                id_i = p
            elif id_r is None:
                id_r = p
    return id_i, id_r


# --- envelope key cache (RFC 3830 §3.2, §4.5, Table 6.3) -----------------------------------------


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
    policy).  Keys never appear in ``repr``.
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

    def forget(self, peer: bytes, csb_id: int | None = None) -> None:
        with self._lock:
            for k in [k for k in self._entries if k[0] == peer and (csb_id is None or k[1] == csb_id)]:
                del self._entries[k]

    def psk_initiator(self, peer: bytes, csb_id: int, now: float, **psk_kwargs: Any) -> PskInitiator:
        """A PSK-mode Initiator for an update of *csb_id*, keyed with the cached envelope key (§4.5).

        Same CSB ID; the initial exchange's RAND is reused for key derivation
        (§4.5: no new RAND).  ``PskInitiator`` always sends a RAND payload, so
        the update carries that same RAND again.
        """
        entry = self.lookup(peer, csb_id, now)
        if entry is None:
            raise StateError("no cached envelope key for this peer and CSB")
        psk_kwargs.setdefault("rand", entry.rand)
        return PskInitiator(entry.key, csb_id=csb_id, **psk_kwargs)


# --- the Initiator ---------------------------------------------------------------------------------


class PkInitiator(Initiator):
    """The PK Initiator: encrypts an envelope key to the Responder, signs the I_MESSAGE, checks V.

    ``credentials`` hold our RSA key and certificate chain (signing);
    ``peer_certificate`` (plus ``peer_chain``) is the Responder's, used for PKE.
    It is validated at :meth:`create_message` time against ``validator`` -- by
    default a validator that trusts exactly that certificate (the "specific peer"
    model of RFC 3830 §4.3.2).
    """

    MODE: ClassVar[str] = "pk"
    HANDLERS: ClassVar[dict[tuple[State, int], str]] = {(State.WAIT_RESPONSE, DataType.PK_RESP): "_on_response"}

    def __init__(
        self,
        credentials: Credentials,
        peer_certificate: x509.Certificate,
        *,
        peer_chain: Sequence[x509.Certificate] = (),
        validator: x509_crypto.CertificateValidator | None = None,
        crypto_sessions: Sequence[CryptoSessionSpec] | None = None,
        policies: Sequence[SecurityPolicyPayload] | None = None,
        csb_id: int | None = None,
        tgk: bytes | None = None,
        tgk_salt: bytes | None = None,
        rand: bytes | None = None,
        envelope_key: bytes | None = None,
        key_type: int = KeyDataType.TGK,
        key_validity: KeyValidity = None,
        encr_alg: int = EncrAlg.AES_CM_128,
        mac_alg: int = MacAlg.HMAC_SHA_1_160,
        prf: int = PRF.MIKEY_1,
        v: bool = False,
        id_i: IdPayload | None = None,
        id_r: IdPayload | None = None,
        send_id_i: bool = True,
        include_certificate: bool = True,
        certificate_url: str | None = None,
        chash: int | None = None,
        s_type: int = SignatureType.RSA_PKCS1_V1_5,
        sign_hash: str = "sha256",
        pke_oaep: bool = False,
        oaep_hash: str = "sha1",
        cache: int = CacheType.NO_CACHE,
        envelope_key_cache: EnvelopeKeyCache | None = None,
        cs_id_map_type: int = CSIdMapType.SRTP_ID,
        verification_coverage: str = "rfc",
        compat: Iterable[str] = (),
        rng: Rng = os.urandom,
    ) -> None:
        super().__init__(rng=rng)
        check_algorithms(encr_alg, mac_alg, prf)
        if encr_alg == EncrAlg.NULL:
            raise UnsupportedEncryptionError("NULL encryption would send the TGK in the clear")
        if verification_coverage not in VERIFICATION_COVERAGE:
            raise ValueError(f"verification_coverage must be one of {VERIFICATION_COVERAGE}")
        if s_type not in (SignatureType.RSA_PKCS1_V1_5, SignatureType.RSA_PSS):
            raise ValueError("s_type must be 0 (RSA PKCS#1 v1.5) or 1 (RSA-PSS)")
        if cache not in (CacheType.NO_CACHE, CacheType.CACHE, CacheType.CACHE_FOR_CSB):
            raise ValueError("cache must be 0, 1 or 2 (RFC 3830 Table 6.3)")
        self.compat = check_compat(compat, COMPAT_OPTIONS)
        self._credentials = credentials
        self.signer: Signer | None = Signer(credentials, s_type, sign_hash,
                                            exclude_header="sign-excludes-header" in self.compat)
        self.peer_certificate = peer_certificate
        self.peer_chain = tuple(peer_chain)
        self.validator = validator if validator is not None else pinned_validator(peer_certificate)
        self.specs = list(crypto_sessions) if crypto_sessions else [CryptoSessionSpec()]
        self.policies = list(policies) if policies is not None else [shared_default_srtp_policy(0)]
        self.csb_id = csb_id if csb_id is not None else random_csb_id(rng)
        self.key_type = key_type
        self._tgk = tgk if tgk is not None else rng(default_tgk_length(encr_alg, key_type))
        self._tgk_salt = tgk_salt
        self.rand = rand if rand is not None else rng(16)
        self._env_key = envelope_key if envelope_key is not None else rng(ENVELOPE_KEY_LENGTH)
        self.key_validity = key_validity
        self.transport = KeyTransport(encr_alg, mac_alg, prf)
        self.v = v
        self.id_i = id_i if id_i is not None else identity_of(credentials.certificate)
        self.id_r = id_r
        self.send_id_i = send_id_i
        self.include_certificate = include_certificate
        self.certificate_url = certificate_url
        self.chash = chash
        self.s_type = s_type
        self.sign_hash = sign_hash
        self.pke_oaep = pke_oaep
        self.oaep_hash = oaep_hash
        self.cache = cache
        self.envelope_key_cache = envelope_key_cache
        self.cs_id_map_type = cs_id_map_type
        self.verification_coverage = verification_coverage
        self.header: CommonHeader | None = None
        self.timestamp: TimestampPayload | None = None
        self.i_message: bytes | None = None
        self._result: ExchangeResult | None = None

    def __repr__(self) -> str:
        return f"PkInitiator(csb_id={self.csb_id:08x}, state={self.state.value})"

    @property
    def envelope_key(self) -> bytes:
        """The envelope key (secret): needed to resume the exchange statelessly (:meth:`resume`)."""
        return self._env_key

    def _salt(self) -> bytes | None:
        if self.key_type in (KeyDataType.TGK_SALT, KeyDataType.TEK_SALT):
            if self._tgk_salt is None:
                self._tgk_salt = self.rng(14)
            return self._tgk_salt
        return None

    def create_message(self, now: float) -> bytes:
        """The I_MESSAGE (RFC 3830 §3.2), timestamped *now* (Unix seconds)."""
        self.require_state(State.START)
        try:
            return self._create(now)
        except MikeyError:
            self.state = State.FAILED
            raise

    def _create(self, now: float) -> bytes:
        t = self.transport
        # The Responder's certificate must be valid now and allow key encipherment (§4.3).
        self.validator.validate(
            [self.peer_certificate, *self.peer_chain],
            at=datetime.fromtimestamp(now, UTC),
            peer_id=self.id_r.text if self.id_r is not None else None,
            purpose="encrypt",
        )
        public_key = self.peer_certificate.public_key()
        if not isinstance(public_key, RSAPublicKey):
            raise CertificateError("the Responder's certificate does not hold an RSA key")
        self.header = build_header(
            DataType.PK_INIT, self.csb_id, self.specs, map_type=self.cs_id_map_type, v=self.v, prf=t.prf
        )
        self.timestamp = TimestampPayload.ntp_utc(now)
        keys = t.keys(self._env_key, self.csb_id, self.rand)
        key_data = KeyDataPayload(self.key_type, self._tgk, self._salt(), self.key_validity)
        kemac = build_kemac(t, keys, self.csb_id, self.timestamp, [self.id_i, key_data])
        try:
            pke_data = rsa_crypto.encrypt_envelope(public_key, self._env_key, self.pke_oaep, oaep_hash=self.oaep_hash)
        except CryptoError as e:
            raise UnspecifiedError(f"cannot encrypt the envelope key: {e}") from None
        payloads: list[Payload] = [self.timestamp, RandPayload(self.rand)]
        if self.send_id_i:
            payloads.append(self.id_i)
        if self.signer is None:
            raise StateError("a resumed Initiator cannot build an I_MESSAGE")
        payloads += self.signer.cert_payloads(include=self.include_certificate, url=self.certificate_url)
        if self.id_r is not None:
            payloads.append(self.id_r)
        payloads += self.policies
        payloads.append(kemac)
        if self.chash is not None:
            der = x509_crypto.certificate_der(self.peer_certificate)
            payloads.append(ChashPayload(self.chash, x509_crypto.chash(self.chash, der)))
        payloads.append(PkePayload(self.cache, pke_data))
        self.i_message = self.signer.signed_message(self.header, payloads)
        if self.envelope_key_cache is not None:
            self.envelope_key_cache.store(id_data(self.id_r), self.csb_id, self.rand, self._env_key, self.cache, now)
        self.state = State.WAIT_RESPONSE if self.v else State.DONE
        self._result = self._make_result(self.header, authenticated=False)
        return self.i_message

    def _make_result(self, header: CommonHeader, *, authenticated: bool) -> ExchangeResult:
        sessions = session_keys_for(self._tgk, self.key_type, header, self.rand, self.policies, self._salt())
        return ExchangeResult(
            mode=self.MODE,
            csb_id=self.csb_id,
            tgk=self._tgk,
            rand=self.rand,
            prf=self.transport.prf,
            crypto_sessions=sessions,
            authenticated=authenticated,
            header=header,
            policies=tuple(self.policies),
            initiator_id=self.id_i.data,
            responder_id=self.id_r.data if self.id_r else None,
            key_validity=self.key_validity,
            extras={"cache": int(self.cache)},
        )


    # -- the verification message -------------------------------------------------------------

    def _trailer(self) -> bytes:
        assert self.timestamp is not None
        if self.verification_coverage == "timestamp-only":
            return self.timestamp.ts_value
        id_i = self.id_i if self.send_id_i else None
        return verification_mac_input(b"", id_data(id_i), id_data(self.id_r), self.timestamp.ts_value)

    def _on_response(self, msg: Message, now: float) -> ExchangeResult:
        assert self.header is not None and self.timestamp is not None
        if msg.csb_id != self.csb_id:
            raise AuthenticationError("R_MESSAGE CSB ID does not match the I_MESSAGE")
        t = msg.find(TimestampPayload)
        if t is None or t.ts_value != self.timestamp.ts_value:
            raise AuthenticationError("R_MESSAGE must carry the Initiator's timestamp (RFC 3830 §5.2)")
        v = msg.find(VerificationPayload)
        if v is None:
            raise AuthenticationError("R_MESSAGE has no V payload")
        if v.auth_alg != self.transport.mac_alg:
            raise UnsupportedMACError(f"V uses MAC alg {v.auth_alg}, the I_MESSAGE used {self.transport.mac_alg}")
        keys = self.transport.keys(self._env_key, self.csb_id, self.rand)
        raw = msg.raw_bytes()
        n = len(v.ver_data)
        kemac_crypto.verify_mac(self.transport.mac_alg, keys.auth_key, raw[: len(raw) - n] + self._trailer(),
                                v.ver_data)
        merged = merge_responder_ssrcs(self.header, msg.header)
        self.state = State.DONE
        result = self._make_result(merged, authenticated=True)
        id_r = msg.find(IdPayload)
        if id_r is not None and result.responder_id is None:
            result = replace(result, responder_id=id_r.data)
        self._result = result
        return result

    # -- stateless completion ----------------------------------------------------------------

    @classmethod
    def resume(
        cls,
        i_message: bytes,
        envelope_key: bytes,
        *,
        verification_coverage: str = "rfc",
        compat: Iterable[str] = (),
    ) -> PkInitiator:
        """Rebuild the Initiator that sent *i_message* from it and its envelope key.

        The Initiator cannot decrypt its own PKE, so a stateless ``complete`` needs
        the envelope key it chose (``initiate`` prints it).  The KEMAC is opened
        with it to recover the TGK; the result is in state WAIT_RESPONSE when V
        was set, else DONE.
        """
        msg = Message.decode(i_message)
        if msg.data_type != DataType.PK_INIT:
            raise UnspecifiedError("not a PK I_MESSAGE")
        t = msg.find(TimestampPayload)
        rand_p = msg.find(RandPayload)
        kemac = msg.find(KemacPayload)
        pke = msg.find(PkePayload)
        if t is None or rand_p is None or kemac is None or pke is None:
            raise UnspecifiedError("PK I_MESSAGE needs T, RAND, KEMAC and PKE (RFC 3830 §3.2)")
        compat_set = check_compat(compat, COMPAT_OPTIONS)
        transport = KeyTransport(int(kemac.encr_alg), int(kemac.mac_alg), int(msg.header.prf))
        keys = transport.keys(envelope_key, msg.csb_id, rand_p.rand)
        opened = open_kemac(msg, transport, keys, msg.csb_id, t, compat_set)
        self = cls.__new__(cls)
        Side.__init__(self)
        id_i, id_r = split_ids(msg)
        self._credentials = None  # type: ignore[assignment]  # not needed to complete
        self.signer = None
        self.peer_certificate = None  # type: ignore[assignment]
        self.peer_chain = ()
        self.validator = x509_crypto.CertificateValidator([])
        self.specs = []
        self.policies = list(msg.find_all(SecurityPolicyPayload))
        self.csb_id = msg.csb_id
        self.key_type = opened.key_type
        self._tgk = opened.key
        self._tgk_salt = opened.salt
        self.rand = rand_p.rand
        self._env_key = envelope_key
        self.key_validity = opened.kv
        self.transport = transport
        self.v = bool(msg.header.v)
        self.id_i = id_i or opened.id_payload or IdPayload(IDType.BYTE_STRING, b"")
        self.send_id_i = id_i is not None
        self.id_r = id_r
        self.include_certificate = False
        self.certificate_url = None
        sign = msg.payloads[-1]
        self.s_type = int(sign.s_type) if isinstance(sign, SignPayload) else 0
        self.sign_hash = "sha256"
        self.pke_oaep = False
        self.oaep_hash = "sha1"
        self.chash = None
        self.cache = int(pke.c)
        self.envelope_key_cache = None
        self.cs_id_map_type = int(msg.header.cs_id_map_type)
        self.verification_coverage = verification_coverage
        self.compat = compat_set
        self.header = msg.header
        self.timestamp = t
        self.i_message = bytes(i_message)
        self.state = State.WAIT_RESPONSE if self.v else State.DONE
        self._result = self._make_result(msg.header, authenticated=False)
        return self


# --- the Responder ---------------------------------------------------------------------------------


@dataclass
class _Checked:
    keys: prf_crypto.TransportKeys | None = field(default=None, repr=False)
    kemac_ok: bool = False


class PkResponder(Responder):
    """The PK Responder: T and replay checks, certificate validation, SIGNi, PKE, KEMAC, keys, V.

    ``credentials`` is our key and certificate, or several (the Initiator's CHASH
    picks the one it encrypted to, §3.2).  ``validator`` holds the trust anchors
    the Initiator's certificate must chain to.  ``peer_certificate`` (+ chain) is
    used when the I_MESSAGE carries no CERT.  ``cert_resolver`` fetches X.509v3
    URL certificates.  With an ``envelope_key_cache`` the Responder also accepts
    PSK-mode update messages keyed with a cached envelope key (§4.5).
    """

    MODE: ClassVar[str] = "pk"
    HANDLERS: ClassVar[dict[tuple[State, int], str]] = {
        (State.START, DataType.PK_INIT): "_on_init",
        (State.START, DataType.PSK_INIT): "_on_psk_update",
    }

    def __init__(
        self,
        credentials: Credentials | Sequence[Credentials],
        validator: x509_crypto.CertificateValidator,
        *,
        peer_certificate: x509.Certificate | None = None,
        peer_chain: Sequence[x509.Certificate] = (),
        cert_resolver: CertResolver | None = None,
        own_ssrcs: Sequence[int] = (),
        id_r: IdPayload | None = None,
        pke_oaep: bool = False,
        oaep_hash: str = "sha1",
        signature_hashes: Sequence[str] = SIGNATURE_HASHES,
        replay_cache: ReplayCache | None = None,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        allow_null_mac: bool = False,
        envelope_key_cache: EnvelopeKeyCache | None = None,
        verification_coverage: str = "rfc",
        compat: Iterable[str] = (),
        rng: Rng = os.urandom,
    ) -> None:
        super().__init__(replay_cache=replay_cache, clock_skew=clock_skew, rng=rng)
        if verification_coverage not in VERIFICATION_COVERAGE:
            raise ValueError(f"verification_coverage must be one of {VERIFICATION_COVERAGE}")
        creds = [credentials] if isinstance(credentials, Credentials) else list(credentials)
        if not creds:
            raise ValueError("at least one credential is needed")
        self._credentials = creds
        self.compat = check_compat(compat, COMPAT_OPTIONS)
        self.validator = validator
        peers = [peer_certificate, *peer_chain] if peer_certificate is not None else []
        self.verifier = PeerVerifier(validator, peers, signature_hashes, resolver=cert_resolver, compat=self.compat)
        self.own_ssrcs = list(own_ssrcs)
        self.id_r = id_r
        self.pke_oaep = pke_oaep
        self.oaep_hash = oaep_hash
        self.allow_null_mac = allow_null_mac
        self.envelope_key_cache = envelope_key_cache
        self.verification_coverage = verification_coverage
        self.result: ExchangeResult | None = None

    def _own_credentials(self, chash: ChashPayload | None) -> Credentials:
        if chash is None:
            return self._credentials[0]
        try:
            x509_crypto.chash_length(int(chash.hash_func))
        except UnsupportedHashError:
            raise
        for c in self._credentials:
            if _chash_matches(chash, c.certificate):
                return c
        raise CertificateError("CHASH names none of our certificates (RFC 3830 §6.8)")

    def _on_psk_update(self, msg: Message, now: float) -> ResponderOutcome:
        """A PSK-mode update keyed with a cached envelope key (RFC 3830 §4.5)."""
        cache = self.envelope_key_cache
        if cache is None:
            raise AuthenticationError("no envelope key cache: PSK update messages are not accepted")
        csb_id = msg.csb_id

        def lookup(id_i: IdPayload | None, id_r: IdPayload | None) -> bytes | None:
            entry = cache.lookup(id_data(id_i), csb_id, now)
            return entry.key if entry is not None else None

        inner = PskResponder(
            lookup, own_ssrcs=self.own_ssrcs, id_r=self.id_r, replay_cache=self.replay_cache,
            clock_skew=self.clock_skew, allow_null_security=False, verification_coverage=self.verification_coverage,
            rng=self.rng,
        )
        outcome = inner.receive(msg.raw_bytes(), now)
        self.result = outcome.result
        self.state = State.DONE
        return outcome

    def _on_init(self, msg: Message, now: float) -> ResponderOutcome:
        hdr = msg.header
        t = msg.find(TimestampPayload)
        rand_p = msg.find(RandPayload)
        kemac = msg.find(KemacPayload)
        pke = msg.find(PkePayload)
        chash = msg.find(ChashPayload)
        id_i, id_r = split_ids(msg)
        state = _Checked()
        try:
            if t is None or rand_p is None or kemac is None or pke is None:
                raise UnspecifiedError("PK I_MESSAGE needs T, RAND, KEMAC, PKE and SIGN (RFC 3830 §3.2)")
            if not isinstance(msg.payloads[-1], SignPayload):
                raise UnspecifiedError("SIGN must be the last payload (RFC 3830 §6.5)")
            admission = self.admit(msg, t, now, id_data(id_i))
            check_algorithms(int(kemac.encr_alg), int(kemac.mac_alg), int(hdr.prf))
            if kemac.encr_alg == EncrAlg.NULL:
                raise UnsupportedEncryptionError("NULL encryption is not allowed in PK mode")
            if kemac.mac_alg == MacAlg.NULL and not (self.allow_null_mac or kemac.encr_alg == EncrAlg.AES_KW_128):
                raise UnsupportedMACError("NULL MAC is only accepted with AES-KW (RFC 3830 §4.2.3)")
            at = message_time(t, now)
            chain = self.verifier.chain(msg.find_all(CertPayload))
            leaf = self.verifier.leaf(chain, at=at, peer_id=id_i)
            self.verifier.verify_signature(msg, leaf)
            own = self._own_credentials(chash)
            env_key = rsa_crypto.decrypt_envelope(own.rsa_private_key, pke.data, self.pke_oaep,
                                                  oaep_hash=self.oaep_hash)
            transport = KeyTransport(int(kemac.encr_alg), int(kemac.mac_alg), int(hdr.prf))
            keys = transport.keys(env_key, hdr.csb_id, rand_p.rand)
            state.keys = keys
            # Implicit rejection: a tampered PKE yields a wrong env_key, caught by this MAC check.
            opened = open_kemac(msg, transport, keys, hdr.csb_id, t, self.compat)
            state.kemac_ok = True
            self._check_encrypted_id(opened.id_payload, id_i, chain, at)
            self.remember(admission)
            header = fill_ssrcs(hdr, self.own_ssrcs)
            policies = tuple(msg.find_all(SecurityPolicyPayload))
            sessions = session_keys_for(opened.key, opened.key_type, header, rand_p.rand, policies, opened.salt)
        except MikeyProtocolError as exc:
            self._attach_error(exc, msg, t, state, id_i, id_r)
            raise
        except MikeyDecodeError as exc:
            err = UnspecifiedError(f"malformed key data: {exc}")
            self._attach_error(err, msg, t, state, id_i, id_r)
            raise err from None
        initiator = id_i or opened.id_payload
        if self.envelope_key_cache is not None and initiator is not None:
            self.envelope_key_cache.store(initiator.data, hdr.csb_id, rand_p.rand, env_key, int(pke.c), now)
        result = ExchangeResult(
            mode=self.MODE,
            csb_id=hdr.csb_id,
            tgk=opened.key,
            rand=rand_p.rand,
            prf=int(hdr.prf),
            crypto_sessions=sessions,
            authenticated=True,
            header=header,
            policies=policies,
            initiator_id=initiator.data if initiator is not None else None,
            responder_id=id_r.data if id_r else (self.id_r.data if self.id_r else None),
            key_validity=opened.kv,
            extras={"cache": int(pke.c), "initiator_certificate": subject_text(leaf)},
        )
        response = None
        if hdr.v:
            if self.verification_coverage == "timestamp-only":
                trailer = t.ts_value
            else:
                trailer = verification_mac_input(b"", id_data(id_i), id_data(id_r), t.ts_value)
            response = verification_message(
                DataType.PK_RESP, header, t, int(kemac.mac_alg), keys.auth_key, self.id_r, trailer
            )
        self.result = result
        self.state = State.DONE
        return ResponderOutcome(result, response)

    def _check_encrypted_id(
        self,
        encrypted: IdPayload | None,
        clear: IdPayload | None,
        chain: Sequence[x509.Certificate | bytes],
        at: datetime,
    ) -> None:
        """§3.2: the encrypted IDi MUST equal the expected IDi (the clear one, else the certificate's)."""
        if encrypted is None:
            return  # "kemac-without-id" compatibility
        if clear is not None:
            if not same_id(encrypted, clear):
                raise AuthenticationError("the encrypted IDi differs from the IDi payload (RFC 3830 §3.2)")
            return
        self.verifier.leaf(chain, at=at, peer_id=encrypted)

    def _attach_error(
        self,
        exc: MikeyProtocolError,
        msg: Message,
        t: TimestampPayload | None,
        state: _Checked,
        id_i: IdPayload | None,
        id_r: IdPayload | None,
    ) -> None:
        """Error message (§5.1.2): with a V MAC once the KEMAC authenticated, else unauthenticated."""
        if exc.err_no is None:
            return
        ts = t if t is not None else TimestampPayload.ntp_utc(0)
        kemac = msg.find(KemacPayload)
        mac = None
        if state.kemac_ok and state.keys is not None and kemac is not None and kemac.mac_alg in MAC_LENGTHS:
            trailer = verification_mac_input(b"", id_data(id_i), id_data(id_r), ts.ts_value)
            mac = (int(kemac.mac_alg), state.keys.auth_key, trailer)
        prf = int(msg.header.prf) if msg.header.prf in (0, 1) else 0
        exc.error_message = build_error_message(msg.csb_id, [exc.err_no], ts, prf=prf, mac=mac)
