"""MIKEY-RSA-R (RFC 4738): unicast and group round trips over the algorithm options, the RAND and SP
rules, SIGNr over R_MESSAGE || IDi || IDr || T, certificates, compatibility switches, and every failure
path with its Error message."""

from __future__ import annotations

import datetime as dt

import pytest
from pki import ALICE_URI, BOB_URI, TwoPartyPki, fresh_key_index, make_ca, make_leaf, two_party_pki
from pki import NOW as PKI_NOW

from mikey.constants import (
    PRF,
    DataType,
    EncrAlg,
    GenExtType,
    KeyDataType,
    MacAlg,
    SignatureType,
    SRTPParam,
)
from mikey.crypto import rsa as rsa_crypto
from mikey.errors import (
    AuthenticationError,
    CertificateError,
    InvalidTimestampError,
    MikeyError,
    PeerError,
    ReplayError,
    UnspecifiedError,
    UnsupportedIDError,
    UnsupportedSPParamsError,
)
from mikey.keystore import Credentials
from mikey.modes.base import CryptoSessionSpec, State, default_srtp_policy
from mikey.modes.keytransport import EnvelopeKeyCache
from mikey.modes.rsa_r import RsaRInitiator, RsaRResponder
from mikey.modes.signing import sign_message
from mikey.replay import ReplayCache
from mikey.wire import (
    ErrorPayload,
    GeneralExtensionPayload,
    IdPayload,
    Message,
    PkePayload,
    RandPayload,
    SecurityPolicyPayload,
    SignPayload,
    TimestampPayload,
)
from mikey.wire.validate import validate

NOW = PKI_NOW.timestamp()
ALICE = ALICE_URI
BOB = BOB_URI
TGK = bytes.fromhex("00112233445566778899aabbccddeeff")


Pki = TwoPartyPki


@pytest.fixture(scope="module")
def pki() -> Pki:
    return two_party_pki("RSA-R Test Root")


def _pair(pki: Pki, **kw: object) -> tuple[RsaRInitiator, RsaRResponder]:
    resp_kw = {k[2:]: kw.pop(k) for k in list(kw) if k.startswith("r_")}
    ini = RsaRInitiator(pki.a, validator=pki.validator, **kw)  # type: ignore[arg-type]
    res = RsaRResponder(pki.b, pki.validator, **resp_kw)  # type: ignore[arg-type]
    return ini, res


def _fps(result: object) -> list[str]:
    return [cs.fingerprint() for cs in result.crypto_sessions]  # type: ignore[attr-defined]


def _error_nos(error_message: bytes | None) -> list[int]:
    assert error_message is not None
    msg = Message.decode(error_message)
    assert msg.data_type == DataType.ERROR
    return [int(p.error_no) for p in msg.find_all(ErrorPayload)]


OPTIONS = [
    {},
    dict(r_encr_alg=EncrAlg.AES_KW_128, r_mac_alg=MacAlg.NULL, s_type=SignatureType.RSA_PSS),
    dict(r_encr_alg=EncrAlg.AES_KW_128, r_s_type=SignatureType.RSA_PSS, r_sign_hash="sha1"),
    dict(r_encr_alg=EncrAlg.AES_CM_256, r_mac_alg=MacAlg.HMAC_SHA_256_256, prf=PRF.PRF_HMAC_SHA_256),
    dict(pke_oaep=True, r_pke_oaep=True, sign_hash="sha1"),
    dict(r_key_type=KeyDataType.TGK_SALT),
    dict(r_key_type=KeyDataType.TEK),
    dict(send_rand=False),  # the Responder supplies RAND (§3.4)
    dict(id_r=IdPayload.uri(BOB), send_id_i=False),
    dict(include_certificate=False, r_peer_certificate=None),
]


@pytest.mark.parametrize("opts", OPTIONS, ids=[str(i) for i in range(len(OPTIONS))])
def test_unicast_round_trip(pki: Pki, opts: dict[str, object]) -> None:
    opts = dict(opts)
    if opts.get("include_certificate") is False:
        opts["r_peer_certificate"] = pki.alice.cert
    ini, res = _pair(pki, crypto_sessions=[CryptoSessionSpec(ssrc=0x1111)], r_own_ssrcs=[0x2222], r_tgk=None,
                     **opts)
    i_msg = ini.create_message(NOW)
    m = Message.decode(i_msg)
    validate(m)
    assert m.data_type == DataType.RSA_R_INIT and m.header.v  # §3.4: V MUST be 1
    out = res.receive(i_msg, NOW + 1)
    assert out.response is not None
    r = Message.decode(out.response)
    validate(r)
    assert r.data_type == DataType.RSA_R_RESP and r.csb_id == m.csb_id
    assert (r.find(RandPayload) is None) == (m.find(RandPayload) is not None)  # exactly one RAND
    assert r.find(TimestampPayload) == m.find(TimestampPayload)  # §3.6: the same T
    final = ini.receive(out.response, NOW + 2)
    assert final.tgk == out.result.tgk and final.authenticated and ini.state == State.DONE
    assert _fps(final) == _fps(out.result)
    assert [cs.ssrc for cs in final.crypto_sessions] == [0x1111, 0x2222]
    assert final.responder_id == BOB.encode() and out.result.initiator_id == (
        ALICE.encode() if opts.get("send_id_i", True) else None)


