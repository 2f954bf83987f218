"""MIKEY-IBAKE (RFC 6267): key request with the KMS role (§4.2.1), the four-message exchange (§4.2.2),
key derivation cross-checked from the RFC formulas (§5), errors, forking (§7.3), retargeting (§7.4)
and deferred delivery with ESK (§3.3, §6.1.2)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mikey.constants import PRF, DataType, ECCCurve, EncrAlg, IDRole, IDType, PayloadType
from mikey.crypto import ibe, prf
from mikey.crypto.eccsi import P256
from mikey.errors import (
    AuthenticationError,
    InvalidTimestampError,
    KeyMaterialError,
    MikeyError,
    PeerError,
    ReplayError,
    UnsupportedDataTypeError,
    UnsupportedDHGroupError,
    UnsupportedIDError,
)
from mikey.modes.ibake import (
    AnswerKind,
    IbakeCredentials,
    IbakeInitiator,
    IbakeResponder,
    answer_policy,
    open_deferred,
)
from mikey.modes.ibake_keys import IbakeKeyRequest, IbakeKms, period_bounds
from mikey.replay import ReplayCache
from mikey.wire import (
    EccptPayload,
    ErrorPayload,
    EskPayload,
    IbakePayload,
    IdrPayload,
    KemacPayload,
    Message,
    TimestampPayload,
    VerificationPayload,
)
from mikey.wire.payloads.base import decode_sub_payloads, encode_sub_payloads

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
WHEN = dt.datetime.fromtimestamp(NOW, dt.UTC)
ALICE = b"sip:alice@example.org"
BOB = b"sip:bob@example.org"
BOB_DESK = b"sip:bob@example.org;device=desk"
BOB_MOBILE = b"sip:bob@example.org;device=mobile"
CAROL = b"sip:carol@example.org"
VOICEMAIL = b"sip:voicemail@example.org"
KMS_ID = b"kms.example.org"
PSKS = {ALICE: b"A" * 16, BOB: b"B" * 16, CAROL: b"C" * 16, VOICEMAIL: b"V" * 16,
        BOB_DESK: b"D" * 16, BOB_MOBILE: b"M" * 16}
# P-256 order q (RFC 6507 §4 / SEC 2)
Q256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass
class Kms:
    params: ibe.BfParams
    master: ibe.BfMasterSecret
    role: IbakeKms


@pytest.fixture(scope="module")
def kms() -> Kms:
    params, master = ibe.bf_setup(1024)  # p 512 bits: fast; the default 2048 is exercised once below
    devices = {BOB_DESK: {BOB_DESK, BOB}, BOB_MOBILE: {BOB_MOBILE, BOB}}
    role = IbakeKms(master, PSKS, identity=KMS_ID,
                    authorize=lambda user, ident: ident == user or ident in devices.get(user, ()))
    return Kms(params, master, role)


def fetch(kms: Kms, user: bytes, *identities: bytes, now: float = NOW) -> IbakeCredentials:
    """K_PRs through REQUEST_KEY_PSK / REQUEST_KEY_RESP with the KMS role (RFC 6267 §4.2.1)."""
    req = IbakeKeyRequest(PSKS[user], list(identities or (user,)), KMS_ID, kms.params,
                          psk_id=user if identities else None)
    resp = kms.role.handle(req.create_message(now), now)
    assert resp is not None
    return IbakeCredentials(kms.params, req.receive(resp, now).private_keys)


@pytest.fixture(scope="module")
def creds(kms: Kms) -> dict[bytes, IbakeCredentials]:
    return {ALICE: fetch(kms, ALICE), BOB: fetch(kms, BOB), CAROL: fetch(kms, CAROL),
            VOICEMAIL: fetch(kms, VOICEMAIL), BOB_DESK: fetch(kms, BOB_DESK, BOB_DESK, BOB),
            BOB_MOBILE: fetch(kms, BOB_MOBILE, BOB_MOBILE, BOB)}


def error_nos(exc: MikeyError) -> list[int]:
    assert exc.error_message is not None
    msg = Message.decode(exc.error_message)
    assert msg.data_type == DataType.ERROR
    return [int(p.error_no) for p in msg.find_all(ErrorPayload)]


def aes_cm_decrypt(key: bytes, salt: bytes, csb_id: int, t: bytes, data: bytes) -> bytes:
    """RFC 3830 §4.2.3: IV = (S XOR (0x0000 || CSB ID || T)) || 0x0000, written out independently."""
    iv = int.from_bytes(salt, "big") ^ int.from_bytes(b"\x00\x00" + csb_id.to_bytes(4, "big") + t, "big")
    d = Cipher(algorithms.AES(key), modes.CTR(iv.to_bytes(14, "big") + b"\x00\x00")).decryptor()
    return d.update(data) + d.finalize()


# --- the key request exchange (§4.2.1) ----------------------------------------------------------------


def test_key_request_round_trip_cross_checked(kms: Kms) -> None:
    """REQUEST_KEY_PSK -> REQUEST_KEY_RESP: V, KEMAC and K_PR recomputed from RFC 3830 §4.1.4 / §4.2.3."""
    req = IbakeKeyRequest(PSKS[ALICE], [ALICE], KMS_ID, kms.params, csb_id=0x01020304, rand=bytes(range(16)))
    request = req.create_message(NOW)
    msg = Message.decode(request)
    assert msg.data_type == DataType.REQUEST_KEY_PSK and msg.header.v and msg.header.cs_count == 0
    assert msg.header.cs_id_map_type == 1  # Empty map (RFC 4563)
    psk, rand, csb = PSKS[ALICE], bytes(range(16)), (0x01020304).to_bytes(4, "big")
    auth = prf.prf(psk, (0x2D22AC75).to_bytes(4, "big") + b"\xff" + csb + rand, 32, 1)
    v = msg.payloads[-1]
    assert isinstance(v, VerificationPayload)
    assert v.ver_data == hmac.digest(auth, request[:-32] + ALICE + KMS_ID, "sha256")
    response = kms.role.handle(request, NOW)
    assert response is not None
    rmsg = Message.decode(response)
    assert rmsg.data_type == DataType.REQUEST_KEY_RESP and not rmsg.header.v
    rv = rmsg.payloads[-1]
    assert isinstance(rv, VerificationPayload)
    assert rv.ver_data == hmac.digest(auth, response[:-32] + ALICE + KMS_ID, "sha256")
    kemac = rmsg.find(KemacPayload)
    assert kemac is not None and kemac.encr_alg == EncrAlg.AES_CM_128 and kemac.mac_alg == 0
    encr = prf.prf(psk, (0x150533E1).to_bytes(4, "big") + b"\xff" + csb + rand, 16, 1)
    salt = prf.prf(psk, (0x29B88916).to_bytes(4, "big") + b"\xff" + csb + rand, 14, 1)
    t = rmsg.find(TimestampPayload)
    assert t is not None and t == msg.find(TimestampPayload)
    subs = decode_sub_payloads(aes_cm_decrypt(encr, salt, 0x01020304, t.ts_value, kemac.encr_data), PayloadType.IDR)
    assert [type(s).__name__ for s in subs] == ["IdrPayload", "KeyDataPayload"] * 2  # this period and the next
    nov = ibe.bf_extract_for_period(kms.master, ALICE, WHEN)
    dec = ibe.bf_extract_for_period(kms.master, ALICE, dt.datetime(2023, 12, 1, tzinfo=dt.UTC))
    assert subs[1].key == nov.encode() and subs[3].key == dec.encode()  # type: ignore[attr-defined]
    assert subs[1].key_type == 7  # type: ignore[attr-defined]
    result = req.receive(response, NOW)
    assert [k.period_identity for k in result.keys] == [ALICE + b"2023-11", ALICE + b"2023-12"]
    assert result.keys[0].valid_from == dt.datetime(2023, 11, 1, tzinfo=dt.UTC)
    assert result.keys[0].valid_to == dt.datetime(2023, 12, 1, tzinfo=dt.UTC)
    assert result.private_keys[0] == nov


@pytest.mark.parametrize("encr_alg", [EncrAlg.AES_CM_256, EncrAlg.AES_KW_128])
def test_key_request_other_kemac_ciphers(kms: Kms, encr_alg: int) -> None:
    role = IbakeKms(kms.master, PSKS, identity=KMS_ID, encr_alg=encr_alg, periods=1)
    req = IbakeKeyRequest(PSKS[BOB], [BOB], KMS_ID, kms.params, prf=PRF.MIKEY_1)
    resp = role.handle(req.create_message(NOW), NOW)
    assert resp is not None
    keys = req.receive(resp, NOW).private_keys
    assert keys == [ibe.bf_extract_for_period(kms.master, BOB, WHEN)]


def test_period_bounds() -> None:
    w = dt.datetime(2024, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    assert period_bounds(w, ibe.KeyPeriod.MONTH) == (dt.datetime(2024, 12, 1, tzinfo=dt.UTC),
                                                     dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    assert period_bounds(w, ibe.KeyPeriod.DAY)[1] == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert period_bounds(w, ibe.KeyPeriod.HOUR)[0] == dt.datetime(2024, 12, 31, 23, tzinfo=dt.UTC)
    assert period_bounds(w, ibe.KeyPeriod.YEAR)[0] == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def test_key_request_refusals(kms: Kms) -> None:
    # wrong PSK: Authentication failure (0)
    req = IbakeKeyRequest(b"X" * 16, [ALICE], KMS_ID, kms.params)
    with pytest.raises(AuthenticationError) as e:
        kms.role.receive(req.create_message(NOW), NOW)
    assert error_nos(e.value) == [0]
    # unknown user: 0
    req = IbakeKeyRequest(b"X" * 16, [b"sip:mallory@example.org"], KMS_ID, kms.params)
    with pytest.raises(AuthenticationError):
        kms.role.receive(req.create_message(NOW), NOW)
    # someone else's identity: ID not supported (7)
    req = IbakeKeyRequest(PSKS[ALICE], [ALICE, BOB], KMS_ID, kms.params)
    with pytest.raises(UnsupportedIDError) as e2:
        kms.role.receive(req.create_message(NOW), NOW)
    assert error_nos(e2.value) == [7]
    # another KMS named: 7
    req = IbakeKeyRequest(PSKS[ALICE], [ALICE], b"kms.other.org", kms.params)
    with pytest.raises(UnsupportedIDError):
        kms.role.receive(req.create_message(NOW), NOW)
    # stale timestamp: 1
    req = IbakeKeyRequest(PSKS[ALICE], [ALICE], KMS_ID, kms.params)
    with pytest.raises(InvalidTimestampError) as e3:
        kms.role.receive(req.create_message(NOW - 3600), NOW)
    assert error_nos(e3.value) == [1]
    # replay
    role = IbakeKms(kms.master, PSKS, identity=KMS_ID, replay_cache=ReplayCache())
    req = IbakeKeyRequest(PSKS[ALICE], [ALICE], KMS_ID, kms.params)
    m = req.create_message(NOW)
    assert role.handle(m, NOW) is not None
    with pytest.raises(ReplayError):
        role.receive(m, NOW)
    # PKE is not implemented: Data type not supported (11)
    with pytest.raises(UnsupportedDataTypeError) as e4:
        role.receive(bytes([1, DataType.REQUEST_KEY_PKE]) + m[2:], NOW)
    assert error_nos(e4.value) == [11]


def test_key_response_tampered_or_replayed_is_refused(kms: Kms) -> None:
    req = IbakeKeyRequest(PSKS[ALICE], [ALICE], KMS_ID, kms.params)
    resp = kms.role.handle(req.create_message(NOW), NOW)
    assert resp is not None
    bad = bytearray(resp)
    bad[-40] ^= 1  # inside the KEMAC
    with pytest.raises(AuthenticationError):
        req.receive(bytes(bad), NOW)
    # a response made for another request (other CSB ID / RAND)
    req2 = IbakeKeyRequest(PSKS[ALICE], [ALICE], KMS_ID, kms.params)
    req2.create_message(NOW)
    with pytest.raises(AuthenticationError):
        req2.receive(resp, NOW)
    # a K_PR that does not belong to the parameters the user trusts
    other, _ = ibe.bf_setup(1024)
    req3 = IbakeKeyRequest(PSKS[ALICE], [ALICE], KMS_ID, other)
    resp3 = kms.role.handle(req3.create_message(NOW), NOW)
    assert resp3 is not None
    with pytest.raises(MikeyError):
        req3.receive(resp3, NOW)


# --- the exchange (§4.2.2) and the keys (§5) ------------------------------------------------------------------


def run(i: IbakeInitiator, r: IbakeResponder, now: float = NOW) -> tuple[bytes, bytes, bytes, bytes]:
    m1 = i.create_message(now)
    s1 = r.receive(m1, now)
    assert s1.response is not None and s1.result is None
    s2 = i.receive(s1.response, now)
    assert s2.response is not None and s2.result is not None and not s2.confirmed
    s3 = r.receive(s2.response, now)
    assert s3.response is not None and s3.result is not None and s3.confirmed
    s4 = i.receive(s3.response, now)
    assert s4.response is None and s4.result is not None and s4.confirmed
    return m1, s1.response, s2.response, s3.response


def test_round_trip_cross_checked_against_rfc_formulas(creds: dict[bytes, IbakeCredentials]) -> None:
    x, y = 0x1234567890ABCDEF1234567890ABCDEF, 0xFEDCBA0987654321FEDCBA0987654321
    rand = bytes(range(100, 116))
    i = IbakeInitiator(creds[ALICE], ALICE, BOB, ec_private=x, rand=rand, csb_id=0xCAFEBABE)
    r = IbakeResponder(creds[BOB], ec_private=y, own_ssrcs=[0x11223344])
    m1, r1, i2, r2 = run(i, r)
    res_i, res_r = i.results[0], r.result
    assert res_r is not None
    assert res_i.extras["answer"] == "direct" and res_i.extras["confirmed"] and res_i.authenticated
    assert res_i.responder_id == BOB and res_r.initiator_id == ALICE
    # K_SESSION = SEC 1 uncompressed [x][y]P, computed in pure Python (RFC 6267 §5.1)
    k_session = P256.encode_point(P256.multiply(x * y % Q256, (P256.gx, P256.gy)))
    assert k_session[0] == 4 and len(k_session) == 65
    assert i.legs[0].k_session == r.k_session == k_session
    label = (0x1F4D675B).to_bytes(4, "big") + b"\xff" + b"\xff" * 4 + rand
    tgk = prf.prf(k_session, label, 32, 1)
    assert res_i.tgk == res_r.tgk == tgk
    mpk = prf.prf(k_session, (0x220E99A2).to_bytes(4, "big") + b"\xff" * 5 + rand, 32, 1)
    # TEK / salt from the TGK (RFC 3830 §4.1.3): cs_id 1, CSB ID, RAND
    csb = (0xCAFEBABE).to_bytes(4, "big")
    key = prf.prf(tgk, (0x2AD01C64).to_bytes(4, "big") + b"\x01" + csb + rand, 16, 1)
    salt = prf.prf(tgk, (0x39A2C14B).to_bytes(4, "big") + b"\x01" + csb + rand, 14, 1)
    cs_i, cs_r = res_i.crypto_sessions[0], res_r.crypto_sessions[0]
    assert (cs_i.master_key, cs_i.master_salt) == (cs_r.master_key, cs_r.master_salt) == (key, salt)
    assert cs_i.ssrc == cs_r.ssrc == 0x11223344
    # V of R_MESSAGE_2 (§5.4): auth_key from MPK, MAC over the message (no MAC field) || IDRi || IDRr
    auth = prf.prf(mpk, (0x2D22AC75).to_bytes(4, "big") + b"\xff" + csb + rand, 32, 1)
    assert r2[-32:] == hmac.digest(auth, r2[:-32] + ALICE + BOB, "sha256")
    # the messages as §4.2.2 lists them
    shapes = [[type(p).__name__ for p in Message.decode(m).payloads] for m in (m1, r1, i2, r2)]
    assert shapes[0] == ["TimestampPayload", "RandPayload", "IdrPayload", "IdrPayload", "SecurityPolicyPayload",
                         "IbakePayload"]
    assert shapes[1] == ["TimestampPayload", "IdrPayload", "IdrPayload", "IbakePayload"]
    assert shapes[2] == ["TimestampPayload", "RandPayload", "IdrPayload", "IdrPayload", "IbakePayload"]
    assert shapes[3] == ["TimestampPayload", "IdrPayload", "IdrPayload", "VerificationPayload"]
    hdrs = [Message.decode(m).header for m in (m1, r1, i2, r2)]
    assert [h.data_type for h in hdrs] == [22, 23, 24, 25]
    assert [h.v for h in hdrs] == [True, True, True, False]
    assert {h.csb_id for h in hdrs} == {0xCAFEBABE}
    assert Message.decode(r1).find(TimestampPayload) == Message.decode(m1).find(TimestampPayload)
    # I_MESSAGE_1's IBAKE decrypts (with Bob's K_PR, independently) to IDRi || ECCPTi || IDRr
    ibake_p = Message.decode(m1).find(IbakePayload)
    assert ibake_p is not None
    bob_key = ibe.bf_extract_for_period(_master(creds), BOB, WHEN)
    plain = ibe.bf_decrypt(bob_key.params, bob_key, ibe.BfCiphertext.decode(ibake_p.encr_data, bob_key.params))
    subs = decode_sub_payloads(plain, PayloadType.IDR)
    assert isinstance(subs[0], IdrPayload) and subs[0].id_role == IDRole.INITIATOR and subs[0].data == ALICE
    assert isinstance(subs[1], EccptPayload) and subs[1].curve == ECCCurve.P_256 and len(subs[1].point) == 68
    gx = P256.encode_point(P256.multiply(x, (P256.gx, P256.gy)))
    assert subs[1].point == gx + b"\x00\x00\x00"
    assert isinstance(subs[2], IdrPayload) and subs[2].id_role == IDRole.RESPONDER and subs[2].data == BOB


_MASTER: list[ibe.BfMasterSecret] = []


def _master(creds: dict[bytes, IbakeCredentials]) -> ibe.BfMasterSecret:
    assert _MASTER
    return _MASTER[0]


@pytest.fixture(autouse=True)
def _remember_master(kms: Kms) -> Iterator[None]:
    _MASTER[:] = [kms.master]
    yield


@pytest.mark.parametrize("curve", [ECCCurve.P_192, ECCCurve.P_224, ECCCurve.P_384, ECCCurve.P_521])
def test_other_curves(creds: dict[bytes, IbakeCredentials], curve: int) -> None:
    i = IbakeInitiator(creds[ALICE], ALICE, BOB, curve=curve, prf=PRF.MIKEY_1)
    r = IbakeResponder(creds[BOB])
    run(i, r)
    assert r.result is not None and i.results[0].tgk == r.result.tgk and len(r.result.tgk) == 32
    assert r.k_session == i.legs[0].k_session and r.result.extras["curve"] == curve
    size = {1: 24, 5: 28, 11: 48, 14: 66}[curve]
    assert len(r.k_session) == 1 + 2 * size


def test_curve_refusals(creds: dict[bytes, IbakeCredentials]) -> None:
    with pytest.raises(UnsupportedDHGroupError):
        IbakeInitiator(creds[ALICE], ALICE, BOB, curve=ECCCurve.B_283)
    i = IbakeInitiator(creds[ALICE], ALICE, BOB, curve=ECCCurve.P_384)
    r = IbakeResponder(creds[BOB], allowed_curves={ECCCurve.P_256})
    with pytest.raises(UnsupportedDHGroupError) as e:
        r.receive(i.create_message(NOW), NOW)
    assert error_nos(e.value) == [6]


def test_default_parameter_set_2048(kms: Kms) -> None:
    """The default BF set (p 1024 bits, SHA-224) end to end, keys from its own KMS role."""
    params, master = ibe.bf_setup(2048)
    role = IbakeKms(master, PSKS, identity=KMS_ID, periods=1)

    def get(user: bytes) -> IbakeCredentials:
        req = IbakeKeyRequest(PSKS[user], [user], KMS_ID, params)
        resp = role.handle(req.create_message(NOW), NOW)
        assert resp is not None
        return IbakeCredentials(params, req.receive(resp, NOW).private_keys)

    i, r = IbakeInitiator(get(ALICE), ALICE, BOB), IbakeResponder(get(BOB))
    run(i, r)
    assert r.result is not None and i.results[0].crypto_sessions == r.result.crypto_sessions


# --- refusals with the RFC's Error numbers ---------------------------------------------------------------------


def _swap(raw: bytes, cls: type, new: object) -> bytes:
    msg = Message.decode(raw)
    ps = [new if type(p) is cls else p for p in msg.payloads]
    return Message(msg.header, tuple(ps)).encode()  # type: ignore[arg-type]


def test_tampered_i_message_1(creds: dict[bytes, IbakeCredentials]) -> None:
    i = IbakeInitiator(creds[ALICE], ALICE, BOB)
    m1 = Message.decode(i.create_message(NOW))
    ibake_p = m1.find(IbakePayload)
    assert ibake_p is not None
    data = bytearray(ibake_p.encr_data)
    data[-3] ^= 0x40
    r = IbakeResponder(creds[BOB])
    with pytest.raises(AuthenticationError) as e:
        r.receive(_swap(m1.raw_bytes(), IbakePayload, IbakePayload(bytes(data))), NOW)
    assert error_nos(e.value) == [0]


def test_encrypted_to_another_identity_is_refused(creds: dict[bytes, IbakeCredentials]) -> None:
    """I_MESSAGE_1 IBE-encrypted to Carol but addressed (IDRr) to Bob: Bob's K_PR fails -> Error no 0."""
    i = IbakeInitiator(creds[ALICE], ALICE, CAROL)
    msg = Message.decode(i.create_message(NOW))
    ps = [IdrPayload(IDRole.RESPONDER, IDType.URI, BOB) if isinstance(p, IdrPayload) and p.id_role == 2 else p
          for p in msg.payloads]
    m1 = Message(msg.header, tuple(ps)).encode()
    r = IbakeResponder(creds[BOB])
    with pytest.raises(AuthenticationError) as e:
        r.receive(m1, NOW)
    assert error_nos(e.value) == [0]


