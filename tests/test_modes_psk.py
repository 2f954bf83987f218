"""PSK mode (RFC 3830 §3.1): round trips over every algorithm, key derivation checked independently,
verification message, SSRC filling, rekeying, and every failure path with its Error message."""

from __future__ import annotations

import hashlib
import hmac
import itertools

import pytest

from mikey.constants import (
    PRF,
    CSIdMapType,
    DataType,
    EncrAlg,
    ErrorNo,
    KeyDataType,
    MacAlg,
    SRTPEncrAlg,
    SRTPParam,
)
from mikey.crypto import kemac as kemac_crypto
from mikey.crypto import prf as prf_crypto
from mikey.errors import (
    AuthenticationError,
    InvalidTimestampError,
    MikeyDecodeError,
    MikeyProtocolError,
    PeerError,
    ReplayError,
    StateError,
    UnspecifiedError,
    UnsupportedDataTypeError,
    UnsupportedEncryptionError,
    UnsupportedMACError,
    UnsupportedSPParamsError,
)
from mikey.modes.base import CryptoSessionSpec, State
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.replay import ReplayCache
from mikey.wire import (
    ErrorPayload,
    IdPayload,
    KemacPayload,
    Message,
    RandPayload,
    SecurityPolicyPayload,
    SpiValidity,
    TimestampPayload,
    VerificationPayload,
    decode_sub_payloads,
)

NOW = 1_700_000_000.0
PSK = bytes(range(16))
TGK = bytes.fromhex("00112233445566778899aabbccddeeff")
RAND = bytes.fromhex("0f0e0d0c0b0a09080706050403020100")
ID_I = IdPayload.uri("sip:alice@example.com")
ID_R = IdPayload.uri("sip:bob@example.com")