def test_group_mode(pki: Pki) -> None:
    """§3.2/§3.6: GenExt(CSB_ID), RAND and SP from the Responder; the new CSB ID keys everything."""
    policy = default_srtp_policy(3, tag_len=4)
    ini, res = _pair(pki, group=True, r_group_csb_id=0xC0FFEE01,
                     r_group_crypto_sessions=[CryptoSessionSpec(ssrc=0xAAAA, policy_no=3)], r_policies=[policy])
    i_msg = ini.create_message(NOW)
    m = Message.decode(i_msg)
    assert not m.find_all(SecurityPolicyPayload) and m.find(RandPayload) is None and m.header.n_cs == 0
    out = res.receive(i_msg, NOW)
    assert out.response is not None
    r = Message.decode(out.response)
    ext = r.find(GeneralExtensionPayload)
    assert ext is not None and ext.ext_type == GenExtType.CSB_ID and ext.parse_csb_id() == 0xC0FFEE01
    assert r.find(RandPayload) is not None and r.find(SecurityPolicyPayload) == policy
    final = ini.receive(out.response, NOW)
    assert final.csb_id == out.result.csb_id == 0xC0FFEE01
    assert _fps(final) == _fps(out.result) and [cs.ssrc for cs in final.crypto_sessions] == [0xAAAA]
    # The same TGK under the original CSB ID would give other keys: the new one is really used.
    from mikey.modes.keytransport import session_keys

    other = session_keys(final.tgk, 0, final.header, final.rand, final.policies, None)
    assert _fps(type("R", (), {"crypto_sessions": other})()) != _fps(final)


def test_signr_covers_ids_and_timestamp(pki: Pki) -> None:
    """§3.6: SIGNr = sign(R_MESSAGE up to the Signature field || IDi || IDr || T)."""
    ini, res = _pair(pki, sign_hash="sha256")
    i_msg = ini.create_message(NOW)
    out = res.receive(i_msg, NOW)
    assert out.response is not None
    r = Message.decode(out.response)
    sign = r.payloads[-1]
    assert isinstance(sign, SignPayload)
    t = r.find(TimestampPayload)
    assert t is not None
    covered = out.response[: r.offsets[-1] + 2] + ALICE.encode() + BOB.encode() + t.ts_value
    rsa_crypto.verify(pki.bob.key.public_key(), covered, sign.signature, 0, "sha256")
    # PKE is for the Initiator's key.
    pke = r.find(PkePayload)
    assert pke is not None and len(rsa_crypto.decrypt_envelope(pki.alice.key, pke.data)) == 32


def test_policy_choice_and_check(pki: Pki) -> None:
    offered = SecurityPolicyPayload(0, 0, ((SRTPParam.ENCR_ALG, b"\x01"), (SRTPParam.ENCR_ALG, b"\x06"),
                                           (SRTPParam.AUTH_TAG_LEN, b"\x0a")))
    ini, res = _pair(pki, policies=[offered])
    out = res.receive(ini.create_message(NOW), NOW)
    assert out.response is not None
    chosen = Message.decode(out.response).find(SecurityPolicyPayload)
    assert chosen is not None and chosen.get_int(SRTPParam.ENCR_ALG) == 1 and len(chosen.params) == 2
    ini.receive(out.response, NOW)
    # A Responder refusing everything answers Error 10 (SP parameters not supported), signed.
    ini2, _ = _pair(pki)
    refusing = RsaRResponder(pki.b, pki.validator, accept_policy=lambda sp: False)
    with pytest.raises(UnsupportedSPParamsError) as ei:
        refusing.receive(ini2.create_message(NOW), NOW)
    assert _error_nos(ei.value.error_message) == [10]
    em = Message.decode(ei.value.error_message or b"")
    assert isinstance(em.payloads[-1], SignPayload)  # after SIGNi verified, errors are signed


