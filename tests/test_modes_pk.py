"""Public-key transport mode (RFC 3830 §3.2): round trips over every algorithm option, the KEMAC MAC
coverage of §5.2, SIGN over the received bytes, certificates and CHASH, the envelope key cache (§4.5),
stateless resumption, compatibility switches, and every failure path with its Error message."""

from __future__ import annotations

import datetime as dt
import hmac

import pytest
from pki import ALICE_URI, BOB_URI, TwoPartyPki, fresh_key_index, make_ca, make_leaf, two_party_pki
from pki import NOW as PKI_NOW

from mikey.constants import (
    PRF,
    CacheType,
    CertType,
    DataType,
    EncrAlg,
    ErrorNo,
    HashFunc,
    KeyDataType,
    MacAlg,
    PayloadType,
    SignatureType,
)
from mikey.crypto import kemac as kemac_crypto
from mikey.crypto import rsa as rsa_crypto
from mikey.errors import (
    AuthenticationError,
    CertificateError,
    InvalidTimestampError,
    MikeyError,
    PeerError,
    ReplayError,
    StateError,
)
from mikey.keystore import Credentials
from mikey.modes.base import CryptoSessionSpec, State
from mikey.modes.keytransport import EnvelopeKeyCache, KeyTransport, build_kemac
from mikey.modes.pk import PkInitiator, PkResponder
from mikey.modes.psk import PskInitiator
from mikey.modes.signing import sign_message
from mikey.replay import ReplayCache
from mikey.wire import (
    CertPayload,
    ErrorPayload,
    IdPayload,
    KemacPayload,
    KeyDataPayload,
    Message,
    PkePayload,
    RandPayload,
    SignPayload,
    TimestampPayload,
    decode_sub_payloads,
)
from mikey.wire.validate import validate

NOW = PKI_NOW.timestamp()
ALICE = ALICE_URI
BOB = BOB_URI
TGK = bytes.fromhex("00112233445566778899aabbccddeeff")
ENV = bytes(range(32))


Pki = TwoPartyPki


@pytest.fixture(scope="module")
def pki() -> Pki:
    return two_party_pki("PK Test Root")


def _pair(pki: Pki, **kw: object) -> tuple[PkInitiator, PkResponder]:
    resp_kw = {k: kw.pop(k) for k in list(kw) if k.startswith("r_")}
    ini = PkInitiator(pki.a, pki.bob.cert, validator=pki.validator, **kw)  # type: ignore[arg-type]
    res = PkResponder(pki.b, pki.validator, **{k[2:]: v for k, v in resp_kw.items()})  # type: ignore[arg-type]
    return ini, res


def _fps(result: object) -> list[str]:
    return [cs.fingerprint() for cs in result.crypto_sessions]  # type: ignore[attr-defined]


# --- round trips ---------------------------------------------------------------------------------

OPTIONS = [
    dict(encr_alg=EncrAlg.AES_CM_128, mac_alg=MacAlg.HMAC_SHA_1_160),
    dict(encr_alg=EncrAlg.AES_KW_128, mac_alg=MacAlg.HMAC_SHA_1_160, s_type=SignatureType.RSA_PSS),
    dict(encr_alg=EncrAlg.AES_KW_128, mac_alg=MacAlg.NULL, sign_hash="sha1"),  # §4.2.3: KW with NULL MAC
    dict(encr_alg=EncrAlg.AES_CM_256, mac_alg=MacAlg.HMAC_SHA_256_256, prf=PRF.PRF_HMAC_SHA_256),
    dict(s_type=SignatureType.RSA_PSS, sign_hash="sha1", pke_oaep=True, r_pke_oaep=True),
    dict(pke_oaep=True, oaep_hash="sha256", r_pke_oaep=True, r_oaep_hash="sha256", chash=HashFunc.SHA_256),
    dict(chash=HashFunc.SHA_1, key_type=KeyDataType.TGK_SALT),
    dict(chash=HashFunc.MD5, key_type=KeyDataType.TEK),
    dict(key_type=KeyDataType.TEK_SALT, prf=PRF.PRF_HMAC_SHA_256, mac_alg=MacAlg.HMAC_SHA_256_256),
    dict(send_id_i=False, id_r=IdPayload.uri(BOB)),
    dict(include_certificate=False, r_peer_certificate=None),  # Responder knows alice's cert
    dict(cache=CacheType.CACHE_FOR_CSB),
]