def test_wrong_period_key_fails(kms: Kms, creds: dict[bytes, IbakeCredentials]) -> None:
    # A K_PR of October filed as November's: the IBE decryption fails -> Error no 0.
    october = ibe.bf_extract_for_period(kms.master, BOB, dt.datetime(2023, 10, 5, tzinfo=dt.UTC))
    mislabelled = ibe.BfPrivateKey(kms.params, BOB + b"2023-11", october.point)
    r = IbakeResponder(IbakeCredentials(kms.params, [mislabelled]))
    i = IbakeInitiator(creds[ALICE], ALICE, BOB)
    with pytest.raises(AuthenticationError) as e:
        r.receive(i.create_message(NOW), NOW)
    assert error_nos(e.value) == [0]
    # Only October's key: no K_PR for November -> a strict Responder refuses with 7
    r2 = IbakeResponder(IbakeCredentials(kms.params, [october]), answer_unreadable=False)
    i2 = IbakeInitiator(creds[ALICE], ALICE, BOB)
    with pytest.raises(UnsupportedIDError) as e2:
        r2.receive(i2.create_message(NOW), NOW)
    assert error_nos(e2.value) == [7]
    # ... and one that has no key at all for its identity this period cannot answer either
    r3 = IbakeResponder(IbakeCredentials(kms.params, [october]))
    with pytest.raises(UnsupportedIDError):
        r3.receive(IbakeInitiator(creds[ALICE], ALICE, BOB).create_message(NOW), NOW)
    # The Initiator without its own K_PR for the period cannot read R_MESSAGE_1
    i4 = IbakeInitiator(IbakeCredentials(kms.params), ALICE, BOB)
    s1 = IbakeResponder(creds[BOB]).receive(i4.create_message(NOW), NOW)
    assert s1.response is not None
    with pytest.raises(KeyMaterialError):
        i4.receive(s1.response, NOW)