def _resign(pki: Pki, r_message: bytes, payloads: list[object], trailer: bytes) -> bytes:
    r = Message.decode(r_message)
    return sign_message(r.header, payloads, pki.bob.key, trailer=trailer)  # type: ignore[arg-type]


def test_initiator_discards_bad_rand_and_foreign_policy(pki: Pki) -> None:
    ini, res = _pair(pki)
    i_msg = ini.create_message(NOW)
    out = res.receive(i_msg, NOW)
    assert out.response is not None
    r = Message.decode(out.response)
    t = r.find(TimestampPayload)
    assert t is not None
    trailer = ALICE.encode() + BOB.encode() + t.ts_value
    body = list(r.payloads[:-1])
    with_rand = _resign(pki, out.response, [body[0], RandPayload(bytes(16)), *body[1:]], trailer)
    with pytest.raises(UnspecifiedError, match="RAND"):
        RsaRInitiator.resume(i_msg, pki.a, validator=pki.validator).receive(with_rand, NOW)
    foreign = [default_srtp_policy(0, tag_len=4) if isinstance(p, SecurityPolicyPayload) else p for p in body]
    with pytest.raises(UnsupportedSPParamsError):
        RsaRInitiator.resume(i_msg, pki.a, validator=pki.validator).receive(
            _resign(pki, out.response, foreign, trailer), NOW)
    unicast_ext = [GeneralExtensionPayload.csb_id(5), *body]
    with pytest.raises(UnspecifiedError, match="GenExt"):
        RsaRInitiator.resume(i_msg, pki.a, validator=pki.validator).receive(
            _resign(pki, out.response, unicast_ext, trailer), NOW)


def test_every_flipped_byte_is_rejected(pki: Pki) -> None:
    ini, res = _pair(pki)
    i_msg = ini.create_message(NOW)
    out = res.receive(i_msg, NOW)
    assert out.response is not None
    for pos in range(0, len(i_msg)):
        bad = bytearray(i_msg)
        bad[pos] ^= 0x01
        with pytest.raises(MikeyError):
            RsaRResponder(pki.b, pki.validator).receive(bytes(bad), NOW)
    for pos in range(0, len(out.response)):
        bad = bytearray(out.response)
        bad[pos] ^= 0x01
        fresh = RsaRInitiator.resume(i_msg, pki.a, validator=pki.validator)
        with pytest.raises(MikeyError):
            fresh.receive(bytes(bad), NOW)
        assert fresh.state == State.FAILED


def test_unparseable_message_gets_error_13(pki: Pki) -> None:
    ini, _ = _pair(pki)
    i_msg = ini.create_message(NOW)
    with pytest.raises(MikeyError) as ei:
        RsaRResponder(pki.b, pki.validator).receive(i_msg[:-7] + b"\xff", NOW)
    assert _error_nos(ei.value.error_message) == [13]
    with pytest.raises(MikeyError) as ei:
        RsaRResponder(pki.b, pki.validator, unparseable_error_no=12).receive(i_msg[:-7] + b"\xff", NOW)
    assert _error_nos(ei.value.error_message) == [12]


def test_untrusted_initiator_certificate(pki: Pki) -> None:
    rogue = make_ca("RSA-R Test Root", key_index=fresh_key_index())
    mallory = make_leaf(rogue, "mallory", san_uris=[ALICE], key_index=fresh_key_index())
    ini = RsaRInitiator(Credentials(mallory.key, mallory.cert), validator=pki.validator)
    with pytest.raises(CertificateError) as ei:
        RsaRResponder(pki.b, pki.validator).receive(ini.create_message(NOW), NOW)
    assert _error_nos(ei.value.error_message) == [8]


def test_untrusted_responder_certificate(pki: Pki) -> None:
    rogue = make_ca("RSA-R Test Root", key_index=fresh_key_index())
    mallory = make_leaf(rogue, "mallory", san_uris=[BOB], key_index=fresh_key_index())
    ini, _ = _pair(pki)
    out = RsaRResponder(Credentials(mallory.key, mallory.cert), pki.validator).receive(ini.create_message(NOW), NOW)
    assert out.response is not None
    with pytest.raises(CertificateError):
        ini.receive(out.response, NOW)


