"""MIKEY-RSA-R: public-key transport in reverse (RFC 4738).

I_MESSAGE = HDR, T, [RAND], [IDi|CERTi], [IDr], {SP}, SIGNi                (data type 9, V = 1)
R_MESSAGE = HDR, [GenExt(CSB_ID)], T, [RAND], [IDr|CERTr], [SP], KEMAC, PKE, SIGNr   (data type 10)

The Initiator signs a request; the Responder picks the TGK, sends it in
KEMAC = E(encr_key, IDr || {TGK}) || MAC with the envelope key encrypted to the
Initiator's public key in PKE (§3.6), and signs
``R_MESSAGE (up to the Signature field) || IDi || IDr || T`` (§3.6).

* RAND (§3.4-§3.7): unicast -- exactly one of the two messages carries it (the
  Initiator's by default); group -- the R_MESSAGE always does and it is the one used.
* Group mode (§3.2, §3.6): the Responder adds General Extension type 4 with a
  new CSB ID that both sides use for all key computation (transport keys, the
  KEMAC IV and the TEKs), sends the SP and fills the CS ID map.
* SP (§3.5, §3.7): the Responder returns only policies the Initiator offered;
  the Initiator rejects an R_MESSAGE with a policy it did not offer.
* Errors: an unparseable I_MESSAGE gets Error no 13 (§3.5; ``unparseable_error_no=12``
  for RFC 3830-only peers); after SIGNi verified, Error messages are signed (§5.1.2 of 3830).

Signing and the peer's certificate and SIGN checks are :mod:`mikey.modes.signing`.

Compatibility options (``compat``, see also :mod:`mikey.modes.pk`):

* ``"sign-excludes-header"`` -- signatures without the 2-octet SIGN header (minisip libmikey).
* ``"rsa-r-sign-no-trailer"`` -- SIGNr over the R_MESSAGE alone, without IDi || IDr || T
  (minisip libmikey signs every message the same way).  We then sign that way and accept both.
* ``"fresh-response-timestamp"`` (older name ``"rsa-r-fresh-timestamp"``) -- accept an
  R_MESSAGE carrying a fresh timestamp (checked against the clock skew) instead of the
  I_MESSAGE's T (minisip libmikey); SIGNr is still checked over the I_MESSAGE's T.
* ``"kemac-without-id"`` -- accept a KEMAC without the encrypted IDr.
* ``"response-rand"`` -- accept a unicast R_MESSAGE that carries a RAND although the
  I_MESSAGE did (deployed responders repeat it).  §3.5 says both sides then key with the
  I_MESSAGE's RAND, so the R_MESSAGE's RAND must equal it: it cannot change the keys.
  Without the switch such an R_MESSAGE is refused (§3.7: "silently discard").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ..constants import (
    PRF,
    CacheType,
    CSIdMapType,
    DataType,
    EncrAlg,
    ErrorNo,
    GenExtType,
    KeyDataType,
    MacAlg,
    ProtType,
    SignatureType,
)
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
    UnsupportedIDError,
    UnsupportedMACError,
    UnsupportedSPParamsError,
)
from ..keystore import Credentials
from ..replay import DEFAULT_CLOCK_SKEW
from ..wire import (
    CertPayload,
    CommonHeader,
    ErrorPayload,
    GeneralExtensionPayload,
    IdPayload,
    KemacPayload,
    KeyDataPayload,
    Message,
    Payload,
    PkePayload,
    RandPayload,
    SecurityPolicyPayload,
    SrtpIdEntry,
    TimestampPayload,
)
from .base import (
    Initiator,
    InitiatorKeywords,
    Responder,
    State,
    build_error_message,
    build_header,
    check_keywords,
    fill_ssrcs,
    id_data,
    random_csb_id,
    shared_default_srtp_policy,
)
from .keytransport import (
    COMPAT_BY_MODE,
    COMPAT_FRESH_RESPONSE_TIMESTAMP,
    COMPAT_RESPONSE_RAND,
    COMPAT_RSA_R_FRESH_TIMESTAMP,
    COMPAT_RSA_R_SIGN_NO_TRAILER,
    ENVELOPE_KEY_LENGTH,
    EnvelopeKeyCache,
    KeyTransport,
    RsaRResponderKeywords,
    build_kemac,
    check_algorithms,
    check_response_timestamp,
    compat_hint,
    default_tgk_length,
    open_kemac,
    session_keys,
)
from .results import CryptoSessionSpec, ExchangeResult, ResponderOutcome
from .signing import (
    SIGNATURE_HASHES,
    CertResolver,
    PeerVerifier,
    Signer,
    check_compat,
    check_key_encipherment,
    der_of,
    identity_of,
    message_time,
    pinned_validator,
    same_id,
    sign_message,
    split_ids,
    subject_text,
)

if TYPE_CHECKING:
    from typing import Unpack

__all__ = ["RsaRInitiator", "RsaRResponder", "PolicyFilter", "signed_error_message", "policy_offered",
           "RSA_R_COMPAT"]

#: The deployed variants RSA-R accepts (see the module docstring).
RSA_R_COMPAT = COMPAT_BY_MODE["rsa-r"]

#: Local policy hook: may the Responder accept this SP payload the Initiator offered?
PolicyFilter = Callable[[SecurityPolicyPayload], bool]


def policy_offered(answer: SecurityPolicyPayload, offers: Sequence[SecurityPolicyPayload]) -> bool:
    """Whether every parameter of *answer* was offered in the SP with the same Policy no (RFC 4738 §3.7)."""
    for offer in offers:
        if offer.policy_no == answer.policy_no and offer.prot_type == answer.prot_type:
            offered = set(offer.params)
            return all(p in offered for p in answer.params)
    return False


def choose_policy(offer: SecurityPolicyPayload) -> SecurityPolicyPayload:
    """One option per Security Policy parameter (RFC 4738 §3.6): the first of repeated parameter types."""
    seen: set[int] = set()
    params = []
    for t, v in offer.params:
        if int(t) in seen:
            continue
        seen.add(int(t))
        params.append((t, v))
    return SecurityPolicyPayload(offer.policy_no, offer.prot_type, tuple(params))


def signed_error_message(
    csb_id: int,
    err_nos: Sequence[int],
    t: TimestampPayload,
    credentials: Credentials,
    *,
    prf: int = PRF.MIKEY_1,
    s_type: int = SignatureType.RSA_PKCS1_V1_5,
    hash_name: str = "sha256",
    exclude_header: bool = False,
) -> bytes:
    """Error message HDR, T, {ERR}, SIGNr (RFC 3830 §5.1.2), for failures after the peer authenticated."""
    hdr = CommonHeader(DataType.ERROR, csb_id, (), CSIdMapType.SRTP_ID, False, prf)
    payloads: list[Payload] = [t, *(ErrorPayload(e) for e in err_nos)]
    return sign_message(hdr, payloads, credentials.rsa_private_key, s_type=s_type, hash_name=hash_name,
                        exclude_header=exclude_header)


def _sign_trailer(id_i: IdPayload | None, id_r: IdPayload | None, t: TimestampPayload) -> bytes:
    """IDi || IDr || T appended to the signed R_MESSAGE (RFC 4738 §3.6)."""
    return id_data(id_i) + id_data(id_r) + t.ts_value


def _csb_extension(msg: Message) -> GeneralExtensionPayload | None:
    for p in msg.find_all(GeneralExtensionPayload):
        if p.ext_type == GenExtType.CSB_ID:
            return p
    return None


def _first_id(msg: Message) -> IdPayload | None:
    return msg.find(IdPayload)


class RsaRInitiator(Initiator):
    """The RSA-R Initiator: signs a request (data type 9) and receives the TGK in the R_MESSAGE.

    ``validator`` holds the trust anchors for the Responder's certificate; by
    default ``peer_certificate`` (when known in advance) is the only anchor.
    ``group=True`` asks a group key server: no SP is sent (§3.2) and the
    R_MESSAGE must carry GenExt(CSB_ID), RAND and SP.
    """

    NO_RESULT: ClassVar[str] = "no R_MESSAGE has been accepted yet"
    MODE: ClassVar[str] = "rsa-r"

    def __init__(
        self,
        credentials: Credentials,
        *,
        validator: x509_crypto.CertificateValidator | None = None,
        peer_certificate: x509.Certificate | None = None,
        peer_chain: Sequence[x509.Certificate] = (),
        cert_resolver: CertResolver | None = None,
        group: bool = False,
        send_rand: bool | None = None,
        send_id_i: bool = True,
        include_certificate: bool = True,
        certificate_url: str | None = None,
        s_type: int = SignatureType.RSA_PKCS1_V1_5,
        sign_hash: str = "sha256",
        signature_hashes: Sequence[str] = SIGNATURE_HASHES,
        pke_oaep: bool = False,
        oaep_hash: str = "sha1",
        envelope_key_cache: EnvelopeKeyCache | None = None,
        **options: Unpack[InitiatorKeywords],
    ) -> None:
        """The offer, party and ``compat`` keywords are :class:`~mikey.modes.base.InitiatorKeywords`."""
        check_keywords(options, InitiatorKeywords)
        rng = options.get("rng", os.urandom)
        super().__init__(clock_skew=options.get("clock_skew", DEFAULT_CLOCK_SKEW), rng=rng)
        crypto_sessions, policies = options.get("crypto_sessions"), options.get("policies")
        csb_id, rand, id_i = options.get("csb_id"), options.get("rand"), options.get("id_i")
        if validator is None:
            if peer_certificate is None:
                raise ValueError("a validator (trust anchors) or the Responder's certificate is needed")
            validator = pinned_validator(peer_certificate)
        if s_type not in (SignatureType.RSA_PKCS1_V1_5, SignatureType.RSA_PSS):
            raise ValueError("s_type must be 0 (RSA PKCS#1 v1.5) or 1 (RSA-PSS)")
        self.compat = check_compat(options.get("compat", ()), RSA_R_COMPAT)
        self._credentials = credentials
        self.signer = Signer(credentials, s_type, sign_hash, exclude_header="sign-excludes-header" in self.compat)
        self.validator = validator
        peers = [peer_certificate, *peer_chain] if peer_certificate is not None else []
        self.verifier = PeerVerifier(validator, peers, signature_hashes, resolver=cert_resolver, compat=self.compat)
        self.group = group
        if crypto_sessions is None:
            crypto_sessions = [] if group else [CryptoSessionSpec()]
        self.specs = list(crypto_sessions)
        if group:
            self.policies: list[SecurityPolicyPayload] = []  # §3.2: Initiators MUST NOT send SP
        else:
            self.policies = list(policies) if policies is not None else [shared_default_srtp_policy(0)]
        self.csb_id = csb_id if csb_id is not None else random_csb_id(rng)
        self.send_rand = (not group) if send_rand is None else send_rand
        self.rand = rand if rand is not None else (rng(16) if self.send_rand else b"")
        self.prf = options.get("prf", PRF.MIKEY_1)
        self.id_i = id_i if id_i is not None else identity_of(credentials.certificate)
        self.id_r = options.get("id_r")
        self.send_id_i = send_id_i
        self.include_certificate = include_certificate
        self.certificate_url = certificate_url
        self.s_type = s_type
        self.sign_hash = sign_hash
        self.pke_oaep = pke_oaep
        self.oaep_hash = oaep_hash
        self.envelope_key_cache = envelope_key_cache
        self.cs_id_map_type = options.get("cs_id_map_type", CSIdMapType.SRTP_ID)
        self.header: CommonHeader | None = None
        self.timestamp: TimestampPayload | None = None
        self.i_message: bytes | None = None
        self._result: ExchangeResult | None = None

    def __repr__(self) -> str:
        return f"RsaRInitiator(csb_id={self.csb_id:08x}, state={self.state.value})"

    def _build(self, now: float) -> bytes:
        """The signed I_MESSAGE (RFC 4738 §3.4), V = 1: HDR, T, [RAND], [IDi|CERTi], [IDr], {SP}, SIGNi."""
        self.header = build_header(
            DataType.RSA_R_INIT, self.csb_id, self.specs, map_type=self.cs_id_map_type, v=True, prf=self.prf
        )
        self.timestamp = TimestampPayload.ntp_utc(now)
        payloads: list[Payload] = [self.timestamp]
        if self.send_rand:
            payloads.append(RandPayload(self.rand))
        if self.send_id_i:
            payloads.append(self.id_i)
        payloads += self.signer.cert_payloads(include=self.include_certificate, url=self.certificate_url)
        if self.id_r is not None:
            payloads.append(self.id_r)
        payloads += self.policies
        self.i_message = self.signer.signed_message(self.header, payloads)
        self.state = State.WAIT_RESPONSE
        return self.i_message

    @classmethod
    def resume(
        cls,
        i_message: bytes,
        credentials: Credentials,
        **kwargs: object,
    ) -> RsaRInitiator:
        """Rebuild the Initiator that sent *i_message* (stateless ``complete``), waiting for the R_MESSAGE.

        The I_MESSAGE must verify with *credentials*' certificate (it is ours).
        ``kwargs`` are the constructor's trust and policy options (``validator``,
        ``peer_certificate``, ``group``, ``compat`` ...).
        """
        msg = Message.decode(i_message)
        if msg.data_type != DataType.RSA_R_INIT:
            raise UnspecifiedError("not an RSA-R I_MESSAGE")
        t = msg.find(TimestampPayload)
        if t is None:
            raise UnspecifiedError("RSA-R I_MESSAGE has no T payload")
        compat = check_compat(kwargs.get("compat", ()), RSA_R_COMPAT)  # type: ignore[arg-type]
        PeerVerifier(None, compat=compat).verify_signature(msg, credentials.certificate)
        id_i, id_r = split_ids(msg)
        rand_p = msg.find(RandPayload)
        hdr = msg.header
        init = cls(
            credentials,
            csb_id=hdr.csb_id,
            rand=rand_p.rand if rand_p is not None else b"",
            send_rand=rand_p is not None,
            prf=int(hdr.prf),
            id_i=id_i if id_i is not None else identity_of(credentials.certificate),
            id_r=id_r,
            send_id_i=id_i is not None,
            cs_id_map_type=int(hdr.cs_id_map_type),
            **kwargs,  # type: ignore[arg-type]
        )
        if not init.group:
            init.policies = list(msg.find_all(SecurityPolicyPayload))
        init.header = hdr
        init.timestamp = t
        init.i_message = bytes(i_message)
        init.state = State.WAIT_RESPONSE
        return init

    def _check_rand(self, msg: Message, group: bool) -> bytes:
        """RAND rules of RFC 4738 §3.4-§3.7 (a violating R_MESSAGE is discarded)."""
        rand_r = msg.find(RandPayload)
        if group:
            if rand_r is None:
                raise UnspecifiedError("group-mode R_MESSAGE must carry RAND (RFC 4738 §3.2)")
            return rand_r.rand
        if self.send_rand:
            if rand_r is not None:
                if COMPAT_RESPONSE_RAND not in self.compat:
                    raise UnspecifiedError(
                        "R_MESSAGE carries RAND although the I_MESSAGE did (RFC 4738 §3.7); one repeating the "
                        "I_MESSAGE's RAND is " + compat_hint(COMPAT_RESPONSE_RAND)
                    )
                if rand_r.rand != self.rand:
                    raise UnspecifiedError(
                        "R_MESSAGE carries a RAND other than the I_MESSAGE's; in unicast both sides key with "
                        "the I_MESSAGE's RAND (RFC 4738 §3.5)"
                    )
            return self.rand
        if rand_r is None:
            raise UnspecifiedError("R_MESSAGE lacks RAND although the I_MESSAGE had none (RFC 4738 §3.7)")
        return rand_r.rand

    def _on_response(self, msg: Message, now: float) -> ExchangeResult:
        """R_MESSAGE = HDR, [GenExt(CSB_ID)], T, [RAND], [IDr|CERTr], [SP], KEMAC, PKE, SIGNr (RFC 4738 §3.6)."""
        if self.timestamp is None:
            raise StateError("no I_MESSAGE has been built")
        hdr = msg.header
        if hdr.csb_id != self.csb_id:
            raise AuthenticationError("R_MESSAGE CSB ID does not match the I_MESSAGE (RFC 4738 §3.6)")
        t = msg.find(TimestampPayload)
        if t is None:
            raise UnspecifiedError("R_MESSAGE has no T payload")
        check_response_timestamp(t, self.timestamp, self.compat, now, self.clock_skew, rfc="RFC 4738 §3.6",
                                 names=(COMPAT_FRESH_RESPONSE_TIMESTAMP, COMPAT_RSA_R_FRESH_TIMESTAMP))
        ext = _csb_extension(msg)
        if ext is not None and not self.group:
            raise UnspecifiedError("GenExt(CSB_ID) in a unicast R_MESSAGE (RFC 4738 §3.6)")
        if ext is None and self.group:
            raise UnspecifiedError("group-mode R_MESSAGE lacks GenExt(CSB_ID) (RFC 4738 §3.6)")
        try:
            key_csb = ext.parse_csb_id() if ext is not None else self.csb_id
        except MikeyDecodeError as e:
            raise UnspecifiedError(str(e)) from None
        rand = self._check_rand(msg, ext is not None)
        kemac = msg.find(KemacPayload)
        pke = msg.find(PkePayload)
        if kemac is None or pke is None:
            raise UnspecifiedError("R_MESSAGE needs KEMAC and PKE (RFC 4738 §3.6)")
        id_r_clear = _first_id(msg)
        if id_r_clear is not None and self.id_r is not None and not same_id(id_r_clear, self.id_r):
            raise AuthenticationError("the Responder is not the IDr the I_MESSAGE asked for (RFC 4738 §3.4)")
        expected_r = id_r_clear or self.id_r
        at = message_time(t, now)
        chain = self.verifier.chain(msg.find_all(CertPayload))
        leaf = self.verifier.leaf(chain, at=at, peer_id=expected_r)
        id_i = self.id_i if self.send_id_i else None
        trailer_r = id_r_clear if id_r_clear is not None else self.id_r
        trailers = [_sign_trailer(id_i, trailer_r, self.timestamp)]
        if COMPAT_RSA_R_SIGN_NO_TRAILER in self.compat:
            trailers.append(b"")
        self.verifier.verify_signature(msg, leaf, trailers=trailers)
        answered = msg.find_all(SecurityPolicyPayload)
        if self.policies:
            if not answered:
                raise UnsupportedSPParamsError("R_MESSAGE lacks the SP payload (RFC 4738 §3.6)")
            for sp in answered:
                if not policy_offered(sp, self.policies):
                    raise UnsupportedSPParamsError(f"R_MESSAGE policy {sp.policy_no} was not offered (RFC 4738 §3.7)")
        elif self.group and not answered:
            raise UnsupportedSPParamsError("group-mode R_MESSAGE lacks SP (RFC 4738 §3.2)")
        check_algorithms(int(kemac.encr_alg), int(kemac.mac_alg), int(hdr.prf))
        if kemac.encr_alg == EncrAlg.NULL:
            raise UnsupportedEncryptionError("NULL encryption is not allowed for the TGK")
        if kemac.mac_alg == MacAlg.NULL and kemac.encr_alg != EncrAlg.AES_KW_128:
            raise UnsupportedMACError("NULL MAC is only accepted with AES-KW (RFC 3830 §4.2.3)")
        env_key = rsa_crypto.decrypt_envelope(self._credentials.rsa_private_key, pke.data, self.pke_oaep,
                                              oaep_hash=self.oaep_hash)
        transport = KeyTransport(int(kemac.encr_alg), int(kemac.mac_alg), int(hdr.prf))
        keys = transport.keys(env_key, key_csb, rand)
        opened = open_kemac(msg, transport, keys, t, kemac=kemac, with_id=True, compat=self.compat, csb_id=key_csb)
        if opened.id_payload is not None:
            if expected_r is not None and not same_id(opened.id_payload, expected_r):
                raise AuthenticationError("the encrypted IDr differs from the expected IDr (RFC 4738 §3.6)")
            if expected_r is None:
                self.verifier.leaf(chain, at=at, peer_id=opened.id_payload)
        policies = tuple(answered) if answered else tuple(self.policies)
        sessions = session_keys(opened.key, opened.key_type, hdr, rand, policies, opened.salt, csb_id=key_csb)
        responder = expected_r or opened.id_payload
        if self.envelope_key_cache is not None:
            self.envelope_key_cache.store(id_data(responder), key_csb, rand, env_key, int(pke.c), now)
        self.state = State.DONE
        self._result = ExchangeResult(
            mode=self.MODE,
            csb_id=key_csb,
            tgk=opened.key,
            rand=rand,
            prf=int(hdr.prf),
            crypto_sessions=sessions,
            authenticated=True,
            header=hdr,
            policies=policies,
            initiator_id=self.id_i.data,
            responder_id=responder.data if responder is not None else None,
            key_validity=opened.key_validity,
            extras={"cache": int(pke.c), "group": ext is not None, "request_csb_id": self.csb_id,
                    "responder_certificate": subject_text(leaf)},
        )
        return self._result

    HANDLERS = {(State.WAIT_RESPONSE, DataType.RSA_R_RESP): _on_response}


@dataclass
class _Progress:
    authenticated: bool = False
    t: TimestampPayload | None = field(default=None)


class RsaRResponder(Responder):
    """The RSA-R Responder: verifies SIGNi, picks the TGK, answers with KEMAC, PKE and SIGNr.

    ``validator`` holds the trust anchors for the Initiator's certificate;
    ``peer_certificate`` (+ chain) is used when the I_MESSAGE has no CERT.
    ``group_csb_id`` switches to group mode (RFC 4738 §3.2): the R_MESSAGE
    carries GenExt(CSB_ID) with it, RAND, ``policies`` and a CS ID map of
    ``group_crypto_sessions``.  In unicast mode the offered SPs that
    ``accept_policy`` allows are returned (one option per parameter).
    """

    MODE: ClassVar[str] = "rsa-r"

    def __init__(
        self,
        credentials: Credentials,
        validator: x509_crypto.CertificateValidator,
        *,
        peer_certificate: x509.Certificate | None = None,
        peer_chain: Sequence[x509.Certificate] = (),
        cert_resolver: CertResolver | None = None,
        send_id_r: bool = True,
        include_certificate: bool = True,
        certificate_url: str | None = None,
        policies: Sequence[SecurityPolicyPayload] | None = None,
        accept_policy: PolicyFilter | None = None,
        group_csb_id: int | None = None,
        group_crypto_sessions: Sequence[CryptoSessionSpec] = (),
        rand: bytes | None = None,
        envelope_key: bytes | None = None,
        s_type: int = SignatureType.RSA_PKCS1_V1_5,
        sign_hash: str = "sha256",
        signature_hashes: Sequence[str] = SIGNATURE_HASHES,
        pke_oaep: bool = False,
        oaep_hash: str = "sha1",
        cache: int = CacheType.NO_CACHE,
        envelope_key_cache: EnvelopeKeyCache | None = None,
        unparseable_error_no: int = ErrorNo.UNSUPPORTED_MESSAGE_TYPE,
        compat: Iterable[str] = (),
        **options: Unpack[RsaRResponderKeywords],
    ) -> None:
        self._init_responder(options, RsaRResponderKeywords)
        rng = self.rng
        encr_alg = options.get("encr_alg", EncrAlg.AES_CM_128)
        mac_alg = options.get("mac_alg", MacAlg.HMAC_SHA_1_160)
        key_type = options.get("key_type", KeyDataType.TGK)
        tgk = options.get("tgk")
        if encr_alg == EncrAlg.NULL:
            raise UnsupportedEncryptionError("NULL encryption would send the TGK in the clear")
        check_algorithms(encr_alg, mac_alg, PRF.MIKEY_1)
        if s_type not in (SignatureType.RSA_PKCS1_V1_5, SignatureType.RSA_PSS):
            raise ValueError("s_type must be 0 (RSA PKCS#1 v1.5) or 1 (RSA-PSS)")
        if cache not in (CacheType.NO_CACHE, CacheType.CACHE, CacheType.CACHE_FOR_CSB):
            raise ValueError("cache must be 0, 1 or 2 (RFC 3830 Table 6.3)")
        self.compat = check_compat(compat, RSA_R_COMPAT)
        self._credentials = credentials
        self.signer = Signer(credentials, s_type, sign_hash, exclude_header="sign-excludes-header" in self.compat)
        self.validator = validator
        peers = [peer_certificate, *peer_chain] if peer_certificate is not None else []
        self.verifier = PeerVerifier(validator, peers, signature_hashes, resolver=cert_resolver, compat=self.compat)
        id_r = options.get("id_r")
        self.id_r: IdPayload = id_r if id_r is not None else identity_of(credentials.certificate)
        self.send_id_r = send_id_r
        self.include_certificate = include_certificate
        self.certificate_url = certificate_url
        self.policies = list(policies) if policies is not None else None
        self.accept_policy = accept_policy
        self.group_csb_id = group_csb_id
        self.group_specs = list(group_crypto_sessions)
        self.key_type = key_type
        self._tgk = tgk if tgk is not None else rng(default_tgk_length(encr_alg, key_type))
        self._tgk_salt = options.get("tgk_salt")
        self._rand = rand
        self._env_key = envelope_key if envelope_key is not None else rng(ENVELOPE_KEY_LENGTH)
        self.key_validity = options.get("key_validity")
        self.encr_alg = encr_alg
        self.mac_alg = mac_alg
        self.s_type = s_type
        self.sign_hash = sign_hash
        self.pke_oaep = pke_oaep
        self.oaep_hash = oaep_hash
        self.cache = cache
        self.envelope_key_cache = envelope_key_cache
        self.unparseable_error_no = unparseable_error_no

    def _salt(self) -> bytes | None:
        if self.key_type in (KeyDataType.TGK_SALT, KeyDataType.TEK_SALT):
            if self._tgk_salt is None:
                self._tgk_salt = self.rng(14)
            return self._tgk_salt
        return None

    def _choose_policies(self, offered: Sequence[SecurityPolicyPayload], hdr: CommonHeader
                         ) -> list[SecurityPolicyPayload]:
        """§3.5: return offered policies matching local policy (one option per parameter)."""
        if self.group_csb_id is not None:
            return list(self.policies) if self.policies else [shared_default_srtp_policy(0)]
        if not offered:
            return list(self.policies) if self.policies else []
        chosen = []
        for sp in offered:
            if sp.prot_type != ProtType.SRTP:
                continue
            if self.accept_policy is not None and not self.accept_policy(sp):
                continue
            chosen.append(choose_policy(sp))
        if not chosen:
            raise UnsupportedSPParamsError("none of the offered security policies is acceptable (RFC 4738 §3.4)")
        kept = {p.policy_no for p in chosen}
        for e in hdr.cs_id_map:
            if isinstance(e, SrtpIdEntry) and e.policy_no not in kept:
                raise UnsupportedSPParamsError(f"policy {e.policy_no} of a crypto session is not acceptable")
        return chosen

    def _response_header(self, hdr: CommonHeader, policies: Sequence[SecurityPolicyPayload]) -> CommonHeader:
        """§3.6: the Responder fills #CS, the map type and the map (group: its own map)."""
        if self.group_csb_id is not None:
            return build_header(DataType.RSA_R_RESP, hdr.csb_id, self.group_specs, prf=int(hdr.prf))
        filled = fill_ssrcs(hdr, self.own_ssrcs)
        entries = list(filled.cs_id_map)
        used = sum(1 for e in hdr.cs_id_map if isinstance(e, SrtpIdEntry) and e.ssrc == 0)
        if hdr.cs_id_map_type == CSIdMapType.SRTP_ID:
            policy_no = policies[0].policy_no if policies else 0
            entries += [SrtpIdEntry(policy_no, s, 0) for s in self.own_ssrcs[used:]]
        return CommonHeader(DataType.RSA_R_RESP, hdr.csb_id, tuple(entries), hdr.cs_id_map_type, False, hdr.prf,
                            hdr.version, None if entries else hdr.cs_count)

    def _on_init(self, msg: Message, now: float) -> ResponderOutcome:
        hdr = msg.header
        t = msg.find(TimestampPayload)
        id_i, id_r_req = split_ids(msg)
        progress = _Progress(t=t)
        try:
            if t is None:
                raise UnspecifiedError("RSA-R I_MESSAGE needs T and SIGN (RFC 4738 §3.4)")
            admission = self.admit(msg, t, now, id_data(id_i))
            at = message_time(t, now)
            certs = msg.find_all(CertPayload)
            chain = self.verifier.chain(certs)
            leaf = self.verifier.leaf(chain, at=at, peer_id=id_i)
            self.verifier.verify_signature(msg, leaf)
            progress.authenticated = True
            self.remember(admission)
            if id_r_req is not None and not same_id(id_r_req, self.id_r):
                raise UnsupportedIDError("the I_MESSAGE asks for another Responder identity (RFC 4738 §3.4)")
            enc_chain = self.verifier.chain(certs, "encrypt")
            if enc_chain and der_of(enc_chain[0]) != der_of(chain[0]):
                enc_leaf = self.verifier.leaf(enc_chain, at=at, peer_id=id_i, purpose="encrypt")
            else:
                enc_leaf = leaf
                check_key_encipherment(leaf)
            public_key = enc_leaf.public_key()
            if not isinstance(public_key, RSAPublicKey):
                raise CertificateError("the Initiator's certificate does not hold an RSA key")
            check_algorithms(self.encr_alg, self.mac_alg, int(hdr.prf))
            group = self.group_csb_id is not None
            policies = self._choose_policies(msg.find_all(SecurityPolicyPayload), hdr)
            header = self._response_header(hdr, policies)
            rand_i = msg.find(RandPayload)
            if group or rand_i is None:
                rand = self._rand if self._rand is not None else self.rng(16)
                send_rand = True
            else:
                rand = rand_i.rand
                send_rand = False
            key_csb = self.group_csb_id if self.group_csb_id is not None else hdr.csb_id
            transport = KeyTransport(self.encr_alg, self.mac_alg, int(hdr.prf))
            keys = transport.keys(self._env_key, key_csb, rand)
            key_data = KeyDataPayload(self.key_type, self._tgk, self._salt(), self.key_validity)
            kemac = build_kemac(transport, keys, key_csb, t, [self.id_r, key_data])
            try:
                pke_data = rsa_crypto.encrypt_envelope(public_key, self._env_key, self.pke_oaep,
                                                       oaep_hash=self.oaep_hash)
            except CryptoError as e:
                raise UnspecifiedError(f"cannot encrypt the envelope key: {e}") from None
            payloads: list[Payload] = []
            if self.group_csb_id is not None:
                payloads.append(GeneralExtensionPayload.csb_id(self.group_csb_id))
            payloads.append(t)
            if send_rand:
                payloads.append(RandPayload(rand))
            if self.send_id_r:
                payloads.append(self.id_r)
            payloads += self.signer.cert_payloads(include=self.include_certificate, url=self.certificate_url)
            payloads += policies
            payloads += [kemac, PkePayload(self.cache, pke_data)]
            trailer_r = self.id_r if self.send_id_r else id_r_req
            trailer = b"" if COMPAT_RSA_R_SIGN_NO_TRAILER in self.compat else _sign_trailer(id_i, trailer_r, t)
            response = self.signer.signed_message(header, payloads, trailer=trailer)
            sessions = session_keys(self._tgk, self.key_type, header, rand, policies, self._salt(),
                                    csb_id=key_csb)
        except MikeyProtocolError as exc:
            self._attach_error(exc, msg, progress)
            raise
        if self.envelope_key_cache is not None and id_i is not None:
            self.envelope_key_cache.store(id_i.data, key_csb, rand, self._env_key, self.cache, now)
        result = ExchangeResult(
            mode=self.MODE,
            csb_id=key_csb,
            tgk=self._tgk,
            rand=rand,
            prf=int(hdr.prf),
            crypto_sessions=sessions,
            authenticated=True,
            header=header,
            policies=tuple(policies),
            initiator_id=id_i.data if id_i is not None else None,
            responder_id=self.id_r.data,
            key_validity=self.key_validity,
            extras={"cache": int(self.cache), "group": group, "request_csb_id": hdr.csb_id,
                    "initiator_certificate": subject_text(leaf)},
        )
        self.result = result
        self.state = State.DONE
        return ResponderOutcome(result, response)

    HANDLERS = {(State.START, DataType.RSA_R_INIT): _on_init}

    def _attach_error(self, exc: MikeyProtocolError, msg: Message, progress: _Progress) -> None:
        """Error message (§5.1.2 of RFC 3830): signed once SIGNi verified, unauthenticated before."""
        if exc.err_no is None:
            return
        ts = progress.t if progress.t is not None else TimestampPayload.ntp_utc(0)
        prf = int(msg.header.prf) if msg.header.prf in (0, 1) else 0
        if progress.authenticated:
            exc.error_message = signed_error_message(
                msg.csb_id, [exc.err_no], ts, self._credentials, prf=prf, s_type=self.s_type,
                hash_name=self.sign_hash, exclude_header="sign-excludes-header" in self.compat,
            )
        else:
            exc.error_message = build_error_message(msg.csb_id, [exc.err_no], ts, prf=prf)