def _forged_r1(creds: dict[bytes, IbakeCredentials], r1: bytes, *, eccpt_i: EccptPayload | None,
               id_r_inside: bytes, eccpt_r: EccptPayload) -> bytes:
    plain = [IdrPayload(IDRole.INITIATOR, IDType.URI, ALICE)]
    plain += [eccpt_i] if eccpt_i is not None else []  # type: ignore[list-item]
    plain += [IdrPayload(IDRole.RESPONDER, IDType.URI, id_r_inside), eccpt_r]  # type: ignore[list-item]
    data = creds[BOB].encrypt(ALICE, WHEN, encode_sub_payloads(plain))
    return _swap(r1, IbakePayload, IbakePayload(data))


def test_initiator_checks_r_message_1(creds: dict[bytes, IbakeCredentials]) -> None:
    i = IbakeInitiator(creds[ALICE], ALICE, BOB)
    r = IbakeResponder(creds[BOB])
    s1 = r.receive(i.create_message(NOW), NOW)
    assert s1.response is not None and r.eccpt_r is not None
    other = IbakeInitiator(creds[ALICE], ALICE, BOB).eccpt_i
    # a wrong echo of [x]P (§4.2.2.4): 0
    with pytest.raises(AuthenticationError) as e:
        i.receive(_forged_r1(creds, s1.response, eccpt_i=other, id_r_inside=BOB, eccpt_r=r.eccpt_r), NOW)
    assert e.value.err_no == 0
    # an identity inside that differs from the clear IDRr: 0
    with pytest.raises(AuthenticationError):
        i.receive(_forged_r1(creds, s1.response, eccpt_i=i.eccpt_i, id_r_inside=CAROL, eccpt_r=r.eccpt_r), NOW)
    # another CSB ID: 0
    from dataclasses import replace as _replace
    m = Message.decode(s1.response)
    with pytest.raises(AuthenticationError):
        i.receive(Message(_replace(m.header, csb_id=m.csb_id ^ 1), m.payloads).encode(), NOW)
    # a different T: Invalid timestamp (1)
    with pytest.raises(InvalidTimestampError):
        i.receive(_swap(s1.response, TimestampPayload, TimestampPayload.ntp_utc(NOW + 1)), NOW)
    # a tampered IBAKE: 0
    bad = bytearray(s1.response)
    bad[-5] ^= 1
    with pytest.raises(AuthenticationError):
        i.receive(bytes(bad), NOW)
    # reflection of I_MESSAGE_1 to its sender: Data type not supported (11)
    with pytest.raises(UnsupportedDataTypeError):
        i.receive(i.i_message or b"", NOW)
    # the Initiator survived all of that: the real answer still works, once
    s2 = i.receive(s1.response, NOW)
    assert s2.response is not None
    with pytest.raises(ReplayError):
        i.receive(s1.response, NOW)
    s3 = r.receive(s2.response, NOW)
    assert s3.response is not None
    bad_v = bytearray(s3.response)
    bad_v[-1] ^= 1
    with pytest.raises(AuthenticationError):
        i.receive(bytes(bad_v), NOW)
    assert i.receive(s3.response, NOW).confirmed
    with pytest.raises(ReplayError):
        i.receive(s3.response, NOW)