def test_expired_certificate_and_wrong_identity(pki: Pki) -> None:
    old = make_leaf(pki.ca, "alice-old", san_uris=[ALICE], not_before=PKI_NOW - dt.timedelta(days=30),
                    not_after=PKI_NOW - dt.timedelta(days=1))
    ini = RsaRInitiator(Credentials(old.key, old.cert), validator=pki.validator)
    with pytest.raises(CertificateError, match="expired"):
        RsaRResponder(pki.b, pki.validator).receive(ini.create_message(NOW), NOW)
    # The Initiator asked for carol: bob answers Error 7, signed.
    ini2, res2 = _pair(pki, id_r=IdPayload.uri("sip:carol@example.com"))
    with pytest.raises(UnsupportedIDError) as ei:
        res2.receive(ini2.create_message(NOW), NOW)
    assert _error_nos(ei.value.error_message) == [7]
    with pytest.raises(PeerError) as pe:
        ini2.receive(ei.value.error_message or b"", NOW)
    assert pe.value.err_nos == [7]


def test_initiator_rejects_responder_other_than_requested(pki: Pki) -> None:
    carol = make_leaf(pki.ca, "carol", san_uris=["sip:carol@example.com"])
    ini = RsaRInitiator(pki.a, validator=pki.validator, id_r=IdPayload.uri(BOB))
    i_msg = ini.create_message(NOW)
    # carol (validly certified) answers although the request named bob.
    res = RsaRResponder(Credentials(carol.key, carol.cert), pki.validator, id_r=IdPayload.uri(BOB))
    out = res.receive(i_msg, NOW)
    assert out.response is not None
    with pytest.raises(CertificateError, match="not bound"):
        ini.receive(out.response, NOW)


def test_replay_and_stale_timestamp(pki: Pki) -> None:
    cache = ReplayCache()
    ini, _ = _pair(pki)
    i_msg = ini.create_message(NOW)
    RsaRResponder(pki.b, pki.validator, replay_cache=cache).receive(i_msg, NOW)
    with pytest.raises(ReplayError) as ei:
        RsaRResponder(pki.b, pki.validator, replay_cache=cache).receive(i_msg, NOW)
    assert ei.value.error_message is None
    with pytest.raises(InvalidTimestampError) as ei2:
        RsaRResponder(pki.b, pki.validator, clock_skew=30).receive(i_msg, NOW + 31)
    assert _error_nos(ei2.value.error_message) == [1]


def test_wrong_initiator_key_cannot_open_pke(pki: Pki) -> None:
    """An R_MESSAGE is only usable by the holder of the Initiator's private key."""
    carol = make_leaf(pki.ca, "carol", san_uris=[ALICE])
    ini, res = _pair(pki)
    i_msg = ini.create_message(NOW)
    out = res.receive(i_msg, NOW)
    assert out.response is not None
    thief = RsaRInitiator.resume(i_msg, pki.a, validator=pki.validator)
    thief._credentials = Credentials(carol.key, carol.cert)  # the wrong private key
    with pytest.raises(AuthenticationError):
        thief.receive(out.response, NOW)


def test_compat_switches(pki: Pki) -> None:
    # minisip-style SIGNr without IDi || IDr || T.
    ini, res = _pair(pki, r_compat=["rsa-r-sign-no-trailer"])
    i_msg = ini.create_message(NOW)
    out = res.receive(i_msg, NOW)
    assert out.response is not None
    with pytest.raises(AuthenticationError):
        ini.receive(out.response, NOW)
    ok = RsaRInitiator.resume(i_msg, pki.a, validator=pki.validator, compat=["rsa-r-sign-no-trailer"])
    assert ok.receive(out.response, NOW).tgk == out.result.tgk
    # Signatures without the SIGN header, both ways.
    ini2, res2 = _pair(pki, compat=["sign-excludes-header"], r_compat=["sign-excludes-header"])
    out2 = res2.receive(ini2.create_message(NOW), NOW)
    assert out2.response is not None and ini2.receive(out2.response, NOW).tgk == out2.result.tgk


def test_envelope_key_cache(pki: Pki) -> None:
    i_cache, r_cache = EnvelopeKeyCache(), EnvelopeKeyCache()
    ini, res = _pair(pki, envelope_key_cache=i_cache, r_envelope_key_cache=r_cache, r_cache=1)
    out = res.receive(ini.create_message(NOW), NOW)
    assert out.response is not None
    ini.receive(out.response, NOW)
    a = i_cache.lookup(BOB.encode(), ini.csb_id, NOW)
    b = r_cache.lookup(ALICE.encode(), ini.csb_id, NOW)
    assert a is not None and b is not None and a.key == b.key


def test_resume_checks_own_signature(pki: Pki) -> None:
    ini, _ = _pair(pki)
    i_msg = ini.create_message(NOW)
    with pytest.raises(AuthenticationError):
        RsaRInitiator.resume(i_msg, pki.b, validator=pki.validator)
