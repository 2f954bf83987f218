"""Public-key transport mode (RFC 3830 §3.2, §4.1.4, §4.5, §5.2, §6.2, §6.3, §6.5, §6.7, §6.8).

I_MESSAGE = HDR, T, RAND, [IDi|CERTi], [IDr], {SP}, KEMAC, [CHASH], PKE, SIGNi
R_MESSAGE = HDR, T, [IDr], V                          (only when the Initiator sets V)

* PKE = E(PKr, env_key): RSAES-PKCS1-v1_5 (mandatory, §4.2.5) or RSAES-OAEP.
* KEMAC = E(encr_key, IDi || {TGK}) || MAC, keys from env_key (§4.1.4); the MAC
  covers the KEMAC payload only, with its Next payload field set to zero (§5.2, §6.2).
* SIGNi covers the whole message up to the Signature field (§5.2), computed on
  the received bytes; the S type selects PKCS#1 v1.5 (0) or PSS (1).
* The V message is the PSK one, keyed from env_key (§3.2, §5.2); the KEMAC, V and Error
  machinery is the shared :mod:`mikey.modes.keytransport`.
* The envelope key cache (PKE C field, Table 6.3): a cached env_key is used as
  the pre-shared key of later PSK-mode update messages (§3.2, §4.5); see
  :class:`~mikey.modes.keytransport.EnvelopeKeyCache` and
  :meth:`~mikey.modes.psk.PskInitiator.from_envelope_key`.

Signing, CERT payloads and the peer's certificate and SIGN checks are the shared
:mod:`mikey.modes.signing`.

Compatibility options (``compat``), all off by default -- each names a known
deployed variant and is accepted only when asked for:

* ``"sign-excludes-header"``: the signature does not cover the 2-octet S type /
  Signature len header of SIGN (minisip libmikey signs ``message - SIGN
  payload``; also a literal reading of RFC 4738 §3.6).  When set we sign that
  way, and accept both coverages.
* ``"kemac-without-id"``: accept a KEMAC whose encrypted data starts directly
  with the Key data sub-payloads, without the encrypted IDi/IDr (minisip
  libmikey's PK mode).  The encrypted-ID check of §3.2 is then skipped.
* ``"fresh-response-timestamp"``: accept an R_MESSAGE carrying the Responder's own
  clock in T, V still over the Initiator's T (see :mod:`mikey.modes.keytransport`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ..constants import CacheType, DataType, EncrAlg, IDType, KeyDataType, MacAlg, SignatureType
from ..crypto import prf as prf_crypto
from ..crypto import rsa as rsa_crypto
from ..crypto import x509 as x509_crypto
from ..errors import (
    AuthenticationError,
    CertificateError,
    CryptoError,
    MikeyDecodeError,
    MikeyProtocolError,
    StateError,
    UnspecifiedError,
    UnsupportedEncryptionError,
    UnsupportedHashError,
    UnsupportedMACError,
)
from ..keystore import Credentials
from ..replay import DEFAULT_CLOCK_SKEW
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
)
from .base import (
    IdResponderKeywords,
    Initiator,
    Responder,
    Side,
    State,
    build_header,
    fill_ssrcs,
    id_data,
    merge_responder_ssrcs,
    random_csb_id,
    shared_default_srtp_policy,
)
from .keytransport import (
    COMPAT_BY_MODE,
    ENVELOPE_KEY_LENGTH,
    VERIFICATION_COVERAGE,
    CachedEnvelopeKey,
    EnvelopeKeyCache,
    KeyTransport,
    TransportKeywords,
    TransportOptions,
    attach_error,
    build_kemac,
    check_algorithms,
    check_coverage,
    check_verification,
    default_tgk_length,
    open_kemac,
    receive_psk_message,
    session_keys,
    verification_message,
    verification_trailer,
)
from .results import CryptoSessionSpec, ExchangeResult, ResponderOutcome
from .signing import (
    SIGNATURE_HASHES,
    CertResolver,
    PeerVerifier,
    Signer,
    check_compat,
    check_key_encipherment,
    identity_of,
    message_time,
    pinned_validator,
    same_id,
    split_ids,
    subject_text,
)

if TYPE_CHECKING:
    from typing import Unpack

__all__ = [
    "PkInitiator",
    "PkResponder",
    "EnvelopeKeyCache",
    "CachedEnvelopeKey",
    "CertResolver",
    "COMPAT_OPTIONS",
    "PK_COMPAT",
    "SIGNATURE_HASHES",
    "VERIFICATION_COVERAGE",
    "check_key_encipherment",
]

#: The deployed variants PK accepts (see the module docstring).
PK_COMPAT = COMPAT_BY_MODE["pk"]
#: The names PK and RSA-R accept between them (the older shared list; per mode see COMPAT_BY_MODE).
COMPAT_OPTIONS = PK_COMPAT | COMPAT_BY_MODE["rsa-r"]


def _chash_matches(chash: ChashPayload, cert: x509.Certificate) -> bool:
    try:
        x509_crypto.check_chash(int(chash.hash_func), chash.digest, x509_crypto.certificate_der(cert))
    except CertificateError:
        return False
    return True


# --- the Initiator ---------------------------------------------------------------------------------


class PkInitiator(Initiator):
    """The PK Initiator: encrypts an envelope key to the Responder, signs the I_MESSAGE, checks V.

    ``credentials`` hold our RSA key and certificate chain (signing);
    ``peer_certificate`` (plus ``peer_chain``) is the Responder's, used for PKE.
    It is validated at :meth:`create_message` time against ``validator`` -- by
    default a validator that trusts exactly that certificate (the "specific peer"
    model of RFC 3830 §4.3.2).  The offer and key keywords are
    :class:`~mikey.modes.keytransport.TransportOptions`.
    """

    MODE: ClassVar[str] = "pk"

    def __init__(
        self,
        credentials: Credentials,
        peer_certificate: x509.Certificate,
        *,
        peer_chain: Sequence[x509.Certificate] = (),
        validator: x509_crypto.CertificateValidator | None = None,
        envelope_key: bytes | None = None,
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
        **options: Unpack[TransportKeywords],
    ) -> None:
        o = TransportOptions(**options)
        rng = o.rng or os.urandom
        super().__init__(rng=rng,
                         clock_skew=DEFAULT_CLOCK_SKEW if o.clock_skew is None else o.clock_skew)
        self.transport = o.transport()
        if o.encr_alg == EncrAlg.NULL:
            raise UnsupportedEncryptionError("NULL encryption would send the TGK in the clear")
        self.verification_coverage = check_coverage(o.verification_coverage)
        if s_type not in (SignatureType.RSA_PKCS1_V1_5, SignatureType.RSA_PSS):
            raise ValueError("s_type must be 0 (RSA PKCS#1 v1.5) or 1 (RSA-PSS)")
        if cache not in (CacheType.NO_CACHE, CacheType.CACHE, CacheType.CACHE_FOR_CSB):
            raise ValueError("cache must be 0, 1 or 2 (RFC 3830 Table 6.3)")
        self.compat = check_compat(o.compat, PK_COMPAT) if o.compat else frozenset()
        self._credentials = credentials
        self.signer: Signer | None = Signer(credentials, s_type, sign_hash,
                                            exclude_header="sign-excludes-header" in self.compat)
        self.peer_certificate = peer_certificate
        self.peer_chain = tuple(peer_chain)
        self.validator = validator if validator is not None else pinned_validator(peer_certificate)
        self.specs = list(o.crypto_sessions) if o.crypto_sessions else [CryptoSessionSpec()]
        self.policies = list(o.policies) if o.policies is not None else [shared_default_srtp_policy(0)]
        self.csb_id = o.csb_id if o.csb_id is not None else random_csb_id(rng)
        self.key_type = o.key_type
        self._tgk = o.tgk if o.tgk is not None else rng(default_tgk_length(o.encr_alg, o.key_type))
        self._tgk_salt = o.tgk_salt
        self.rand = o.rand if o.rand is not None else rng(16)
        self._env_key = envelope_key if envelope_key is not None else rng(ENVELOPE_KEY_LENGTH)
        self.key_validity = o.key_validity
        self.v = o.v
        self.id_i = o.id_i if o.id_i is not None else identity_of(credentials.certificate)
        self.id_r = o.id_r
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
        self.cs_id_map_type = o.cs_id_map_type
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

    def _build(self, now: float) -> bytes:
        """The I_MESSAGE (RFC 3830 §3.2): HDR, T, RAND, [IDi|CERTi], [IDr], {SP}, KEMAC, [CHASH], PKE, SIGNi."""
        if self.signer is None:
            raise StateError("a resumed Initiator cannot build an I_MESSAGE")
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
        sessions = session_keys(self._tgk, self.key_type, header, self.rand, self.policies, self._salt())
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

    def _on_response(self, msg: Message, now: float) -> ExchangeResult:
        """R_MESSAGE = HDR, T, [IDr], V keyed from the envelope key (RFC 3830 §3.2, §5.2)."""
        header, timestamp = self.header, self.timestamp
        if header is None or timestamp is None:
            raise StateError("no I_MESSAGE has been built")
        keys = self.transport.keys(self._env_key, self.csb_id, self.rand)
        id_i = self.id_i if self.send_id_i else None
        trailer = verification_trailer(self.verification_coverage, id_i, self.id_r, timestamp.ts_value)
        check_verification(msg, timestamp, self.transport, keys, trailer, self.compat, now, self.clock_skew,
                           self.csb_id)
        merged = merge_responder_ssrcs(header, msg.header)
        self.state = State.DONE
        result = self._make_result(merged, authenticated=True)
        id_r = msg.find(IdPayload)
        if id_r is not None and result.responder_id is None:
            result = replace(result, responder_id=id_r.data)
        self._result = result
        return result

    HANDLERS = {(State.WAIT_RESPONSE, DataType.PK_RESP): _on_response}

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
        compat_set = check_compat(compat, PK_COMPAT)
        transport = KeyTransport(int(kemac.encr_alg), int(kemac.mac_alg), int(msg.header.prf))
        keys = transport.keys(envelope_key, msg.csb_id, rand_p.rand)
        opened = open_kemac(msg, transport, keys, t, kemac=kemac, with_id=True, compat=compat_set)
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
        self.key_validity = opened.key_validity
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
        self.verification_coverage = check_coverage(verification_coverage)
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

    def __init__(
        self,
        credentials: Credentials | Sequence[Credentials],
        validator: x509_crypto.CertificateValidator,
        *,
        peer_certificate: x509.Certificate | None = None,
        peer_chain: Sequence[x509.Certificate] = (),
        cert_resolver: CertResolver | None = None,
        pke_oaep: bool = False,
        oaep_hash: str = "sha1",
        signature_hashes: Sequence[str] = SIGNATURE_HASHES,
        allow_null_mac: bool = False,
        envelope_key_cache: EnvelopeKeyCache | None = None,
        verification_coverage: str = "rfc",
        compat: Iterable[str] = (),
        **options: Unpack[IdResponderKeywords],
    ) -> None:
        self._init_responder(options)
        self.verification_coverage = check_coverage(verification_coverage)
        creds = [credentials] if isinstance(credentials, Credentials) else list(credentials)
        if not creds:
            raise ValueError("at least one credential is needed")
        self._credentials = creds
        self.compat = check_compat(compat, PK_COMPAT)
        self.validator = validator
        peers = [peer_certificate, *peer_chain] if peer_certificate is not None else []
        self.verifier = PeerVerifier(validator, peers, signature_hashes, resolver=cert_resolver, compat=self.compat)
        self.pke_oaep = pke_oaep
        self.oaep_hash = oaep_hash
        self.allow_null_mac = allow_null_mac
        self.envelope_key_cache = envelope_key_cache

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

        outcome = receive_psk_message(
            self, msg, now, lookup, own_ssrcs=self.own_ssrcs, id_r=self.id_r,
            verification_coverage=self.verification_coverage,
        )
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
            opened = open_kemac(msg, transport, keys, t, kemac=kemac, with_id=True, compat=self.compat)
            state.kemac_ok = True
            self._check_encrypted_id(opened.id_payload, id_i, chain, at)
            self.remember(admission)
            header = fill_ssrcs(hdr, self.own_ssrcs)
            policies = tuple(msg.find_all(SecurityPolicyPayload))
            sessions = session_keys(opened.key, opened.key_type, header, rand_p.rand, policies, opened.salt)
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
            key_validity=opened.key_validity,
            extras={"cache": int(pke.c), "initiator_certificate": subject_text(leaf)},
        )
        response = None
        if hdr.v:
            trailer = verification_trailer(self.verification_coverage, id_i, id_r, t.ts_value)
            response = verification_message(
                DataType.PK_RESP, header, t, int(kemac.mac_alg), keys.auth_key, self.id_r, trailer
            )
        self.result = result
        self.state = State.DONE
        return ResponderOutcome(result, response)

    HANDLERS = {
        (State.START, DataType.PK_INIT): _on_init,
        (State.START, DataType.PSK_INIT): _on_psk_update,
    }

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

    @staticmethod
    def _attach_error(
        exc: MikeyProtocolError,
        msg: Message,
        t: TimestampPayload | None,
        state: _Checked,
        id_i: IdPayload | None,
        id_r: IdPayload | None,
    ) -> None:
        """Error message (§5.1.2): with a V MAC once the KEMAC authenticated, else unauthenticated."""
        kemac = msg.find(KemacPayload)
        mac = None
        if state.kemac_ok and state.keys is not None and kemac is not None:
            mac = (int(kemac.mac_alg), state.keys.auth_key)
        attach_error(exc, msg, t, mac, id_i, id_r)