@pytest.mark.parametrize("v", [True, False])
@pytest.mark.parametrize("opts", OPTIONS, ids=[str(i) for i in range(len(OPTIONS))])
def test_round_trip(pki: Pki, opts: dict[str, object], v: bool) -> None:
    opts = dict(opts)
    if opts.get("include_certificate") is False:
        opts["r_peer_certificate"] = pki.alice.cert
    ini, res = _pair(pki, tgk=TGK if opts.get("key_type") is None else None, v=v,
                     crypto_sessions=[CryptoSessionSpec(ssrc=0x1111), CryptoSessionSpec(ssrc=0)],
                     r_own_ssrcs=[0x2222], **opts)
    i_msg = ini.create_message(NOW)
    msg = Message.decode(i_msg)
    validate(msg)  # the layout of RFC 3830 §3.2
    assert msg.data_type == DataType.PK_INIT and isinstance(msg.payloads[-1], SignPayload)
    out = res.receive(i_msg, NOW + 2)
    assert out.result.tgk == ini.result.tgk
    assert out.result.authenticated
    assert out.result.initiator_id == ALICE.encode()
    if v:
        assert out.response is not None
        validate(Message.decode(out.response))
        final = ini.receive(out.response, NOW + 3)
        assert final.authenticated and ini.state == State.DONE
        assert _fps(final) == _fps(out.result)
        assert [cs.ssrc for cs in final.crypto_sessions] == [0x1111, 0x2222]
    else:
        assert out.response is None and ini.state == State.DONE
        assert [cs.fingerprint() for cs in ini.result.crypto_sessions][0] == _fps(out.result)[0]


def test_kemac_mac_covers_kemac_only_with_next_payload_zero(pki: Pki) -> None:
    """§5.2/§6.2: MAC over the KEMAC payload alone, Next payload = 0, MAC field excluded."""
    ini, _ = _pair(pki, envelope_key=ENV, tgk=TGK)
    msg = Message.decode(ini.create_message(NOW))
    idx = msg.index(KemacPayload)
    start, end = msg.payload_span(idx)
    kemac = msg.payloads[idx]
    assert isinstance(kemac, KemacPayload)
    raw = msg.raw_bytes()
    assert raw[start] == PayloadType.PKE  # on the wire the next payload is PKE (no CHASH) ...
    keys = ini.transport.keys(ENV, msg.csb_id, ini.rand)
    covered = b"\x00" + raw[start + 1 : end - 20]  # ... but the MAC sees zero there
    assert hmac.compare_digest(kemac_crypto.compute_mac(MacAlg.HMAC_SHA_1_160, keys.auth_key, covered), kemac.mac)
    # The encrypted data is IDi || Key data (§3.2).
    t = msg.find(TimestampPayload)
    assert t is not None
    plain = kemac_crypto.decrypt(EncrAlg.AES_CM_128, keys.encr_key, keys.salt, msg.csb_id, t.ts_value,
                                 kemac.encr_data)
    subs = decode_sub_payloads(plain, PayloadType.ID)
    assert subs[0] == IdPayload.uri(ALICE)
    assert isinstance(subs[1], KeyDataPayload) and subs[1].key == TGK
    # PKE decrypts to the envelope key with bob's key (PKCS#1 v1.5 by default).
    pke = msg.find(PkePayload)
    assert pke is not None and rsa_crypto.decrypt_envelope(pki.bob.key, pke.data) == ENV


def test_signature_covers_message_up_to_signature_field(pki: Pki) -> None:
    """§5.2: the signature covers everything before the Signature field, S type/len header included."""
    ini, _ = _pair(pki, sign_hash="sha1")
    raw = ini.create_message(NOW)
    msg = Message.decode(raw)
    off = msg.offsets[-1]
    sign = msg.payloads[-1]
    assert isinstance(sign, SignPayload) and len(sign.signature) == 256
    rsa_crypto.verify(pki.alice.key.public_key(), raw[: off + 2], sign.signature, 0, "sha1")
    with pytest.raises(AuthenticationError):
        rsa_crypto.verify(pki.alice.key.public_key(), raw[:off], sign.signature, 0, "sha1")


def test_multiple_credentials_selected_by_chash(pki: Pki) -> None:
    other = make_leaf(pki.ca, "bob-2", san_uris=[BOB])
    ini = PkInitiator(pki.a, other.cert, validator=pki.validator, chash=HashFunc.SHA_1)
    res = PkResponder([pki.b, Credentials(other.key, other.cert)], pki.validator)
    assert res.receive(ini.create_message(NOW), NOW).result.tgk == ini.result.tgk


