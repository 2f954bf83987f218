"""MIKEY PRF and key derivation (RFC 3830 §4.1, RFC 6043 §6.1, 3GPP GUK-ID/DPCK)."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import pathlib
from typing import Any

import pytest

from mikey.crypto import prf as prf_mod
from mikey.crypto.prf import (
    CONST_ENCR,
    CONST_SALT,
    CONST_TEK,
    CONST_TRANSPORT_AUTH,
    CONST_TRANSPORT_ENCR,
    CONST_TRANSPORT_SALT,
    TransportKeys,
    derive_dpck,
    derive_from_tgk,
    derive_srtp_auth_key,
    derive_srtp_encr_key,
    derive_srtp_salt,
    derive_tek,
    derive_transport_keys,
    guk_id,
    kdf_ts33220,
    prf,
)
from mikey.errors import CryptoError, UnsupportedPRFError

VECTORS = pathlib.Path(__file__).parent / "vectors"


def _streamwide() -> dict[str, Any]:
    cases: dict[str, Any] = json.loads((VECTORS / "mikey_sakke_streamwide.json").read_text())["cases"]
    return cases


def reference_prf(inkey: bytes, label: bytes, out_len: int, hash_name: str) -> bytes:
    """RFC 3830 §4.1.2 written out literally, in bits, as the RFC states it."""
    hash_bits = {"sha1": 160, "sha256": 256}[hash_name]
    inkey_len = len(inkey) * 8
    outkey_len = out_len * 8
    n = math.ceil(inkey_len / 256)
    s = [inkey[32 * i : 32 * (i + 1)] for i in range(n)]
    m = math.ceil(outkey_len / hash_bits)

    def p_func(key: bytes) -> bytes:
        a = [label]
        out = b""
        for i in range(1, m + 1):
            a.append(hmac.new(key, a[i - 1], hash_name).digest())
            out += hmac.new(key, a[i] + label, hash_name).digest()
        return out

    result = p_func(s[0])
    for piece in s[1:]:
        result = bytes(x ^ y for x, y in zip(result, p_func(piece), strict=True))
    return result[:out_len]


# --- RFC 3830 §4.1.2 / RFC 6043 §6.1 against the literal reference -----------------


@pytest.mark.parametrize("prf_func,hash_name", [(0, "sha1"), (1, "sha256")])
@pytest.mark.parametrize("inkey_len", [1, 16, 31, 32, 33, 48, 64, 65, 100])
@pytest.mark.parametrize("out_len", [1, 16, 20, 21, 32, 33, 94])
def test_prf_matches_reference(prf_func: int, hash_name: str, inkey_len: int, out_len: int) -> None:
    inkey = bytes((7 * i + 3) & 0xFF for i in range(inkey_len))
    label = bytes.fromhex("2ad01c64") + b"\x01" + bytes.fromhex("deadbeef") + bytes(range(16))
    assert prf(inkey, label, out_len, prf_func) == reference_prf(inkey, label, out_len, hash_name)


def test_prf_splits_inkey_into_256_bit_pieces() -> None:
    # A 64-octet inkey is two pieces: output = P(s1) XOR P(s2) (RFC 3830 §4.1.2).
    s1, s2 = bytes(range(32)), bytes(range(32, 64))
    label = b"label"
    one = prf(s1, label, 40)
    two = prf(s2, label, 40)
    assert prf(s1 + s2, label, 40) == bytes(a ^ b for a, b in zip(one, two, strict=True))
    # 33 octets: the second piece is a single octet.
    assert prf(s1 + b"\x99", label, 20) == bytes(
        a ^ b for a, b in zip(one[:20], prf(b"\x99", label, 20), strict=True)
    )


def test_prf_output_is_prefix_of_longer_output() -> None:
    key = bytes(16)
    assert prf(key, b"x", 50, 1)[:10] == prf(key, b"x", 10, 1)
    assert prf(key, b"x", 0) == b""


def test_prf_first_block_by_hand() -> None:
    # One piece, m = 1: output = HMAC(s, HMAC(s, label) || label).
    key, label = b"k" * 16, b"label"
    a1 = hmac.new(key, label, hashlib.sha1).digest()
    assert prf(key, label, 20) == hmac.new(key, a1 + label, hashlib.sha1).digest()


def test_prf_rejects_unknown_function_and_empty_key() -> None:
    with pytest.raises(UnsupportedPRFError) as info:
        prf(b"k" * 16, b"l", 16, 2)
    assert info.value.err_no == 2
    with pytest.raises(CryptoError):
        prf(b"", b"l", 16)
    with pytest.raises(CryptoError):
        prf(b"k", b"l", -1)


@pytest.mark.parametrize("prf_func,hash_name", [(0, "sha1"), (1, "sha256")])
@pytest.mark.parametrize("inkey_len", [16, 32, 33, 100])
@pytest.mark.parametrize("out_len", [0, 14, 40, 41, 200, 1000, 1024])
def test_prf_and_prf_many_long_outputs_match_reference(
    prf_func: int, hash_name: str, inkey_len: int, out_len: int
) -> None:
    """Many-block outputs up to the bound (built with join, not repeated concatenation)."""
    inkey = bytes((5 * i + 1) & 0xFF for i in range(inkey_len))
    label = bytes.fromhex("39a2c14b") + b"\x02" + bytes(4) + bytes(range(16))
    want = reference_prf(inkey, label, out_len, hash_name)
    assert prf(inkey, label, out_len, prf_func) == want
    many = prf_mod.prf_many(inkey, [(b"other", 16), (label, out_len), (label, 0)], prf_func)
    assert many[1:] == [want, b""]
    assert many[0] == reference_prf(inkey, b"other", 16, hash_name)


def test_prf_output_bound() -> None:
    """Issue 7 finding 1: a peer-chosen length must not make the PRF run for hours."""
    assert prf_mod.MAX_PRF_OUTPUT == 1024
    for out_len in (1025, 2_000_000, 0xFFFFFFFF, 1 << 64):
        with pytest.raises(CryptoError, match="at most 1024"):
            prf(b"k" * 16, b"l", out_len)
        with pytest.raises(CryptoError, match="at most 1024"):
            prf(b"k" * 100, b"l", out_len, 1)
        with pytest.raises(CryptoError, match="at most 1024"):
            prf_mod.prf_many(b"k" * 16, [(b"a", 16), (b"l", out_len)])
        with pytest.raises(CryptoError, match="at most 1024"):
            prf_mod.prf_many(b"k" * 64, [(b"l", out_len)])
        with pytest.raises(CryptoError, match="at most 1024"):
            derive_transport_keys(b"k" * 16, 1, bytes(16), encr_len=16, auth_len=out_len, salt_len=14)
    with pytest.raises(CryptoError, match="negative"):
        prf_mod.prf_many(b"k" * 64, [(b"l", -1)])


# --- RFC 3830 §4.1.3 with PRF-HMAC-SHA-256: Streamwide vectors -----------------------


@pytest.mark.parametrize("case", _streamwide()["key_derivation_rfc3830_prf_hmac_sha256"])
def test_streamwide_key_derivation(case: dict[str, Any]) -> None:
    ssv = bytes.fromhex(case["inkey_SSV"])
    rand = bytes.fromhex(case["RAND"])
    csb_id = int(case["csb_id"], 16)
    cs_id = case["cs_id"]
    if "encr_key_16_const_15798cef" in case:
        assert (
            derive_srtp_encr_key(ssv, cs_id, csb_id, rand, 16, 1).hex() == case["encr_key_16_const_15798cef"]
        )
        assert (
            derive_from_tgk(ssv, CONST_ENCR, cs_id, csb_id, rand, 16, 1).hex()
            == case["encr_key_16_const_15798cef"]
        )
    if "TEK_16_const_2ad01c64" in case:
        assert derive_tek(ssv, cs_id, csb_id, rand, 16, 1).hex() == case["TEK_16_const_2ad01c64"]
    assert derive_srtp_salt(ssv, cs_id, csb_id, rand, 12, 1).hex() == case["salt_12_const_39a2c14b"]


def test_tgk_labels() -> None:
    # label = const || cs_id || csb_id || RAND (RFC 3830 §4.1.3)
    tgk, rand = bytes(range(16)), bytes(range(100, 116))
    label = bytes.fromhex("1b5c7973") + b"\x03" + bytes.fromhex("01020304") + rand
    assert derive_srtp_auth_key(tgk, 3, 0x01020304, rand, 20) == reference_prf(tgk, label, 20, "sha1")
    label = bytes.fromhex("2ad01c64") + b"\x03" + bytes.fromhex("01020304") + rand
    assert derive_tek(tgk, 3, 0x01020304, rand, 16) == reference_prf(tgk, label, 16, "sha1")
    with pytest.raises(CryptoError):
        derive_tek(tgk, 256, 0, rand, 16)
    with pytest.raises(CryptoError):
        derive_tek(tgk, 0, 1 << 32, rand, 16)


# --- RFC 3830 §4.1.4 transport keys -------------------------------------------------


def test_transport_keys() -> None:
    psk, rand, csb = bytes(range(20)), bytes(range(16)), 0xCAFEBABE
    keys = derive_transport_keys(psk, csb, rand, encr_len=16, auth_len=20, salt_len=14)
    for const, value in (
        (CONST_TRANSPORT_ENCR, keys.encr_key),
        (CONST_TRANSPORT_AUTH, keys.auth_key),
        (CONST_TRANSPORT_SALT, keys.salt),
    ):
        label = const.to_bytes(4, "big") + b"\xff" + csb.to_bytes(4, "big") + rand
        assert value == reference_prf(psk, label, len(value), "sha1")
    assert (len(keys.encr_key), len(keys.auth_key), len(keys.salt)) == (16, 20, 14)
    keys256 = derive_transport_keys(psk, csb, rand, encr_len=32, auth_len=32, salt_len=14, prf_func=1)
    label = CONST_TRANSPORT_ENCR.to_bytes(4, "big") + b"\xff" + csb.to_bytes(4, "big") + rand
    assert keys256.encr_key == reference_prf(psk, label, 32, "sha256")


def test_transport_keys_repr_hides_values() -> None:
    keys = TransportKeys(encr_key=b"\xaa" * 16, auth_key=b"\xbb" * 20, salt=b"\xcc" * 14)
    text = repr(keys)
    assert "aa" not in text and "bb" not in text and "cc" not in text
    assert "16 octets" in text


def test_constants() -> None:
    # RFC 3830 Tables 4.1.3/4.1.4; 0x2AD01C64 = 718281828, the digits of e.
    assert CONST_TEK == 718281828
    assert CONST_SALT == 0x39A2C14B
    assert prf_mod.CONST_AUTH == 0x1B5C7973


# --- 3GPP GUK-ID, SRTP master keys from the GMK, DPCK --------------------------------


@pytest.mark.parametrize("case", [c for c in _streamwide()["guk_id_and_srtp_master_keys"] if "GUK_ID" in c])
def test_guk_id(case: dict[str, Any]) -> None:
    uri = case["sender_uri"].split(" ")[0]
    result = guk_id(bytes.fromhex(case["GMK"]), int(case["GMK_ID"], 16), uri)
    assert f"{result:08x}" == case["GUK_ID"]


@pytest.mark.parametrize(
    "case", [c for c in _streamwide()["guk_id_and_srtp_master_keys"] if "master_key_TEK_16" in c]
)
def test_srtp_master_keys_from_group_key(case: dict[str, Any]) -> None:
    key = bytes.fromhex(case.get("GMK") or case["key"])
    rand = bytes.fromhex(case.get("GMK_RAND") or case["RAND"])
    if "GUK_ID" in case:
        # The GUK-ID is the CSB ID used for GMK-derived SRTP keys.
        csb_id = guk_id(key, int(case["GMK_ID"], 16), case["sender_uri"])
        assert f"{csb_id:08x}" == case["GUK_ID"]
    else:
        csb_id = int(case["key_id_used_as_csb_id"], 16)
    cs_id = case["cs_id"]
    assert derive_tek(key, cs_id, csb_id, rand, 16, 1).hex() == case["master_key_TEK_16"]
    assert derive_srtp_salt(key, cs_id, csb_id, rand, 12, 1).hex() == case["master_salt_12"]


@pytest.mark.parametrize("case", _streamwide()["dpck_derivation"])
def test_dpck(case: dict[str, Any]) -> None:
    dppk, dppk_id = bytes.fromhex(case["DPPK_GMK"]), bytes.fromhex(case["DPPK_ID"])
    assert kdf_ts33220(dppk, 0x53, dppk_id).hex() == case["kdf_output_full"]
    assert derive_dpck(dppk, dppk_id).hex() == case["DPCK"]