def test_responder_checks_i_message_2(creds: dict[bytes, IbakeCredentials]) -> None:
    def start() -> tuple[IbakeInitiator, IbakeResponder, bytes]:
        i = IbakeInitiator(creds[ALICE], ALICE, BOB)
        r = IbakeResponder(creds[BOB])
        s1 = r.receive(i.create_message(NOW), NOW)
        assert s1.response is not None
        s2 = i.receive(s1.response, NOW)
        assert s2.response is not None
        return i, r, s2.response

    # a wrong echo of [y]P: 0
    i, r, i2 = start()
    assert r.eccpt_i is not None
    forged = creds[ALICE].encrypt(BOB, WHEN, encode_sub_payloads([
        IdrPayload(IDRole.INITIATOR, IDType.URI, ALICE), IdrPayload(IDRole.RESPONDER, IDType.URI, BOB),
        r.eccpt_i]))
    with pytest.raises(AuthenticationError) as e:
        r.receive(_swap(i2, IbakePayload, IbakePayload(forged)), NOW)
    assert error_nos(e.value) == [0]
    # another RAND: 0
    i, r, i2 = start()
    from mikey.wire import RandPayload
    with pytest.raises(AuthenticationError):
        r.receive(_swap(i2, RandPayload, RandPayload(bytes(16))), NOW)
    # tampered IBAKE: 0
    i, r, i2 = start()
    bad = bytearray(i2)
    bad[-2] ^= 0x10
    with pytest.raises(AuthenticationError) as e2:
        r.receive(bytes(bad), NOW)
    assert error_nos(e2.value) == [0]
    # stale T: 1
    i, r, i2 = start()
    with pytest.raises(InvalidTimestampError) as e3:
        r.receive(i2, NOW + 3600)
    assert error_nos(e3.value) == [1]
    # a second I_MESSAGE_1 to a Responder waiting for I_MESSAGE_2: 11
    i, r, i2 = start()
    with pytest.raises(UnsupportedDataTypeError) as e4:
        r.receive(i.i_message or b"", NOW)
    assert error_nos(e4.value) == [11]


