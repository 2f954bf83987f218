"""SRTP bridge: SP policy params, libsrtp profiles and contexts, SRTP KDF vectors.

RFC 3830 §6.10.1, RFC 4771 §4, RFC 7714 §15, RFC 3711 §4.3 / App. B.3, RFC 6188 §7.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pathlib
import re
import struct
from typing import Any

import pylibsrtp
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mikey import srtp
from mikey.crypto.prf import derive_srtp_salt, derive_tek, guk_id
from mikey.errors import AuthenticationError, CryptoError, MikeyDecodeError, UnsupportedSPParamsError
from mikey.srtp import (
    LABEL_RTCP_AUTH,
    LABEL_RTCP_ENCR,
    LABEL_RTCP_SALT,
    LABEL_RTP_AUTH,
    LABEL_RTP_ENCR,
    LABEL_RTP_SALT,
    SrtpContext,
    SrtpPolicyParams,
    libsrtp_version,
    make_policy,
    srtp_kdf,
    srtp_profile,
)

VECTORS = pathlib.Path(__file__).parent / "vectors"
RFC3711: list[dict[str, Any]] = json.loads((VECTORS / "srtp_rfc3711.json").read_text())["cases"]
RFC6188: list[dict[str, Any]] = json.loads((VECTORS / "srtp_kdf_rfc6188.json").read_text())["cases"]
STREAMWIDE: dict[str, Any] = json.loads((VECTORS / "mikey_sakke_streamwide.json").read_text())

MASTER_KEY = bytes(range(1, 17))
MASTER_SALT = bytes(range(101, 115))
SSRC = 0x12345678
PAYLOAD = b"MIKEY keyed SRTP payload " * 3


def rtp_packet(seq: int, ssrc: int = SSRC, payload: bytes = PAYLOAD) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, 1000 + seq, ssrc) + payload


def rtcp_packet(ssrc: int = SSRC) -> bytes:
    # RTCP sender report, no report blocks (RFC 3550 §6.4.1): 7 words.
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 1, 2, 3, 4, 5)


# --- SP parameters ---------------------------------------------------------------------


def test_defaults_rfc3830() -> None:
    p = SrtpPolicyParams.from_params([])
    assert p == SrtpPolicyParams()
    assert (p.encr_alg, p.encr_key_len, p.auth_alg, p.auth_key_len, p.salt_key_len) == (1, 16, 1, 20, 14)
    assert (p.prf, p.kdr, p.srtp_encr, p.srtcp_encr, p.srtp_auth, p.auth_tag_len, p.prefix_len) == (
        0,
        0,
        True,
        True,
        True,
        10,
        0,
    )
    assert p.aead_tag_len is None
    assert srtp_profile(p) == pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80


def test_gcm_defaults_and_round_trip() -> None:
    p = SrtpPolicyParams.from_params([(0, b"\x06")])
    assert (p.salt_key_len, p.aead_tag_len, p.encr_key_len) == (12, 16, 16)
    assert p == SrtpPolicyParams.aes_gcm()
    params = p.to_params()
    assert dict(params) == {
        0: b"\x06",
        1: b"\x10",
        4: b"\x0c",
        5: b"\x00",
        6: b"\x00",
        7: b"\x01",
        8: b"\x01",
        9: b"\x00",
        12: b"\x00",
        20: b"\x10",
    }
    assert SrtpPolicyParams.from_params(params) == p
    assert srtp_profile(p) == pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM
    assert srtp_profile(SrtpPolicyParams.aes_gcm(32)) == pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM


def test_round_trip_with_rfc4771_and_unknown() -> None:
    pairs = [(2, b"\x01"), (11, b"\x04"), (13, b"\x00\x05"), (14, b"\x02"), (19, b"\x0a"), (99, b"\xab\xcd")]
    p = SrtpPolicyParams.from_params(pairs)
    assert p.auth_tag_len == 4 and p.roc_rate == 5 and p.srtp_auth_alg == 2 and p.srtcp_auth_tag_len == 10
    assert p.effective_srtp_auth_alg == 2 and p.effective_srtcp_auth_alg == 1
    assert p.effective_srtp_tag_len == 4 and p.effective_srtcp_tag_len == 10
    assert p.unknown == ((99, b"\xab\xcd"),)
    again = SrtpPolicyParams.from_params(p.to_params())
    assert again == p
    assert p.to_params()[-1] == (99, b"\xab\xcd")
    with pytest.raises(UnsupportedSPParamsError):
        srtp_profile(p)


def test_empty_value_rejected() -> None:
    with pytest.raises(MikeyDecodeError):
        SrtpPolicyParams.from_params([(0, b"")])


@pytest.mark.parametrize("message", STREAMWIDE["cases"]["i_messages"], ids=lambda m: m["name"])
def test_streamwide_mcptt_policy(message: dict[str, Any]) -> None:
    # 3GPP MCPTT SP payload from real I-MESSAGEs: AES-GCM-128 with RCCm3 (RFC 4771).
    sp = next(p for p in message["parsed"] if p.get("payload") == "SP")
    pairs = [(t, bytes.fromhex(v)) for t, v in sp["params"]]
    p = SrtpPolicyParams.from_params(pairs)
    assert p.is_aead and p.auth_alg == 4 and p.aead_tag_len == 16 and p.salt_key_len == 12
    assert p.srtp_auth_tag_len == 4 and p.srtcp_auth_tag_len == 0
    with pytest.raises(UnsupportedSPParamsError, match="RCC"):
        srtp_profile(p)
    assert srtp_profile(p, ignore_rcc=True) == pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM
    # Everything given explicitly is written back with the same value.
    written = dict(p.to_params())
    for ptype, value in pairs:
        assert int.from_bytes(written[ptype], "big") == int.from_bytes(value, "big")


def test_group_key_to_srtp_context() -> None:
    # GMK -> (GUK-ID as CSB ID) -> master key/salt -> libsrtp AEAD-AES-128-GCM.
    case = STREAMWIDE["cases"]["guk_id_and_srtp_master_keys"][0]
    gmk, rand = bytes.fromhex(case["GMK"]), bytes.fromhex(case["GMK_RAND"])
    csb_id = guk_id(gmk, int(case["GMK_ID"], 16), case["sender_uri"])
    key = derive_tek(gmk, case["cs_id"], csb_id, rand, 16, 1)
    salt = derive_srtp_salt(gmk, case["cs_id"], csb_id, rand, 12, 1)
    assert (key.hex(), salt.hex()) == (case["master_key_TEK_16"], case["master_salt_12"])
    params = SrtpPolicyParams.aes_gcm()
    tx = SrtpContext(key, salt, params, ssrc=SSRC, outbound=True)
    rx = SrtpContext(key, salt, params, outbound=False)
    assert rx.unprotect(tx.protect(rtp_packet(9))) == rtp_packet(9)


@pytest.mark.parametrize(
    "pairs,expected",
    [
        ([(11, b"\x04")], pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32),
        ([(18, b"\x04"), (19, b"\x0a")], pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32),
        ([(11, b"\x0a")], pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80),
        ([(0, b"\x06"), (1, b"\x20"), (4, b"\x0c")], pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM),
    ],
)
def test_profile_mapping(pairs: list[tuple[int, bytes]], expected: int) -> None:
    assert srtp_profile(SrtpPolicyParams.from_params(pairs)) == expected


@pytest.mark.parametrize(
    "pairs,fragment",
    [
        ([(0, b"\x00")], "encryption algorithm 0"),
        ([(0, b"\x02")], "encryption algorithm 2"),
        ([(1, b"\x20")], "key length 32"),
        ([(2, b"\x00")], "authentication algorithm 0"),
        ([(6, b"\x00\x01\x00\x00")], "key derivation rate"),
        ([(7, b"\x00")], "encryption turned off"),
        ([(10, b"\x00")], "authentication turned off"),
        ([(11, b"\x08")], "tag lengths 8/8"),
        ([(12, b"\x04")], "prefix"),
        ([(5, b"\x01")], "PRF 1"),
        ([(0, b"\x06"), (4, b"\x0e")], "salt length 14"),
        ([(0, b"\x06"), (20, b"\x08")], "AEAD tag length 8"),
    ],
)
def test_unsupported_profiles(pairs: list[tuple[int, bytes]], fragment: str) -> None:
    with pytest.raises(UnsupportedSPParamsError, match=fragment) as info:
        srtp_profile(SrtpPolicyParams.from_params(pairs))
    assert info.value.err_no == 10


# --- libsrtp contexts -----------------------------------------------------------------


@pytest.mark.parametrize(
    "params,overhead",
    [
        (SrtpPolicyParams(), 10),
        (SrtpPolicyParams(auth_tag_len=4), 4),
        (SrtpPolicyParams.aes_gcm(), 16),
    ],
    ids=["AES-CM-128-HMAC-SHA1-80", "AES-CM-128-HMAC-SHA1-32", "AEAD-AES-128-GCM"],
)
def test_protect_unprotect(params: SrtpPolicyParams, overhead: int) -> None:
    salt = MASTER_SALT[: params.salt_key_len]
    sender = SrtpContext(MASTER_KEY, salt, params, ssrc=SSRC, outbound=True)
    receiver = SrtpContext(MASTER_KEY, salt, params, ssrc=None, outbound=False)
    for seq in (1, 2, 3):
        packet = rtp_packet(seq)
        protected = sender.protect(packet)
        assert len(protected) == len(packet) + overhead
        assert protected[:12] == packet[:12] and protected[12:-overhead] != packet[12:]
        assert receiver.unprotect(protected) == packet
    srtcp = sender.protect_rtcp(rtcp_packet())
    assert receiver.unprotect_rtcp(srtcp) == rtcp_packet()
    # replayed packet rejected
    with pytest.raises(AuthenticationError):
        receiver.unprotect(protected)


@pytest.mark.parametrize("params", [SrtpPolicyParams(), SrtpPolicyParams.aes_gcm()], ids=["CM", "GCM"])
def test_tampered_and_wrong_key_rejected(params: SrtpPolicyParams) -> None:
    salt = MASTER_SALT[: params.salt_key_len]
    sender = SrtpContext(MASTER_KEY, salt, params, ssrc=SSRC, outbound=True)
    receiver = SrtpContext(MASTER_KEY, salt, params, outbound=False)
    other = SrtpContext(bytes(16), salt, params, outbound=False)
    protected = sender.protect(rtp_packet(7))
    tampered = protected[:20] + bytes([protected[20] ^ 1]) + protected[21:]
    with pytest.raises(AuthenticationError):
        receiver.unprotect(tampered)
    with pytest.raises(AuthenticationError):
        other.unprotect(protected)
    assert receiver.unprotect(protected) == rtp_packet(7)


def test_make_policy_checks() -> None:
    p = make_policy(MASTER_KEY, MASTER_SALT, SrtpPolicyParams(), ssrc=None, outbound=True)
    assert p.ssrc_type == pylibsrtp.Policy.SSRC_ANY_OUTBOUND
    p = make_policy(MASTER_KEY, MASTER_SALT, SrtpPolicyParams(), ssrc=None, outbound=False)
    assert p.ssrc_type == pylibsrtp.Policy.SSRC_ANY_INBOUND
    p = make_policy(MASTER_KEY, MASTER_SALT, SrtpPolicyParams(), ssrc=5, outbound=False)
    assert (p.ssrc_type, p.ssrc_value) == (pylibsrtp.Policy.SSRC_SPECIFIC, 5)
    with pytest.raises(CryptoError):
        make_policy(MASTER_KEY[:15], MASTER_SALT, SrtpPolicyParams(), ssrc=None, outbound=True)
    with pytest.raises(CryptoError):
        make_policy(MASTER_KEY, MASTER_SALT, SrtpPolicyParams.aes_gcm(), ssrc=None, outbound=True)


def test_context_repr_hides_key() -> None:
    ctx = SrtpContext(MASTER_KEY, MASTER_SALT, outbound=True)
    assert MASTER_KEY.hex() not in repr(ctx) and "0102" not in repr(ctx)


# --- SRTP KDF (RFC 3711 §4.3, App. B.3; RFC 6188 §7) ----------------------------------


def test_srtp_kdf_rfc3711_b3() -> None:
    case = next(c for c in RFC3711 if c["name"].startswith("B.3"))
    mk, ms = bytes.fromhex(case["master_key"]), bytes.fromhex(case["master_salt"])
    assert srtp_kdf(mk, ms, 0x00, 0, 0, 16).hex() == case["cipher_key"]
    assert srtp_kdf(mk, ms, 0x02, 0, 0, 14).hex() == case["cipher_salt"]
    assert srtp_kdf(mk, ms, 0x01, 0, 0, case["auth_key_len_octets"]).hex() == case["auth_key"]


@pytest.mark.parametrize("case", RFC6188, ids=[c["name"] for c in RFC6188])
def test_srtp_kdf_rfc6188(case: dict[str, Any]) -> None:
    mk, ms = bytes.fromhex(case["master_key"]), bytes.fromhex(case["master_salt"])
    index = int(case["index"], 16)
    assert srtp_kdf(mk, ms, 0x00, index, case["kdr"], len(mk)).hex() == case["cipher_key"]
    assert srtp_kdf(mk, ms, 0x02, index, case["kdr"], 14).hex() == case["cipher_salt"]
    assert srtp_kdf(mk, ms, 0x01, index, case["kdr"], 20).hex() == case["auth_key_20"]


def test_srtp_kdf_key_derivation_rate() -> None:
    # r = index DIV kdr enters the key_id (RFC 3711 §4.3.1)
    a = srtp_kdf(MASTER_KEY, MASTER_SALT, 0, 0x10000, 0x10000, 16)
    b = srtp_kdf(MASTER_KEY, MASTER_SALT, 0, 0x1FFFF, 0x10000, 16)
    c = srtp_kdf(MASTER_KEY, MASTER_SALT, 0, 0x20000, 0x10000, 16)
    assert a == b != c
    assert srtp_kdf(MASTER_KEY, MASTER_SALT, 0, 12345, 0, 16) == srtp_kdf(
        MASTER_KEY, MASTER_SALT, 0, 0, 0, 16
    )
    with pytest.raises(CryptoError):
        srtp_kdf(MASTER_KEY, MASTER_SALT[:10], 0, 0, 0, 16)


# --- libsrtp output against our own derivation ----------------------------------------


@pytest.mark.parametrize("roc", [0, 3, 0x89ABCDEF])
def test_libsrtp_aes_cm_matches_own_keystream_and_tag(roc: int) -> None:
    # The whole SRTP packet, byte for byte, from our own AES-CM and HMAC over our own KDF.
    seq = 0x1234
    packet = rtp_packet(seq)
    protected = SrtpContext(MASTER_KEY, MASTER_SALT, ssrc=SSRC, outbound=True, roc=roc).protect(packet)
    k_e = srtp_kdf(MASTER_KEY, MASTER_SALT, LABEL_RTP_ENCR, 0, 0, 16)
    k_s = srtp_kdf(MASTER_KEY, MASTER_SALT, LABEL_RTP_SALT, 0, 0, 14)
    k_a = srtp_kdf(MASTER_KEY, MASTER_SALT, LABEL_RTP_AUTH, 0, 0, 20)
    index = (roc << 16) + seq  # RFC 3711 §3.3.1
    iv = (int.from_bytes(k_s, "big") << 16) ^ (SSRC << 64) ^ (index << 16)  # RFC 3711 §4.1.1
    enc = Cipher(algorithms.AES(k_e), modes.CTR(iv.to_bytes(16, "big"))).encryptor()
    body = packet[:12] + enc.update(PAYLOAD) + enc.finalize()
    tag = hmac.new(k_a, body + roc.to_bytes(4, "big"), hashlib.sha1).digest()[:10]  # RFC 3711 §4.2
    assert protected == body + tag


@pytest.mark.parametrize("roc", [0, 3])
def test_libsrtp_gcm_matches_own_aead(roc: int) -> None:
    seq = 0x0042
    salt12 = MASTER_SALT[:12]
    packet = rtp_packet(seq)
    protected = SrtpContext(
        MASTER_KEY, salt12, SrtpPolicyParams.aes_gcm(), ssrc=SSRC, outbound=True, roc=roc
    ).protect(packet)
    k_e = srtp_kdf(MASTER_KEY, salt12, LABEL_RTP_ENCR, 0, 0, 16)
    k_s = srtp_kdf(MASTER_KEY, salt12, LABEL_RTP_SALT, 0, 0, 12)
    # RFC 7714 §8.1: IV = (0x0000 || SSRC || ROC || SEQ) XOR salt
    iv = bytes(a ^ b for a, b in zip(struct.pack("!HIIH", 0, SSRC, roc, seq), k_s, strict=True))
    assert protected == packet[:12] + AESGCM(k_e).encrypt(iv, PAYLOAD, packet[:12])


def test_srtcp_keeps_its_own_index_whatever_the_roc() -> None:
    # RFC 3711 §3.4: SRTCP carries its 31-bit index; the ROC does not enter it.
    rtcp = rtcp_packet()
    outs = [SrtpContext(MASTER_KEY, MASTER_SALT, ssrc=SSRC, outbound=True, roc=roc) for roc in (0, 3)]
    for ctx in outs:
        ctx.protect(rtp_packet(7))
    srtcp = [ctx.protect_rtcp(rtcp) for ctx in outs]
    assert srtcp[0] == srtcp[1]
    # Our own SRTCP: E=1 || index 1, AES-CM with IV from the RTCP keys, HMAC over all but the tag.
    k_e = srtp_kdf(MASTER_KEY, MASTER_SALT, LABEL_RTCP_ENCR, 0, 0, 16)
    k_s = srtp_kdf(MASTER_KEY, MASTER_SALT, LABEL_RTCP_SALT, 0, 0, 14)
    k_a = srtp_kdf(MASTER_KEY, MASTER_SALT, LABEL_RTCP_AUTH, 0, 0, 20)
    index = 1
    iv = (int.from_bytes(k_s, "big") << 16) ^ (SSRC << 64) ^ (index << 16)  # RFC 3711 §4.1.1
    enc = Cipher(algorithms.AES(k_e), modes.CTR(iv.to_bytes(16, "big"))).encryptor()
    body = rtcp[:8] + enc.update(rtcp[8:]) + enc.finalize() + (0x80000000 | index).to_bytes(4, "big")
    assert srtcp[1] == body + hmac.new(k_a, body, hashlib.sha1).digest()[:10]


# --- the rollover counter (RFC 3711 §3.3.1, RFC 3830 §6.1.1) ---------------------------


@pytest.mark.parametrize("params", [SrtpPolicyParams(), SrtpPolicyParams.aes_gcm()], ids=["CM", "GCM"])
def test_join_running_stream_across_a_wrap(params: SrtpPolicyParams) -> None:
    salt = MASTER_SALT[: params.salt_key_len]
    sender = SrtpContext(MASTER_KEY, salt, params, ssrc=SSRC, outbound=True, roc=3)
    receiver = SrtpContext(MASTER_KEY, salt, params, ssrc=SSRC, outbound=False, roc=3)
    late = SrtpContext(MASTER_KEY, salt, params, ssrc=SSRC, outbound=False, roc=4)
    wrong = SrtpContext(MASTER_KEY, salt, params, ssrc=SSRC, outbound=False, roc=2)
    assert (sender.roc(), receiver.roc(), late.roc()) == (3, 3, 4)  # given, before the first packet
    first = sender.protect(rtp_packet(65533))
    assert receiver.unprotect(first) == rtp_packet(65533)
    for seq, roc in ((65534, 3), (65535, 3), (0, 4), (1, 4)):
        protected = sender.protect(rtp_packet(seq))
        assert sender.roc() == roc
        assert receiver.unprotect(protected) == rtp_packet(seq)
        assert receiver.roc() == roc  # read back from libsrtp (srtp_get_stream_roc)
        with pytest.raises(AuthenticationError, match="authentication failure"):
            wrong.unprotect(protected)
        if roc == 4:  # a member joining after the wrap is told ROC 4
            assert late.unprotect(protected) == rtp_packet(seq)
    assert late.roc() == 4 and wrong.roc() == 2
    with pytest.raises(AuthenticationError, match="replay"):
        receiver.unprotect(first)
    srtcp = sender.protect_rtcp(rtcp_packet())
    assert receiver.unprotect_rtcp(srtcp) == rtcp_packet()
    assert late.unprotect_rtcp(srtcp) == rtcp_packet()


def test_roc_zero_reads_back_from_libsrtp() -> None:
    sender = SrtpContext(MASTER_KEY, MASTER_SALT, ssrc=SSRC, outbound=True)
    receiver = SrtpContext(MASTER_KEY, MASTER_SALT, outbound=False)
    assert sender.roc() == 0
    with pytest.raises(CryptoError, match="needs the SSRC"):
        receiver.roc()
    with pytest.raises(CryptoError, match="no stream for SSRC 12345678"):
        receiver.roc(SSRC)  # libsrtp makes the stream on the first packet
    for seq in (65535, 0):
        assert receiver.unprotect(sender.protect(rtp_packet(seq))) == rtp_packet(seq)
    assert sender.roc() == receiver.roc(SSRC) == 1


def test_wildcard_receiver_joins_each_ssrc_at_the_roc() -> None:
    other = SSRC + 1
    receiver = SrtpContext(MASTER_KEY, MASTER_SALT, outbound=False, roc=3)
    senders = {s: SrtpContext(MASTER_KEY, MASTER_SALT, ssrc=s, outbound=True, roc=3) for s in (SSRC, other)}
    # A wildcard sender at ROC 3 sends what the per-SSRC senders send.
    wildcard_sender = SrtpContext(MASTER_KEY, MASTER_SALT, outbound=True, roc=3)
    for seq in (65535, 0):
        for ssrc, sender in senders.items():
            protected = sender.protect(rtp_packet(seq, ssrc))
            assert wildcard_sender.protect(rtp_packet(seq, ssrc)) == protected
            assert receiver.unprotect(protected) == rtp_packet(seq, ssrc)
    assert receiver.roc(SSRC) == receiver.roc(other) == wildcard_sender.roc(other) == 4
    assert receiver.unprotect_rtcp(senders[other].protect_rtcp(rtcp_packet(other))) == rtcp_packet(other)
    # A forged packet from a new SSRC fails and leaves no stream behind.
    for _ in range(2):  # twice: the stream of the first attempt is gone, so it can be added again
        with pytest.raises(AuthenticationError):
            receiver.unprotect(rtp_packet(5, SSRC + 2) + bytes(10))
        with pytest.raises(AuthenticationError):
            receiver.unprotect_rtcp(rtcp_packet(SSRC + 2) + bytes(14))
        with pytest.raises(CryptoError, match="no stream"):
            receiver.roc(SSRC + 2)


def test_roc_must_fit_32_bits() -> None:
    with pytest.raises(CryptoError, match="ROC must fit in 32 bits"):
        SrtpContext(MASTER_KEY, MASTER_SALT, ssrc=SSRC, outbound=True, roc=1 << 32)
    with pytest.raises(CryptoError, match="ROC"):
        SrtpContext(MASTER_KEY, MASTER_SALT, ssrc=SSRC, outbound=False, roc=-1)


def test_roc_binding_is_guarded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert re.fullmatch(r"libsrtp2 2\.\d+\.\d+", libsrtp_version())
    srtp._roc_api.cache_clear()
    monkeypatch.setattr(pylibsrtp, "__version__", "2.0.0")
    with pytest.raises(UnsupportedSPParamsError, match="pylibsrtp 1.x only, found 2.0.0"):
        SrtpContext(MASTER_KEY, MASTER_SALT, ssrc=SSRC, outbound=True, roc=1)
    # ROC 0 needs no binding.
    assert SrtpContext(MASTER_KEY, MASTER_SALT, ssrc=SSRC, outbound=True).protect(rtp_packet(1))
    monkeypatch.undo()
    srtp._roc_api.cache_clear()
    with pytest.raises(UnsupportedSPParamsError, match="srtp_t"):
        srtp._roc_api().get(pylibsrtp.Session.__new__(pylibsrtp.Session), SSRC)