def test_cert_url_resolved_by_application(pki: Pki) -> None:
    url = "http://certs.example.com/alice.cer"
    ini, _ = _pair(pki, certificate_url=url)
    i_msg = ini.create_message(NOW)
    cert = Message.decode(i_msg).find(CertPayload)
    assert cert is not None and cert.cert_type == CertType.X509V3_URL and cert.data == url.encode()
    seen: list[str] = []

    def resolve(u: str) -> list[object]:
        seen.append(u)
        return [pki.alice.cert]

    res = PkResponder(pki.b, pki.validator, cert_resolver=resolve)  # type: ignore[arg-type]
    assert res.receive(i_msg, NOW).result.tgk == ini.result.tgk and seen == [url]
    with pytest.raises(CertificateError) as ei:
        PkResponder(pki.b, pki.validator).receive(i_msg, NOW)
    assert ei.value.err_no == ErrorNo.INVALID_CERT


def test_repr_has_no_secrets(pki: Pki) -> None:
    ini, res = _pair(pki, tgk=TGK, envelope_key=ENV)
    ini.create_message(NOW)
    text = repr(ini) + repr(res) + repr(ini.result) + repr(EnvelopeKeyCache())
    for secret in (TGK.hex(), ENV.hex()):
        assert secret not in text
    assert "PRIVATE" not in text


# --- stateless completion and the envelope key cache --------------------------------------------


def test_resume_from_envelope_key(pki: Pki) -> None:
    ini, res = _pair(pki, v=True, crypto_sessions=[CryptoSessionSpec(ssrc=0)], r_own_ssrcs=[0x99])
    i_msg = ini.create_message(NOW)
    out = res.receive(i_msg, NOW)
    again = PkInitiator.resume(i_msg, ini.envelope_key)
    assert again.state == State.WAIT_RESPONSE and again.result.tgk == ini.result.tgk
    assert out.response is not None
    assert _fps(again.receive(out.response, NOW)) == _fps(out.result)
    with pytest.raises(AuthenticationError):
        PkInitiator.resume(i_msg, bytes(32))


@pytest.mark.parametrize("cache", [CacheType.CACHE, CacheType.CACHE_FOR_CSB])
def test_cached_envelope_key_keys_a_psk_update(pki: Pki, cache: int) -> None:
    """§3.2/§4.5: a cached envelope key is the PSK of a later PSK-mode update for the same CSB."""
    i_cache, r_cache = EnvelopeKeyCache(), EnvelopeKeyCache()
    ini, res = _pair(pki, cache=cache, id_r=IdPayload.uri(BOB), envelope_key_cache=i_cache,
                     r_envelope_key_cache=r_cache)
    i_msg = ini.create_message(NOW)
    res.receive(i_msg, NOW)
    assert len(i_cache) == len(r_cache) == 1
    update = PskInitiator.from_envelope_key(i_cache, BOB.encode(), ini.csb_id, NOW + 10, id_i=IdPayload.uri(ALICE),
                                            tgk=bytes(16), v=True)
    u_msg = update.create_message(NOW + 10)
    assert Message.decode(u_msg).data_type == DataType.PSK_INIT
    responder2 = PkResponder(pki.b, pki.validator, envelope_key_cache=r_cache)
    out = responder2.receive(u_msg, NOW + 10)
    assert out.result.tgk == bytes(16) and out.response is not None
    assert _fps(update.receive(out.response, NOW + 11)) == _fps(out.result)
    # Cache for CSB only: another CSB finds nothing; Cache (C = 1): any CSB of that peer.
    found = r_cache.lookup(ALICE.encode(), ini.csb_id ^ 1, NOW)
    assert (found is not None) == (cache == CacheType.CACHE)


def test_uncached_envelope_key_is_not_a_psk(pki: Pki) -> None:
    r_cache = EnvelopeKeyCache()
    ini, res = _pair(pki, cache=CacheType.NO_CACHE, r_envelope_key_cache=r_cache)
    res.receive(ini.create_message(NOW), NOW)
    assert len(r_cache) == 0
    with pytest.raises(StateError):
        PskInitiator.from_envelope_key(EnvelopeKeyCache(), BOB.encode(), ini.csb_id, NOW + 5)
    u_msg = PskInitiator(ini.envelope_key, csb_id=ini.csb_id, id_i=IdPayload.uri(ALICE)).create_message(NOW + 5)
    with pytest.raises(AuthenticationError):
        PkResponder(pki.b, pki.validator, envelope_key_cache=r_cache).receive(u_msg, NOW + 5)