def test_replayed_i_message_1_and_error_messages(creds: dict[bytes, IbakeCredentials]) -> None:
    cache = ReplayCache()
    i = IbakeInitiator(creds[ALICE], ALICE, BOB)
    m1 = i.create_message(NOW)
    assert IbakeResponder(creds[BOB], replay_cache=cache).receive(m1, NOW).response is not None
    with pytest.raises(ReplayError):
        IbakeResponder(creds[BOB], replay_cache=cache).receive(m1, NOW)
    with pytest.raises(InvalidTimestampError) as e:
        IbakeResponder(creds[BOB]).receive(m1, NOW + 600)
    assert error_nos(e.value) == [1]
    # The Initiator turns a received Error message into PeerError
    with pytest.raises(PeerError):
        i.receive(e.value.error_message or b"", NOW)


# --- forking (§7.3), retargeting (§7.4), deferred delivery (§3.3, §6.1.2) -------------------------------------


def test_forking_two_devices_get_their_own_keys(creds: dict[bytes, IbakeCredentials]) -> None:
    """Bob's desk phone and mobile both hold Bob's K_PR and their own; both answer; the Initiator
    tells the answers apart, each device shares keys with the Initiator and not with the other."""
    i = IbakeInitiator(creds[ALICE], ALICE, BOB, answers=answer_policy(forks={BOB_DESK, BOB_MOBILE}))
    m1 = i.create_message(NOW)
    desk = IbakeResponder(creds[BOB_DESK], BOB_DESK)
    mobile = IbakeResponder(creds[BOB_MOBILE], BOB_MOBILE)
    d1, m1r = desk.receive(m1, NOW), mobile.receive(m1, NOW)
    assert d1.response is not None and m1r.response is not None
    sm = i.receive(m1r.response, NOW)
    sd = i.receive(d1.response, NOW)
    assert (sm.kind, sm.responder_id, sm.leg) == (AnswerKind.FORKED, BOB_MOBILE, 0)
    assert (sd.kind, sd.responder_id, sd.leg) == (AnswerKind.FORKED, BOB_DESK, 1)
    assert sm.response is not None and sd.response is not None
    # each I_MESSAGE_2 is for its own device: the other cannot take it
    mobile_ibake = Message.decode(sm.response).find(IbakePayload)
    desk_key = creds[BOB_DESK].private_key(BOB_DESK, WHEN)
    assert mobile_ibake is not None and desk_key is not None
    with pytest.raises(AuthenticationError):
        creds[BOB_DESK].decrypt(desk_key, mobile_ibake.encr_data, "IBAKE")
    rd, rm = desk.receive(sd.response, NOW), mobile.receive(sm.response, NOW)
    assert rd.response is not None and rm.response is not None
    fd, fm = i.receive(rd.response, NOW), i.receive(rm.response, NOW)
    assert (fd.leg, fm.leg) == (1, 0) and fd.confirmed and fm.confirmed
    assert fd.result is not None and fm.result is not None and desk.result and mobile.result
    assert fd.result.tgk == desk.result.tgk and fm.result.tgk == mobile.result.tgk
    assert desk.result.tgk != mobile.result.tgk
    assert fd.result.crypto_sessions[0].master_key == desk.result.crypto_sessions[0].master_key
    assert fd.result.extras["answer"] == "forked" and fd.result.responder_id == BOB_DESK
    assert len(i.results) == 2
    # without the policy naming the devices, the forked answer is refused (ID not supported, 7)
    strict = IbakeInitiator(creds[ALICE], ALICE, BOB)
    s1 = IbakeResponder(creds[BOB_DESK], BOB_DESK).receive(strict.create_message(NOW), NOW)
    assert s1.response is not None
    with pytest.raises(UnsupportedIDError) as e:
        strict.receive(s1.response, NOW)
    assert e.value.err_no == 7