def _rfc_prf(inkey: bytes, label: bytes, out_len: int, sha256: bool = False) -> bytes:
    """RFC 3830 §4.1.2 written out independently of mikey.crypto.prf."""
    h = hashlib.sha256 if sha256 else hashlib.sha1
    hlen = h().digest_size
    m = -(-out_len // hlen)
    out = bytes(m * hlen)
    for i in range(0, max(len(inkey), 1), 32):
        s = inkey[i : i + 32]
        a = label
        chunk = b""
        for _ in range(m):
            a = hmac.new(s, a, h).digest()
            chunk += hmac.new(s, a + label, h).digest()
        out = bytes(x ^ y for x, y in zip(out, chunk, strict=True))
    return out[:out_len]


def built(**kw: object) -> tuple[PskInitiator, PskResponder, bytes]:
    """A PSK Initiator, a fresh Responder and the I_MESSAGE, not yet received (the tests tamper with it
    first; whole exchanges go through tests/twoparty.py)."""
    init = PskInitiator(PSK, **kw)  # type: ignore[arg-type]
    resp = PskResponder(PSK)
    return init, resp, init.create_message(NOW)


@pytest.mark.parametrize(
    ("encr", "mac", "prf"),
    list(
        itertools.product(
            [EncrAlg.NULL, EncrAlg.AES_CM_128, EncrAlg.AES_KW_128, EncrAlg.AES_CM_256],
            [MacAlg.NULL, MacAlg.HMAC_SHA_1_160, MacAlg.HMAC_SHA_256_256],
            [PRF.MIKEY_1, PRF.PRF_HMAC_SHA_256],
        )
    ),
)
def test_round_trip_every_algorithm(encr: int, mac: int, prf: int) -> None:
    specs = [CryptoSessionSpec(0x11111111), CryptoSessionSpec(0)]
    null = encr == EncrAlg.NULL or mac == MacAlg.NULL
    init = PskInitiator(PSK, crypto_sessions=specs, encr_alg=encr, mac_alg=mac, prf=prf, v=True, id_i=ID_I, id_r=ID_R,
                        allow_null_security=null)
    i_msg = init.create_message(NOW)
    resp = PskResponder(PSK, own_ssrcs=[0x22222222], allow_null_security=null)
    out = resp.receive(i_msg, NOW + 5)
    assert out.response is not None
    res = init.receive(out.response, NOW + 6)
    assert init.state is State.DONE and resp.state is State.DONE
    assert res.tgk == out.result.tgk
    assert [c.ssrc for c in res.crypto_sessions] == [0x11111111, 0x22222222]
    assert [(c.master_key, c.master_salt) for c in res.crypto_sessions] == [
        (c.master_key, c.master_salt) for c in out.result.crypto_sessions
    ]
    assert res.authenticated is (mac != MacAlg.NULL) and out.result.authenticated is (mac != MacAlg.NULL)
    assert res.extras["null_security"] is null and out.result.extras["null_security"] is null
    assert out.result.initiator_id == b"sip:alice@example.com"


def test_keys_match_independent_derivation() -> None:
    """TEK and salt per CS follow RFC 3830 §4.1.3 with label const || cs_id || csb_id || RAND."""
    init = PskInitiator(
        PSK, tgk=TGK, rand=RAND, csb_id=0x01020304,
        crypto_sessions=[CryptoSessionSpec(0xAAAA), CryptoSessionSpec(0xBBBB)],
    )
    out = PskResponder(PSK).receive(init.create_message(NOW), NOW)
    for cs_id, cs in enumerate(out.result.crypto_sessions, 1):
        label = cs_id.to_bytes(1, "big") + (0x01020304).to_bytes(4, "big") + RAND
        assert cs.master_key == _rfc_prf(TGK, bytes.fromhex("2AD01C64") + label, 16)
        assert cs.master_salt == _rfc_prf(TGK, bytes.fromhex("39A2C14B") + label, 14)
    assert out.result.tgk == TGK


def test_kemac_mac_and_encryption_checked_independently() -> None:
    init = PskInitiator(PSK, tgk=TGK, rand=RAND, csb_id=7)
    raw = init.create_message(NOW)
    msg = Message.decode(raw)
    kemac = msg.find(KemacPayload)
    assert kemac is not None and msg.payloads[-1] is kemac
    lab = b"\xff" + (7).to_bytes(4, "big") + RAND
    auth = _rfc_prf(PSK, bytes.fromhex("2D22AC75") + lab, 20)
    encr = _rfc_prf(PSK, bytes.fromhex("150533E1") + lab, 16)
    salt = _rfc_prf(PSK, bytes.fromhex("29B88916") + lab, 14)
    assert hmac.new(auth, raw[:-20], hashlib.sha1).digest() == kemac.mac
    t = msg.payloads[0]
    plain = kemac_crypto.decrypt(1, encr, salt, 7, t.ts_value, kemac.encr_data)  # type: ignore[attr-defined]
    (kd,) = decode_sub_payloads(plain)
    assert kd.key == TGK and kd.key_type == KeyDataType.TGK  # type: ignore[attr-defined]


def test_message_layout_and_default_policy() -> None:
    _, _, raw = built(id_i=ID_I, id_r=ID_R)
    msg = Message.decode(raw)
    assert [p.NAME for p in msg.payloads] == ["T", "RAND", "ID", "ID", "SP", "KEMAC"]
    assert msg.data_type == DataType.PSK_INIT and not msg.header.v
    sp = msg.find(SecurityPolicyPayload)
    assert sp is not None and sp.get_int(SRTPParam.ENCR_ALG) == SRTPEncrAlg.AES_CM


def test_no_response_without_v() -> None:
    init, resp, raw = built()
    out = resp.receive(raw, NOW)
    assert out.response is None and init.state is State.DONE
    assert init.result.crypto_sessions[0].master_key == out.result.crypto_sessions[0].master_key


def test_tgk_salt_and_tek_transport() -> None:
    salt = bytes(range(100, 114))
    init = PskInitiator(PSK, key_type=KeyDataType.TGK_SALT, tgk_salt=salt)
    out = PskResponder(PSK).receive(init.create_message(NOW), NOW)
    assert out.result.crypto_sessions[0].master_salt == salt
    tek = bytes(range(16))
    init = PskInitiator(PSK, key_type=KeyDataType.TEK_SALT, tgk=tek, tgk_salt=salt)
    out = PskResponder(PSK).receive(init.create_message(NOW), NOW)
    assert out.result.crypto_sessions[0].master_key == tek
    assert out.result.crypto_sessions[0].master_salt == salt


def test_key_validity_spi_carried() -> None:
    init = PskInitiator(PSK, key_validity=SpiValidity(b"\x01\x02"))
    out = PskResponder(PSK).receive(init.create_message(NOW), NOW)
    assert out.result.key_validity == SpiValidity(b"\x01\x02")


def test_generic_id_map() -> None:
    specs = [CryptoSessionSpec(0x1234, cs_id=5)]
    init = PskInitiator(PSK, crypto_sessions=specs, cs_id_map_type=CSIdMapType.GENERIC_ID)
    out = PskResponder(PSK).receive(init.create_message(NOW), NOW)
    (cs,) = out.result.crypto_sessions
    assert cs.cs_id == 5 and cs.ssrc == 0x1234


def test_psk_lookup_by_identity() -> None:
    keys = {b"sip:alice@example.com": PSK}
    init = PskInitiator(PSK, id_i=ID_I)
    resp = PskResponder(lambda i, r: keys.get(i.data) if i else None)
    assert resp.receive(init.create_message(NOW), NOW).result.authenticated
    init = PskInitiator(PSK, id_i=IdPayload.uri("sip:mallory@example.com"))
    with pytest.raises(AuthenticationError):
        PskResponder(lambda i, r: keys.get(i.data) if i else None).receive(init.create_message(NOW), NOW)


# --- failures ------------------------------------------------------------------------------


def _error_numbers(err: bytes | None) -> list[int]:
    assert err is not None
    msg = Message.decode(err)
    assert msg.data_type == DataType.ERROR
    return [int(p.error_no) for p in msg.find_all(ErrorPayload)]


def test_wrong_psk_is_auth_failure_with_error_message() -> None:
    _, _, raw = built()
    with pytest.raises(AuthenticationError) as ei:
        PskResponder(b"x" * 16).receive(raw, NOW)
    assert ei.value.err_no == 0
    assert _error_numbers(ei.value.error_message) == [ErrorNo.AUTH_FAILURE]
    # unauthenticated (no V) because authentication failed, RFC 3830 §5.1.2
    assert Message.decode(ei.value.error_message or b"").find(VerificationPayload) is None


@pytest.mark.parametrize("offset", range(10, 80))
def test_every_flipped_byte_is_rejected(offset: int) -> None:
    _, _, raw = built(id_i=ID_I)
    bad = bytearray(raw)
    bad[offset % len(raw)] ^= 0x01
    errors = (AuthenticationError, MikeyDecodeError, InvalidTimestampError, UnsupportedDataTypeError,
              UnsupportedSPParamsError)  # SP values are checked before the MAC (issue 7 finding 1)
    with pytest.raises(errors) as ei:
        PskResponder(PSK).receive(bytes(bad), NOW)
    assert ei.value.err_no is not None


def test_flipped_byte_in_header_and_mac() -> None:
    _, _, raw = built()
    for pos in (4, 7, len(raw) - 1):
        bad = bytearray(raw)
        bad[pos] ^= 0x80
        with pytest.raises(AuthenticationError):
            PskResponder(PSK).receive(bytes(bad), NOW)


def test_stale_and_future_timestamp() -> None:
    _, _, raw = built()
    for now in (NOW + 301, NOW - 301):
        with pytest.raises(InvalidTimestampError) as ei:
            PskResponder(PSK).receive(raw, now)
        assert _error_numbers(ei.value.error_message) == [ErrorNo.INVALID_TS]
    assert PskResponder(PSK, clock_skew=1000).receive(raw, NOW + 900).result


def test_replay_rejected_without_error_message() -> None:
    _, _, raw = built()
    cache = ReplayCache()
    PskResponder(PSK, replay_cache=cache).receive(raw, NOW)
    with pytest.raises(ReplayError) as ei:
        PskResponder(PSK, replay_cache=cache).receive(raw, NOW + 1)
    assert ei.value.error_message is None
    # once outside the skew window the entry is gone, but the timestamp check rejects it anyway
    with pytest.raises(InvalidTimestampError):
        PskResponder(PSK, replay_cache=cache).receive(raw, NOW + 1000)


def test_failed_message_not_cached() -> None:
    """Only authenticated messages enter the replay cache (RFC 3830 §5.3)."""
    _, _, raw = built()
    cache = ReplayCache()
    with pytest.raises(AuthenticationError):
        PskResponder(b"y" * 16, replay_cache=cache).receive(raw, NOW)
    assert len(cache) == 0


@pytest.mark.parametrize(
    ("encr", "mac", "error"),
    [
        (EncrAlg.NULL, MacAlg.NULL, UnsupportedEncryptionError),
        (EncrAlg.NULL, MacAlg.HMAC_SHA_1_160, UnsupportedEncryptionError),  # the TGK travels in the clear
        (EncrAlg.AES_CM_128, MacAlg.NULL, UnsupportedMACError),
    ],
)
def test_null_security_refused_by_default(encr: int, mac: int, error: type[MikeyProtocolError]) -> None:
    """RFC 3830 §4.2.3/§4.2.4: NULL only when the carrier guarantees security, which only the caller knows."""
    raw = PskInitiator(PSK, encr_alg=encr, mac_alg=mac, allow_null_security=True).create_message(NOW)
    cache = ReplayCache()
    resp = PskResponder(PSK, replay_cache=cache)
    with pytest.raises(error) as ei:
        resp.receive(raw, NOW)
    expected = ErrorNo.INVALID_EA if error is UnsupportedEncryptionError else ErrorNo.INVALID_MAC
    assert ei.value.err_no == expected and "--allow-null-security" in str(ei.value)
    assert _error_numbers(ei.value.error_message) == [expected]
    # refused before authentication: the Error message carries no V, and nothing was cached
    assert Message.decode(ei.value.error_message or b"").find(VerificationPayload) is None
    assert resp.state is State.FAILED and resp.result is None and len(cache) == 0
    # the Initiator refuses to build it, and the stateless Initiator to rebuild it, without the switch
    with pytest.raises(error):
        PskInitiator(PSK, encr_alg=encr, mac_alg=mac)
    with pytest.raises(error):
        PskInitiator.from_i_message(PSK, raw)


def test_null_security_accepted_when_the_carrier_is_secure() -> None:
    init = PskInitiator(PSK, tgk=TGK, encr_alg=EncrAlg.NULL, mac_alg=MacAlg.NULL, v=True, allow_null_security=True)
    raw = init.create_message(NOW)
    out = PskResponder(PSK, allow_null_security=True).receive(raw, NOW)
    assert out.result.tgk == TGK and out.result.authenticated is False and out.result.extras["null_security"] is True
    assert out.response is not None
    res = init.receive(out.response, NOW)
    assert res.authenticated is False and res.extras["null_security"] is True
    assert [c.master_key for c in res.crypto_sessions] == [c.master_key for c in out.result.crypto_sessions]
    rebuilt = PskInitiator.from_i_message(PSK, raw, allow_null_security=True)
    assert rebuilt.result.tgk == TGK and rebuilt.result.extras["null_security"] is True
    # NULL encryption with a real MAC is authenticated, but still marked
    raw = PskInitiator(PSK, encr_alg=EncrAlg.NULL, allow_null_security=True).create_message(NOW)
    result = PskResponder(PSK, allow_null_security=True).receive(raw, NOW).result
    assert result.authenticated is True and result.extras["null_security"] is True
    # and a normal exchange says it is not NULL security
    assert PskResponder(PSK).receive(built()[2], NOW).result.extras["null_security"] is False


def _counter_message(counter: int, *, mac_alg: int, encr_alg: int = EncrAlg.AES_KW_128) -> bytes:
    """An I_MESSAGE from Alice with a COUNTER timestamp (RFC 3830 §6.6), MAC recomputed over the new T."""
    init = PskInitiator(PSK, id_i=ID_I, encr_alg=encr_alg, mac_alg=mac_alg, rand=RAND, csb_id=counter & 0xFFFF,
                        allow_null_security=True)
    msg = Message.decode(init.create_message(NOW))
    msg = msg.replace_payload(0, TimestampPayload.counter(counter))
    draft = msg.encode()
    kemac = msg.find(KemacPayload)
    assert kemac is not None
    n = len(draft) - len(kemac.mac)
    keys = init.transport.keys(PSK, init.csb_id, RAND)
    return draft[:n] + kemac_crypto.compute_mac(mac_alg, keys.auth_key, draft[:n])


def test_unauthenticated_message_never_touches_replay_state() -> None:
    """A forged NULL-MAC message (IDi = Alice, counter 0xFFFFFFFF), even when NULL security is allowed,
    neither enters the replay cache nor advances Alice's counter: her real messages still get through."""
    cache = ReplayCache()
    forged = _counter_message(0xFFFFFFFF, mac_alg=MacAlg.NULL, encr_alg=EncrAlg.NULL)
    out = PskResponder(PSK, replay_cache=cache, allow_null_security=True).receive(forged, NOW)
    assert out.result.authenticated is False and out.result.initiator_id == ID_I.data
    assert len(cache) == 0
    for counter in (6, 4_000_000_000):
        real = PskResponder(PSK, replay_cache=cache).receive(_counter_message(counter, mac_alg=MacAlg.HMAC_SHA_1_160), NOW)
        assert real.result.authenticated is True
    assert len(cache) == 2
    # and authenticated messages do advance the counter
    with pytest.raises(InvalidTimestampError):
        PskResponder(PSK, replay_cache=cache).receive(_counter_message(7, mac_alg=MacAlg.HMAC_SHA_1_160), NOW)


def test_unsupported_algorithm_numbers() -> None:
    _, _, raw = built(encr_alg=EncrAlg.NULL, mac_alg=MacAlg.NULL, allow_null_security=True)
    msg = Message.decode(raw)
    k = msg.find(KemacPayload)
    assert k is not None
    bad = msg.replace_payload(len(msg.payloads) - 1, KemacPayload(9, k.encr_data, k.mac_alg, k.mac)).encode()
    with pytest.raises(UnsupportedEncryptionError) as ei:
        PskResponder(PSK).receive(bad, NOW)
    assert ei.value.err_no == 4


def test_garbage_gets_unspecified_error() -> None:
    with pytest.raises(MikeyDecodeError) as ei:
        PskResponder(PSK).receive(b"\x01\x00\x0b\x00\x12\x34\x56\x78\x00", NOW)
    assert _error_numbers(ei.value.error_message) == [ErrorNo.UNSPECIFIED]


def test_wrong_data_type() -> None:
    init, resp, raw = built()
    msg = Message.decode(raw)
    from mikey.wire import CommonHeader

    h = msg.header
    other = Message(CommonHeader(DataType.DH_INIT, h.csb_id, h.cs_id_map), msg.payloads).encode()
    with pytest.raises(UnsupportedDataTypeError) as ei:
        resp.receive(other, NOW)
    assert ei.value.err_no == 11


def test_tampered_verification_message() -> None:
    init, resp, raw = built(v=True)
    out = resp.receive(raw, NOW)
    assert out.response is not None
    bad = bytearray(out.response)
    bad[-1] ^= 1
    with pytest.raises(AuthenticationError):
        init.receive(bytes(bad), NOW)
    assert init.state is State.FAILED
    with pytest.raises(StateError):
        init.receive(out.response, NOW)


def test_verification_with_other_timestamp_rejected() -> None:
    init1, _, raw1 = built(v=True)
    init2 = PskInitiator(PSK, v=True, csb_id=init1.csb_id, rand=init1.rand)
    init2.create_message(NOW + 10)
    out = PskResponder(PSK).receive(raw1, NOW)
    assert out.response is not None
    with pytest.raises(AuthenticationError):
        init2.receive(out.response, NOW)


def test_verification_coverage_variant_is_explicit() -> None:
    init = PskInitiator(PSK, v=True, id_i=ID_I, verification_coverage="timestamp-only")
    raw = init.create_message(NOW)
    rfc = PskResponder(PSK).receive(raw, NOW).response
    assert rfc is not None
    with pytest.raises(AuthenticationError):
        init.receive(rfc, NOW)
    init = PskInitiator(PSK, v=True, id_i=ID_I, verification_coverage="timestamp-only")
    raw = init.create_message(NOW)
    variant = PskResponder(PSK, verification_coverage="timestamp-only").receive(raw, NOW).response
    assert variant is not None and init.receive(variant, NOW).authenticated


def test_error_message_from_responder_raises_peer_error() -> None:
    init, _, raw = built(v=True)
    with pytest.raises(AuthenticationError) as ei:
        PskResponder(b"z" * 16).receive(raw, NOW)
    assert ei.value.error_message is not None
    with pytest.raises(PeerError) as pe:
        init.receive(ei.value.error_message, NOW)
    assert pe.value.err_nos == [0]


def test_update_message_rekeys_without_rand() -> None:
    """RFC 3830 §4.5: same CSB ID, new timestamp, no RAND; keys derive with the initial RAND."""
    first = PskInitiator(PSK, csb_id=0xCAFE, crypto_sessions=[CryptoSessionSpec(0x1111)])
    r1 = PskResponder(PSK).receive(first.create_message(NOW), NOW).result
    upd = PskInitiator(PSK, update=first.result)
    raw = upd.create_message(NOW + 60)
    msg = Message.decode(raw)
    assert msg.csb_id == 0xCAFE and msg.find(RandPayload) is None
    r2 = PskResponder(PSK, bundles={r1.csb_id: r1}).receive(raw, NOW + 60).result
    assert r2.rand == r1.rand and r2.tgk != r1.tgk and r2.extras["update"]
    assert r2.crypto_sessions[0].master_key != r1.crypto_sessions[0].master_key
    assert r2.crypto_sessions[0].master_key == upd.result.crypto_sessions[0].master_key
    label = (1).to_bytes(1, "big") + (0xCAFE).to_bytes(4, "big") + r1.rand
    assert r2.crypto_sessions[0].master_key == _rfc_prf(r2.tgk, bytes.fromhex("2AD01C64") + label, 16)


def test_update_without_new_key_adds_a_crypto_session() -> None:
    first = PskInitiator(PSK, crypto_sessions=[CryptoSessionSpec(0x1111)])
    r1 = PskResponder(PSK).receive(first.create_message(NOW), NOW).result
    specs = [CryptoSessionSpec(0x1111), CryptoSessionSpec(0x2222)]
    upd = PskInitiator(PSK, update=first.result, new_key=False, crypto_sessions=specs)
    raw = upd.create_message(NOW + 1)
    kemac = Message.decode(raw).find(KemacPayload)
    assert kemac is not None and kemac.encr_data == b""
    r2 = PskResponder(PSK, bundles=lambda c: r1 if c == r1.csb_id else None).receive(raw, NOW + 1).result
    assert r2.tgk == r1.tgk
    assert r2.crypto_sessions[0].master_key == r1.crypto_sessions[0].master_key
    assert [c.ssrc for c in r2.crypto_sessions] == [0x1111, 0x2222]
    assert [c.master_key for c in r2.crypto_sessions] == [c.master_key for c in upd.result.crypto_sessions]


def test_update_for_unknown_bundle_rejected() -> None:
    first = PskInitiator(PSK)
    first.create_message(NOW)
    raw = PskInitiator(PSK, update=first.result).create_message(NOW)
    with pytest.raises(UnspecifiedError) as ei:
        PskResponder(PSK).receive(raw, NOW)
    assert _error_numbers(ei.value.error_message) == [ErrorNo.UNSPECIFIED]


def test_update_must_keep_csb_and_rand() -> None:
    first = PskInitiator(PSK)
    first.create_message(NOW)
    with pytest.raises(ValueError):
        PskInitiator(PSK, update=first.result, csb_id=first.csb_id + 1)
    with pytest.raises(ValueError):
        PskInitiator(PSK, update=first.result, rand=b"x" * 16)


def test_update_verified_by_initiator_and_cli_rebuild() -> None:
    first = PskInitiator(PSK)
    r1 = PskResponder(PSK).receive(first.create_message(NOW), NOW).result
    upd = PskInitiator(PSK, update=first.result, v=True)
    raw = upd.create_message(NOW + 5)
    out = PskResponder(PSK, bundles={r1.csb_id: r1}).receive(raw, NOW + 5)
    assert out.response is not None
    rebuilt = PskInitiator.from_i_message(PSK, raw, update=first.result)
    res = rebuilt.receive(out.response, NOW + 6)
    assert res.authenticated and res.tgk == out.result.tgk


def test_reprs_hide_secrets() -> None:
    init, resp, raw = built()
    out = resp.receive(raw, NOW)
    text = repr(out.result) + repr(init) + repr(resp) + repr(out.result.crypto_sessions)
    assert PSK.hex() not in text and out.result.tgk.hex() not in text
    assert repr(out.result.tgk) not in text
    assert repr(out.result.crypto_sessions[0].master_key) not in text


def test_prf_module_agrees_with_reference() -> None:
    for n in (1, 16, 32, 33, 64, 65):
        key = bytes(range(n))
        assert prf_crypto.prf(key, b"label", 40, 0) == _rfc_prf(key, b"label", 40)
        assert prf_crypto.prf(key, b"label", 40, 1) == _rfc_prf(key, b"label", 40, sha256=True)