def test_cache_entries_expire(pki: Pki) -> None:
    cache = EnvelopeKeyCache(max_age=60)
    cache.store(b"peer", 7, b"r" * 16, ENV, CacheType.CACHE, NOW)
    assert cache.lookup(b"peer", 7, NOW + 59) is not None
    assert cache.lookup(b"peer", 7, NOW + 61) is None


# --- tampering and failures ---------------------------------------------------------------------


def _error_nos(error_message: bytes | None) -> list[int]:
    assert error_message is not None
    msg = Message.decode(error_message)
    assert msg.data_type == DataType.ERROR
    return [int(p.error_no) for p in msg.find_all(ErrorPayload)]


def test_every_flipped_byte_is_rejected(pki: Pki) -> None:
    ini, _ = _pair(pki, v=True)
    i_msg = ini.create_message(NOW)
    msg = Message.decode(i_msg)
    kinds: dict[str, int] = {}
    for pos in range(len(i_msg)):
        bad = bytearray(i_msg)
        bad[pos] ^= 0x01
        res = PkResponder(pki.b, pki.validator)
        with pytest.raises(MikeyError) as ei:
            res.receive(bytes(bad), NOW)
        assert res.state == State.FAILED
        kinds[ei.value.kind] = kinds.get(ei.value.kind, 0) + 1
    # The signature and the KEMAC/PKE/RAND bytes fail authentication; CERT bytes fail the certificate.
    assert kinds.get("authentication", 0) > 500
    assert "certificate" in kinds
    # A flip inside the KEMAC encrypted data: authentication failure, unauthenticated Error message ERR 0.
    kidx = msg.index(KemacPayload)
    start, _ = msg.payload_span(kidx)
    bad = bytearray(i_msg)
    bad[start + 5] ^= 0x80
    with pytest.raises(AuthenticationError) as ei2:
        PkResponder(pki.b, pki.validator).receive(bytes(bad), NOW)
    assert _error_nos(ei2.value.error_message) == [0]


def test_tampered_pke_caught_by_kemac_mac(pki: Pki) -> None:
    """Implicit rejection: a re-signed message with a corrupted PKE fails at the KEMAC MAC."""
    ini, _ = _pair(pki, envelope_key=ENV)
    msg = Message.decode(ini.create_message(NOW))
    pke = msg.find(PkePayload)
    assert pke is not None
    corrupted = bytearray(pke.data)
    corrupted[100] ^= 0x04
    payloads = [PkePayload(pke.c, bytes(corrupted)) if p is pke else p for p in msg.payloads[:-1]]
    forged = sign_message(msg.header, payloads, pki.alice.key)
    with pytest.raises(AuthenticationError, match="MAC"):
        PkResponder(pki.b, pki.validator).receive(forged, NOW)


def test_wrong_responder_key(pki: Pki) -> None:
    carol = make_leaf(pki.ca, "carol", san_uris=["sip:carol@example.com"])
    ini, _ = _pair(pki)
    i_msg = ini.create_message(NOW)
    with pytest.raises(AuthenticationError) as ei:
        PkResponder(Credentials(carol.key, carol.cert), pki.validator).receive(i_msg, NOW)
    assert _error_nos(ei.value.error_message) == [0]
    ini2, _ = _pair(pki, chash=HashFunc.SHA_1)
    with pytest.raises(CertificateError):
        PkResponder(Credentials(carol.key, carol.cert), pki.validator).receive(ini2.create_message(NOW), NOW)


def test_wrong_certificate_for_signing_key(pki: Pki) -> None:
    """CERTi must belong to the signing key: alice's key with carol's certificate fails SIGN."""
    carol = make_leaf(pki.ca, "carol", san_uris=[ALICE])  # even with alice's URI in it
    wrong = Credentials.__new__(Credentials)
    object.__setattr__(wrong, "private_key", pki.alice.key)
    object.__setattr__(wrong, "certificate", carol.cert)
    object.__setattr__(wrong, "chain", ())
    ini = PkInitiator(wrong, pki.bob.cert, validator=pki.validator)
    with pytest.raises(AuthenticationError):
        PkResponder(pki.b, pki.validator).receive(ini.create_message(NOW), NOW)