def test_retargeting_to_a_diverted_identity(creds: dict[bytes, IbakeCredentials]) -> None:
    """Carol gets Bob's I_MESSAGE_1 (divert): she cannot read it and answers with ECCPTr only; the
    Initiator, whose policy allows Carol, re-sends ECCPTi to Carol (and an ESK for Bob)."""
    i = IbakeInitiator(creds[ALICE], ALICE, BOB, answers=answer_policy(retargets={CAROL}))
    carol = IbakeResponder(creds[CAROL], CAROL)
    s1 = carol.receive(i.create_message(NOW), NOW)
    assert s1.response is not None and not carol.echoed and carol.k_session == b""
    s2 = i.receive(s1.response, NOW)
    assert s2.kind is AnswerKind.RETARGETED and s2.responder_id == CAROL and s2.response is not None
    assert s2.result is not None and not s2.result.authenticated  # not yet: Carol proves herself in R_MESSAGE_2
    i2 = Message.decode(s2.response)
    assert i2.find(EskPayload) is not None
    # Bob's mailbox-less phone would not read it; Carol does, and echoes ECCPTi in R_MESSAGE_2
    s3 = carol.receive(s2.response, NOW)
    assert s3.response is not None and Message.decode(s3.response).find(IbakePayload) is not None
    s4 = i.receive(s3.response, NOW)
    assert s4.result is not None and carol.result is not None and s4.result.authenticated
    assert s4.result.tgk == carol.result.tgk and s4.result.responder_id == CAROL
    assert s4.result.extras["answer"] == "retargeted"
    # the same answer without the policy: refused with 7
    j = IbakeInitiator(creds[ALICE], ALICE, BOB)
    t1 = IbakeResponder(creds[CAROL], CAROL).receive(j.create_message(NOW), NOW)
    assert t1.response is not None
    with pytest.raises(UnsupportedIDError):
        j.receive(t1.response, NOW)


def test_deferred_delivery_with_esk(creds: dict[bytes, IbakeCredentials], kms: Kms) -> None:
    """Bob is offline: his mailbox answers (ECCPTr only), completes the exchange and stores the
    messages; the media keys come from the ESK's SK, which only Bob can open, later."""
    sk = bytes(range(32))
    rand = bytes(range(16))
    i = IbakeInitiator(creds[ALICE], ALICE, BOB, answers=answer_policy(mailboxes={VOICEMAIL}), sk=sk, rand=rand)
    vm = IbakeResponder(creds[VOICEMAIL], VOICEMAIL, mailbox=True)
    m1, r1, i2, r2 = run(i, vm)
    res_i = i.results[0]
    assert res_i.extras["answer"] == "deferred" and res_i.authenticated
    tgk = prf.prf(sk, (0x1F4D675B).to_bytes(4, "big") + b"\xff" * 5 + rand, 32, 1)
    assert res_i.tgk == tgk
    assert vm.result is not None and vm.result.crypto_sessions == () and vm.result.extras["esk"]
    stored = vm.result.extras["deferred_messages"]
    assert stored == (m1, i2)
    # the mailbox's session key is not the media key
    assert derive_ne(vm, tgk)
    # Bob, online a week later, opens the stored messages with his own K_PR
    later = NOW + 7 * 86400
    bob_view = open_deferred(stored, creds[BOB], BOB, now=later)
    assert bob_view.tgk == tgk and not bob_view.authenticated and bob_view.initiator_id == ALICE
    assert bob_view.crypto_sessions[0].master_key == res_i.crypto_sessions[0].master_key
    assert bob_view.crypto_sessions[0].master_salt == res_i.crypto_sessions[0].master_salt
    # the mailbox and Carol cannot
    with pytest.raises(AuthenticationError):
        open_deferred(stored, creds[VOICEMAIL], VOICEMAIL, now=later)
    with pytest.raises(UnsupportedIDError):  # no K_PR of Bob's at all
        open_deferred(stored, creds[VOICEMAIL], BOB, now=later)
    with pytest.raises(AuthenticationError):
        open_deferred(stored, IbakeCredentials(kms.params, [_relabel(kms, CAROL, BOB)]), BOB, now=later)
    # an ESK naming another Initiator than IDRi is refused
    esk_plain = encode_sub_payloads([IdrPayload(IDRole.INITIATOR, IDType.URI, CAROL),
                                     __import__("mikey.wire", fromlist=["SkPayload"]).SkPayload(1, sk)])
    forged = _swap(i2, EskPayload, EskPayload(creds[ALICE].encrypt(BOB, WHEN, esk_plain)))
    with pytest.raises(AuthenticationError):
        open_deferred([m1, forged], creds[BOB], BOB, now=later)


def _relabel(kms: Kms, holder: bytes, as_identity: bytes) -> ibe.BfPrivateKey:
    real = ibe.bf_extract_for_period(kms.master, holder, WHEN)
    return ibe.BfPrivateKey(kms.params, as_identity + b"2023-11", real.point)


def derive_ne(vm: IbakeResponder, tgk: bytes) -> bool:
    from mikey.modes.ibake import derive_mpk_tgk
    assert vm.rand is not None
    return derive_mpk_tgk(vm.k_session, vm.rand, 1)[1] != tgk


def test_esk_in_i_message_1_direct_answer(creds: dict[bytes, IbakeCredentials]) -> None:
    """An ESK already in I_MESSAGE_1 (§4.2.2.1) does not change a direct exchange: keys from [x][y]P."""
    i = IbakeInitiator(creds[ALICE], ALICE, BOB, esk=True)
    r = IbakeResponder(creds[BOB])
    m1, _, _, _ = run(i, r)
    assert Message.decode(m1).find(EskPayload) is not None
    assert r.result is not None and i.results[0].tgk == r.result.tgk
    assert i.results[0].tgk == prf.prf(r.k_session, (0x1F4D675B).to_bytes(4, "big") + b"\xff" * 5 + i.rand, 32, 1)


def test_mac_coverage_omits_esk() -> None:
    """§5.4: an ESK payload is cut out of the MAC coverage, the identities follow the message."""
    from mikey.constants import CSIdMapType
    from mikey.modes.ibake import _mac_coverage, _with_v
    from mikey.wire import CommonHeader
    hdr = CommonHeader(DataType.IBAKE_R_MESSAGE_2, 7, (), CSIdMapType.EMPTY, False, 1)
    t = TimestampPayload.ntp_utc(NOW)
    esk = EskPayload(b"\x01\x02\x03")
    raw = _with_v(hdr, [t, esk], 2, b"k" * 32, ALICE, BOB)
    msg = Message.decode(raw)
    start, end = msg.payload_span(1)
    covered = raw[:start] + raw[end:-32] + ALICE + BOB
    assert _mac_coverage(msg, 32, ALICE, BOB) == covered
    assert raw[-32:] == hmac.digest(b"k" * 32, covered, "sha256")
    assert hashlib.sha256(covered).digest() != hashlib.sha256(raw[:-32] + ALICE + BOB).digest()


def test_peers_of_another_kms(kms: Kms) -> None:
    """§7.2: Initiator and Responder with different KMSs; each encrypts with the other's parameters."""
    params2, master2 = ibe.bf_setup(1024)
    bob2 = IbakeCredentials(params2, [ibe.bf_extract_for_period(master2, BOB, WHEN)],
                            peer_params={ALICE: kms.params})
    alice = IbakeCredentials(kms.params, [ibe.bf_extract_for_period(kms.master, ALICE, WHEN)],
                             peer_params=lambda ident: params2 if ident == BOB else None)
    i, r = IbakeInitiator(alice, ALICE, BOB), IbakeResponder(bob2)
    run(i, r)
    assert r.result is not None and i.results[0].tgk == r.result.tgk


def test_key_request_pke(kms: Kms) -> None:
    """REQUEST_KEY_PKE (§4.2.1.1.2): signed with Alice's certificate, envelope key to the KMS certificate;
    the response keys come from env_key (checked by opening it with the KEMAC keys derived from it)."""
    from pki import make_ca, make_leaf

    from mikey.crypto.x509 import CertificateValidator
    from mikey.keystore import Credentials
    from mikey.modes.ibake_keys import IbakePkSigner

    ca = make_ca("IBAKE test root")
    alice_cert = make_leaf(ca, "alice", san_uris=[ALICE.decode()])
    bob_cert = make_leaf(ca, "bob", san_uris=[BOB.decode()])
    kms_cert = make_leaf(ca, "kms", san_uris=["sip:kms.example.org"])
    kms_creds = Credentials(kms_cert.key, kms_cert.cert)
    role = IbakeKms(kms.master, {}, identity=KMS_ID, periods=1, pk_credentials=[kms_creds],
                    validator=CertificateValidator([ca.cert]))
    signer = IbakePkSigner(Credentials(alice_cert.key, alice_cert.cert), kms_cert.cert, chash=2)
    req = IbakeKeyRequest(None, [ALICE], KMS_ID, kms.params, pk=signer)
    request = req.create_message(NOW)
    msg = Message.decode(request)
    assert msg.data_type == DataType.REQUEST_KEY_PKE
    assert [type(p).__name__ for p in msg.payloads] == ["TimestampPayload", "RandPayload", "IdrPayload",
                                                       "CertPayload", "IdrPayload", "ChashPayload", "PkePayload",
                                                       "SignPayload"]
    response = role.handle(request, NOW)
    assert response is not None and Message.decode(response).data_type == DataType.REQUEST_KEY_RESP
    assert req.receive(response, NOW).private_keys == [ibe.bf_extract_for_period(kms.master, ALICE, WHEN)]
    # Bob's certificate does not bind Alice's identity: refused (Cert error, 8)
    bob_signer = IbakePkSigner(Credentials(bob_cert.key, bob_cert.cert), kms_cert.cert)
    with pytest.raises(MikeyError) as e:
        role.receive(IbakeKeyRequest(None, [ALICE], KMS_ID, kms.params, pk=bob_signer).create_message(NOW), NOW)
    assert error_nos(e.value) == [8]
    # a tampered signed request: 0
    bad = bytearray(IbakeKeyRequest(None, [ALICE], KMS_ID, kms.params, pk=signer).create_message(NOW))
    bad[30] ^= 1
    with pytest.raises(MikeyError) as e2:
        role.receive(bytes(bad), NOW)
    assert e2.value.err_no is not None and e2.value.error_message is not None
    with pytest.raises(ValueError):
        IbakeKeyRequest(PSKS[ALICE], [ALICE], KMS_ID, kms.params, pk=signer)


@pytest.mark.parametrize("starter", ["initiator", "responder"])
def test_csb_update_new_ec_values(creds: dict[bytes, IbakeCredentials], starter: str) -> None:
    """§5.3: either side sends new EC values with the same CSB ID, a new T and no RAND; both get
    [x'][y']P keys with the initial RAND; the answer's V is keyed from the new MPK."""
    from mikey.modes.ibake import IbakeUpdateInitiator, IbakeUpdateResponder
    from mikey.wire import RandPayload

    rand = bytes(range(16))
    i = IbakeInitiator(creds[ALICE], ALICE, BOB, rand=rand)
    r = IbakeResponder(creds[BOB])
    run(i, r)
    old_i, old_r = i.results[0], r.result
    assert old_r is not None
    later = NOW + 60
    if starter == "initiator":
        up = IbakeUpdateInitiator(creds[ALICE], old_i, ALICE)
        ans = IbakeUpdateResponder(creds[BOB], old_r, BOB)
    else:
        up = IbakeUpdateInitiator(creds[BOB], old_r, BOB)
        ans = IbakeUpdateResponder(creds[ALICE], old_i, ALICE)
    m = up.create_message(later)
    msg = Message.decode(m)
    assert msg.data_type == DataType.IBAKE_I_MESSAGE_1 and msg.csb_id == old_i.csb_id
    assert msg.find(RandPayload) is None
    step = ans.receive(m, later)
    assert step.response is not None and step.result is not None and not step.result.authenticated
    new = up.receive(step.response, later)
    assert new.authenticated and new.extras["update"]
    assert new.tgk == step.result.tgk != old_i.tgk
    assert up.k_session == ans.k_session != r.k_session
    assert new.tgk == prf.prf(up.k_session, (0x1F4D675B).to_bytes(4, "big") + b"\xff" * 5 + rand, 32, 1)
    assert new.crypto_sessions[0].master_key == step.result.crypto_sessions[0].master_key
    mpk = prf.prf(up.k_session, (0x220E99A2).to_bytes(4, "big") + b"\xff" * 5 + rand, 32, 1)
    csb = old_i.csb_id.to_bytes(4, "big")
    auth = prf.prf(mpk, (0x2D22AC75).to_bytes(4, "big") + b"\xff" + csb + rand, 32, 1)
    assert step.response[-32:] == hmac.digest(auth, step.response[:-32] + ALICE + BOB, "sha256")
    # a replayed update is refused; so is a tampered answer
    with pytest.raises(ReplayError):
        IbakeUpdateResponder(creds[BOB], old_r, BOB, replay_cache=ans._side.replay_cache).receive(m, later)
    up2 = IbakeUpdateInitiator(creds[ALICE], old_i, ALICE)
    m2 = up2.create_message(later)
    s2 = IbakeUpdateResponder(creds[BOB], old_r, BOB).receive(m2, later)
    assert s2.response is not None
    bad = bytearray(s2.response)
    bad[-1] ^= 1
    with pytest.raises(AuthenticationError):
        up2.receive(bytes(bad), later)