def test_untrusted_certificate_gets_cert_error_message(pki: Pki) -> None:
    rogue_ca = make_ca("PK Test Root", key_index=fresh_key_index())  # same name, other key
    mallory = make_leaf(rogue_ca, "mallory", san_uris=[ALICE], key_index=fresh_key_index())
    ini = PkInitiator(Credentials(mallory.key, mallory.cert), pki.bob.cert, validator=pki.validator)
    res = PkResponder(pki.b, pki.validator)
    with pytest.raises(CertificateError) as ei:
        res.receive(ini.create_message(NOW), NOW)
    assert ei.value.err_no == 8 and _error_nos(ei.value.error_message) == [8]


def test_expired_certificate(pki: Pki) -> None:
    old = make_leaf(pki.ca, "alice-old", san_uris=[ALICE], not_before=PKI_NOW - dt.timedelta(days=30),
                    not_after=PKI_NOW - dt.timedelta(days=1))
    ini = PkInitiator(Credentials(old.key, old.cert), pki.bob.cert, validator=pki.validator)
    with pytest.raises(CertificateError, match="expired"):
        PkResponder(pki.b, pki.validator).receive(ini.create_message(NOW), NOW)
    # The Initiator refuses an expired Responder certificate itself.
    old_bob = make_leaf(pki.ca, "bob-old", san_uris=[BOB], not_before=PKI_NOW - dt.timedelta(days=30),
                        not_after=PKI_NOW - dt.timedelta(days=1))
    with pytest.raises(CertificateError):
        PkInitiator(pki.a, old_bob.cert, validator=pki.validator).create_message(NOW)


def test_clear_idi_must_match_certificate(pki: Pki) -> None:
    ini, _ = _pair(pki, id_i=IdPayload.uri("sip:mallory@example.com"))
    with pytest.raises(CertificateError, match="not bound"):
        PkResponder(pki.b, pki.validator).receive(ini.create_message(NOW), NOW)


def test_encrypted_idi_must_equal_clear_idi(pki: Pki) -> None:
    """§3.2: the encrypted IDi MUST be verified against the expected IDi."""
    ini, _ = _pair(pki, envelope_key=ENV, tgk=TGK)
    msg = Message.decode(ini.create_message(NOW))
    t = msg.find(TimestampPayload)
    rand = msg.find(RandPayload)
    assert t is not None and rand is not None
    transport = KeyTransport(EncrAlg.AES_CM_128, MacAlg.HMAC_SHA_1_160, 0)
    keys = transport.keys(ENV, msg.csb_id, rand.rand)
    kemac = build_kemac(transport, keys, msg.csb_id, t,
                        [IdPayload.uri("sip:eve@example.com"), KeyDataPayload(KeyDataType.TGK, TGK)])
    payloads = [kemac if isinstance(p, KemacPayload) else p for p in msg.payloads[:-1]]
    forged = sign_message(msg.header, payloads, pki.alice.key)
    with pytest.raises(AuthenticationError, match="encrypted IDi"):
        PkResponder(pki.b, pki.validator).receive(forged, NOW)


def test_replay_is_discarded_without_error_message(pki: Pki) -> None:
    cache = ReplayCache()
    ini, _ = _pair(pki)
    i_msg = ini.create_message(NOW)
    PkResponder(pki.b, pki.validator, replay_cache=cache).receive(i_msg, NOW)
    with pytest.raises(ReplayError) as ei:
        PkResponder(pki.b, pki.validator, replay_cache=cache).receive(i_msg, NOW + 1)
    assert ei.value.error_message is None


def test_stale_timestamp(pki: Pki) -> None:
    ini, _ = _pair(pki)
    i_msg = ini.create_message(NOW)
    with pytest.raises(InvalidTimestampError) as ei:
        PkResponder(pki.b, pki.validator, clock_skew=60).receive(i_msg, NOW + 61)
    assert _error_nos(ei.value.error_message) == [1]


def test_tampered_verification_message(pki: Pki) -> None:
    ini, res = _pair(pki, v=True)
    out = res.receive(ini.create_message(NOW), NOW)
    assert out.response is not None
    bad = bytearray(out.response)
    bad[-1] ^= 1
    with pytest.raises(AuthenticationError):
        ini.receive(bytes(bad), NOW)
    assert ini.state == State.FAILED


def test_error_message_reaches_initiator(pki: Pki) -> None:
    ini, _ = _pair(pki, v=True)
    i_msg = ini.create_message(NOW)
    with pytest.raises(InvalidTimestampError) as ei:
        PkResponder(pki.b, pki.validator, clock_skew=1).receive(i_msg, NOW + 100)
    assert ei.value.error_message is not None
    with pytest.raises(PeerError) as pe:
        ini.receive(ei.value.error_message, NOW + 100)
    assert pe.value.err_nos == [1]


def test_peer_certificate_must_allow_key_encipherment(pki: Pki) -> None:
    signer_only = make_leaf(pki.ca, "bob-sign", san_uris=[BOB], key_usage=("digital_signature",))
    with pytest.raises(CertificateError, match="keyEncipherment"):
        PkInitiator(pki.a, signer_only.cert, validator=pki.validator).create_message(NOW)


# --- compatibility switches ---------------------------------------------------------------------


def test_compat_sign_excludes_header(pki: Pki) -> None:
    """minisip libmikey signs the message without the SIGN payload's 2-octet header."""
    ini, _ = _pair(pki, compat=["sign-excludes-header"])
    i_msg = ini.create_message(NOW)
    with pytest.raises(AuthenticationError):
        PkResponder(pki.b, pki.validator).receive(i_msg, NOW)
    out = PkResponder(pki.b, pki.validator, compat=["sign-excludes-header"]).receive(i_msg, NOW)
    assert out.result.tgk == ini.result.tgk
    # The switch also accepts RFC-conformant signatures.
    ini2, _ = _pair(pki)
    PkResponder(pki.b, pki.validator, compat=["sign-excludes-header"]).receive(ini2.create_message(NOW), NOW)


def test_compat_kemac_without_id(pki: Pki) -> None:
    """minisip libmikey's PK KEMAC carries the Key data only, no encrypted IDi."""
    ini, _ = _pair(pki, envelope_key=ENV, tgk=TGK)
    msg = Message.decode(ini.create_message(NOW))
    t = msg.find(TimestampPayload)
    rand = msg.find(RandPayload)
    assert t is not None and rand is not None
    transport = KeyTransport(EncrAlg.AES_CM_128, MacAlg.HMAC_SHA_1_160, 0)
    kemac = build_kemac(transport, transport.keys(ENV, msg.csb_id, rand.rand), msg.csb_id, t,
                        [KeyDataPayload(KeyDataType.TGK, TGK)])
    payloads = [kemac if isinstance(p, KemacPayload) else p for p in msg.payloads[:-1]]
    forged = sign_message(msg.header, payloads, pki.alice.key)
    with pytest.raises(AuthenticationError):
        PkResponder(pki.b, pki.validator).receive(forged, NOW)
    out = PkResponder(pki.b, pki.validator, compat=["kemac-without-id"]).receive(forged, NOW)
    assert out.result.tgk == TGK


def test_unknown_compat_option_is_refused(pki: Pki) -> None:
    with pytest.raises(ValueError):
        PkResponder(pki.b, pki.validator, compat=["anything-goes"])


def test_null_encryption_refused(pki: Pki) -> None:
    from mikey.errors import UnsupportedEncryptionError

    with pytest.raises(UnsupportedEncryptionError):
        PkInitiator(pki.a, pki.bob.cert, validator=pki.validator, encr_alg=EncrAlg.NULL, mac_alg=MacAlg.NULL)


def test_signature_hashes_policy(pki: Pki) -> None:
    """The verifier tries the configured hashes; a SHA-1-only policy refuses a SHA-256 signature."""
    ini, _ = _pair(pki, sign_hash="sha256")
    i_msg = ini.create_message(NOW)
    with pytest.raises(AuthenticationError):
        PkResponder(pki.b, pki.validator, signature_hashes=["sha1"]).receive(i_msg, NOW)
    assert PkResponder(pki.b, pki.validator, signature_hashes=["sha256"]).receive(i_msg, NOW).result.authenticated


def test_sign_payload_lengths(pki: Pki) -> None:
    ini, _ = _pair(pki, s_type=SignatureType.RSA_PSS)
    sign = Message.decode(ini.create_message(NOW)).payloads[-1]
    assert isinstance(sign, SignPayload) and sign.s_type == SignatureType.RSA_PSS and len(sign.signature) == 256