def test_csb_update_refusals(creds: dict[bytes, IbakeCredentials]) -> None:
    from mikey.modes.ibake import IbakeUpdateInitiator, IbakeUpdateResponder

    i = IbakeInitiator(creds[ALICE], ALICE, BOB)
    r = IbakeResponder(creds[BOB])
    m1, _, _, _ = run(i, r)
    assert r.result is not None
    # an initial I_MESSAGE_1 (with RAND) is not an update
    other = IbakeInitiator(creds[ALICE], ALICE, BOB, csb_id=r.result.csb_id)
    with pytest.raises(MikeyError) as e:
        IbakeUpdateResponder(creds[BOB], r.result, BOB).receive(other.create_message(NOW), NOW)
    assert error_nos(e.value) == [12]
    # an update for another CSB: 0
    j = IbakeInitiator(creds[ALICE], ALICE, BOB)
    k = IbakeResponder(creds[BOB])
    run(j, k)
    m = IbakeUpdateInitiator(creds[ALICE], j.results[0], ALICE).create_message(NOW)
    with pytest.raises(AuthenticationError):
        IbakeUpdateResponder(creds[BOB], r.result, BOB).receive(m, NOW)
    with pytest.raises(ValueError):
        IbakeUpdateInitiator(creds[ALICE], r.result, CAROL)


def test_forking_two_devices_with_one_identity(creds: dict[bytes, IbakeCredentials]) -> None:
    """Two devices both answering as Bob (same IDRr): each answer is its own leg with its own keys,
    and the two R_MESSAGE_2s (same IDRr, same T) are told apart by their V."""
    i = IbakeInitiator(creds[ALICE], ALICE, BOB)
    m1 = i.create_message(NOW)
    a, b = IbakeResponder(creds[BOB]), IbakeResponder(creds[BOB])
    ra, rb = a.receive(m1, NOW).response, b.receive(m1, NOW).response
    assert ra is not None and rb is not None
    sa, sb = i.receive(ra, NOW), i.receive(rb, NOW)
    assert (sa.kind, sb.kind) == (AnswerKind.DIRECT, AnswerKind.DIRECT) and (sa.leg, sb.leg) == (0, 1)
    assert sa.response is not None and sb.response is not None
    # a device refuses another device's I_MESSAGE_2 (it does not echo its own [y]P): 0
    c = IbakeResponder(creds[BOB], replay_cache=ReplayCache())
    assert c.receive(m1, NOW).response is not None
    with pytest.raises(AuthenticationError) as e:
        c.receive(sb.response, NOW)
    assert error_nos(e.value) == [0]
    fa_r2 = a.receive(sa.response, NOW).response
    fb_r2 = b.receive(sb.response, NOW).response
    assert fa_r2 is not None and fb_r2 is not None
    fb, fa = i.receive(fb_r2, NOW), i.receive(fa_r2, NOW)
    assert (fa.leg, fb.leg) == (0, 1)
    assert a.result is not None and b.result is not None and fa.result is not None and fb.result is not None
    assert fa.result.tgk == a.result.tgk != b.result.tgk == fb.result.tgk


def test_stateless_sides(creds: dict[bytes, IbakeCredentials]) -> None:
    """A CLI-style run: each side keeps only its secret (x and SK, or y) and the I_MESSAGE_1 between steps."""
    i = IbakeInitiator(creds[ALICE], ALICE, BOB)
    m1 = i.create_message(NOW)
    x, sk = i.export_secrets()
    r = IbakeResponder(creds[BOB], own_ssrcs=[0xABCDEF01])
    r1 = r.receive(m1, NOW).response
    y = r.export_ec_private()
    assert r1 is not None
    i_again = IbakeInitiator.from_i_message(creds[ALICE], m1, ec_private=x, sk=sk)
    i2 = i_again.receive(r1, NOW + 1).response
    assert i2 is not None
    r_again = IbakeResponder.resume(creds[BOB], m1, y, own_ssrcs=[0xABCDEF01])
    out = r_again.receive(i2, NOW + 2)
    assert out.response is not None and out.result is not None
    done = i_again.receive(out.response, NOW + 2)
    assert done.result is not None and done.result.tgk == out.result.tgk
    assert done.result.crypto_sessions[0].ssrc == 0xABCDEF01
    # the wrong x: the echo does not match (0)
    wrong = IbakeInitiator.from_i_message(creds[ALICE], m1, ec_private=x + 1, sk=sk)
    with pytest.raises(AuthenticationError):
        wrong.receive(r1, NOW)


def test_ciphertext_u_outside_the_group_is_refused(kms: Kms, creds: dict[bytes, IbakeCredentials]) -> None:
    """U on the curve but not of order q (the mode skips BfCiphertext.decode's order check; BF
    decryption's U = [l]P check refuses it): Error no 0.  An off-curve U and a bad length too."""
    i = IbakeInitiator(creds[ALICE], ALICE, BOB)
    m1 = Message.decode(i.create_message(NOW))
    ibake_p = m1.find(IbakePayload)
    assert ibake_p is not None
    curve = kms.params.curve
    point = curve.point_from_y(12345)
    assert curve.is_on_curve(point) and not curve.in_subgroup(point)
    u = curve.encode_point(point, False)
    n = len(u)
    for data in (u + ibake_p.encr_data[n:], b"\x04" + bytes(n - 1) + ibake_p.encr_data[n:], ibake_p.encr_data[: n + 3]):
        with pytest.raises(AuthenticationError) as e:
            IbakeResponder(creds[BOB]).receive(_swap(m1.raw_bytes(), IbakePayload, IbakePayload(data)), NOW)
        assert error_nos(e.value) == [0]
