"""ECCSI (RFC 6507) tests: App. A known answers, round trips, tampering, real MIKEY-SAKKE keys."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from mikey.crypto import eccsi
from mikey.errors import AuthenticationError, KeyMaterialError

VECTORS = pathlib.Path(__file__).parent / "vectors"
KAT: dict[str, Any] = json.loads((VECTORS / "eccsi_rfc6507.json").read_text())["cases"][0]
STREAMWIDE: dict[str, Any] = json.loads((VECTORS / "mikey_sakke_streamwide.json").read_text())
ALEA: dict[str, Any] = json.loads((VECTORS / "mikey_sakke_alea_via_streamwide.json").read_text())
h = bytes.fromhex

ID = h(KAT["ID"])
M = h(KAT["M"])


@pytest.fixture(scope="module")
def kms() -> eccsi.KmsEccsiKeys:
    return eccsi.KmsEccsiKeys.from_ksak(int(KAT["KSAK"], 16))


# --- RFC 6507 Appendix A -----------------------------------------------------


def test_curve_parameters_match_vector() -> None:
    assert eccsi.P256.p == int(KAT["p"], 16)
    assert eccsi.P256.b == int(KAT["B"], 16)
    assert eccsi.P256.q == int(KAT["q"], 16)
    assert eccsi.P256.encode_point((eccsi.P256.gx, eccsi.P256.gy)).hex() == KAT["G"]


def test_kpak(kms: eccsi.KmsEccsiKeys) -> None:
    """App. A: KPAK = [KSAK]G."""
    assert kms.kpak.hex() == KAT["KPAK"]


def test_issue_ssk_pvt_hs(kms: eccsi.KmsEccsiKeys) -> None:
    """App. A / §5.1.1: PVT = [v]G, HS, SSK = KSAK + HS*v."""
    ssk, pvt = eccsi.issue_ssk(int(KAT["KSAK"], 16), kms.kpak, ID, v=int(KAT["v"], 16))
    assert pvt.hex() == KAT["PVT"]
    assert ssk.hex() == KAT["SSK"]
    assert eccsi.compute_hs(kms.kpak, ID, pvt).hex() == KAT["HS"]
    assert kms.issue_ssk(ID, v=int(KAT["v"], 16)) == (ssk, pvt)


def test_validate_ssk(kms: eccsi.KmsEccsiKeys) -> None:
    """§5.1.2 on the App. A key pair."""
    eccsi.validate_ssk(h(KAT["SSK"]), h(KAT["PVT"]), ID, kms.kpak)


def test_y_point(kms: eccsi.KmsEccsiKeys) -> None:
    """App. A: Y = [HS]PVT + KPAK (§5.2.2 step 4)."""
    hs = int(KAT["HS"], 16)
    y = eccsi.P256.add(
        eccsi._point_mult(hs, eccsi.P256.decode_point(h(KAT["PVT"]))), eccsi.P256.decode_point(kms.kpak)
    )
    assert eccsi.P256.encode_point(y).hex() == KAT["Y"]


def test_sign_known_answer(kms: eccsi.KmsEccsiKeys) -> None:
    """App. A: J = [j]G, r = Jx, s, signature r || s || PVT (§5.2.1)."""
    sig = eccsi.sign(M, h(KAT["SSK"]), h(KAT["PVT"]), ID, kms.kpak, j=int(KAT["j"], 16))
    assert sig.hex() == KAT["SIG"]
    assert sig[:32].hex() == KAT["r"] == KAT["Jx"]
    assert sig[32:64].hex() == KAT["s"]
    assert len(sig) == eccsi.SIGNATURE_LENGTH == 129
    signer = eccsi.EccsiSigner(h(KAT["SSK"]), h(KAT["PVT"]), ID, kms.kpak)
    assert signer.hs.hex() == KAT["HS"]
    assert signer.sign(M, j=int(KAT["j"], 16)) == sig


def test_verify_known_answer(kms: eccsi.KmsEccsiKeys) -> None:
    """App. A signature verifies (§5.2.2), cold and then warm (cached Y)."""
    eccsi._peers.clear()
    eccsi.verify(M, h(KAT["SIG"]), ID, kms.kpak)
    eccsi.verify(M, h(KAT["SIG"]), ID, kms.kpak)


# --- tampering -----------------------------------------------------------------


@pytest.mark.parametrize("bit", [0, 100, 255, 256, 300, 511, 520, 800, 1031])
def test_flipped_bit_rejected(kms: eccsi.KmsEccsiKeys, bit: int) -> None:
    sig = bytearray(h(KAT["SIG"]))
    sig[bit // 8] ^= 0x80 >> (bit % 8)
    with pytest.raises(AuthenticationError):
        eccsi.verify(M, bytes(sig), ID, kms.kpak)


def test_wrong_message_identifier_kpak_rejected(kms: eccsi.KmsEccsiKeys) -> None:
    sig = h(KAT["SIG"])
    with pytest.raises(AuthenticationError):
        eccsi.verify(M + b"x", sig, ID, kms.kpak)
    with pytest.raises(AuthenticationError):
        eccsi.verify(M, sig, ID.replace(b"02", b"03"), kms.kpak)
    other = eccsi.KmsEccsiKeys.from_ksak(0x54321)
    with pytest.raises(AuthenticationError):
        eccsi.verify(M, sig, ID, other.kpak)
    with pytest.raises(AuthenticationError):
        eccsi.verify(M, sig[:-1], ID, kms.kpak)


def test_out_of_range_r_and_s_rejected(kms: eccsi.KmsEccsiKeys) -> None:
    sig = h(KAT["SIG"])
    q = int(KAT["q"], 16)
    big_r = (q + 5).to_bytes(32, "big")  # r >= q takes the exact (pure Python) path
    with pytest.raises(AuthenticationError):
        eccsi.verify(M, big_r + sig[32:], ID, kms.kpak)
    with pytest.raises(AuthenticationError):
        eccsi.verify(M, bytes(32) + sig[32:], ID, kms.kpak)
    with pytest.raises(AuthenticationError):
        eccsi.verify(M, sig[:32] + q.to_bytes(32, "big") + sig[64:], ID, kms.kpak)


def test_exact_path(kms: eccsi.KmsEccsiKeys) -> None:
    """The pure-Python steps 5-6 of §5.2.2 (used for r outside [p-q, q)) agree with App. A."""
    peer = eccsi._peer(ID, h(KAT["PVT"]), kms.kpak)
    he, r, s = int(KAT["HE"], 16), int(KAT["r"], 16), int(KAT["s"], 16)
    eccsi._verify_exact(peer.y_point, he, r, s)
    with pytest.raises(AuthenticationError):
        eccsi._verify_exact(peer.y_point, he + 1, r, s)
    with pytest.raises(AuthenticationError):
        eccsi._verify_exact(peer.y_point, he, r, s + 1)


# --- SSK validation failures ----------------------------------------------------


def test_validate_ssk_rejects_bad_keys(kms: eccsi.KmsEccsiKeys) -> None:
    ssk, pvt = h(KAT["SSK"]), h(KAT["PVT"])
    bad_ssk = (int.from_bytes(ssk, "big") + 1).to_bytes(32, "big")
    with pytest.raises(KeyMaterialError):
        eccsi.validate_ssk(bad_ssk, pvt, ID, kms.kpak)
    with pytest.raises(KeyMaterialError):
        eccsi.validate_ssk(ssk, pvt, ID + b"x", kms.kpak)
    off_curve = pvt[:-1] + bytes([pvt[-1] ^ 1])
    with pytest.raises(KeyMaterialError):
        eccsi.validate_ssk(ssk, off_curve, ID, kms.kpak)
    with pytest.raises(KeyMaterialError):
        eccsi.validate_ssk(bytes(32), pvt, ID, kms.kpak)
    with pytest.raises(KeyMaterialError):
        eccsi.EccsiSigner(bad_ssk, pvt, ID, kms.kpak)


# --- round trips ------------------------------------------------------------------


def test_round_trip_random_keys() -> None:
    kms = eccsi.KmsEccsiKeys.generate()
    ident = b"2024-05\x00tel:+447700900999\x00"
    ssk, pvt = kms.issue_ssk(ident)
    eccsi.validate_ssk(ssk, pvt, ident, kms.kpak)
    signer = eccsi.EccsiSigner(ssk, pvt, ident, kms.kpak)
    for msg in (b"", b"hello", bytes(range(256)) * 4):
        sig = signer.sign(msg)
        assert sig[64:] == pvt
        eccsi.verify(msg, sig, ident, kms.kpak)
        assert eccsi.sign(msg, ssk, pvt, ident, kms.kpak) != sig  # fresh j each time
    with pytest.raises(AuthenticationError):
        eccsi.verify(b"other", signer.sign(b"hello"), ident, kms.kpak)


def test_point_mult_matches_python() -> None:
    base = eccsi._base_mult(0xDEADBEEF)
    for k in (1, 2, 3, 0x1234567890ABCDEF, int(eccsi.P256.q) - 1):
        assert eccsi._point_mult(k, base) == eccsi.P256.multiply(k, base)


def test_secrets_not_in_repr(kms: eccsi.KmsEccsiKeys) -> None:
    assert "74565" not in repr(kms) and "12345" not in repr(kms)
    signer = eccsi.EccsiSigner(h(KAT["SSK"]), h(KAT["PVT"]), ID, kms.kpak, validate=False)
    assert KAT["SSK"] not in repr(signer).lower()
    assert str(int(KAT["SSK"], 16)) not in repr(signer)


# --- deployed MIKEY-SAKKE key material --------------------------------------------


@pytest.mark.parametrize("user", STREAMWIDE["users"], ids=lambda u: u["name"])
def test_streamwide_user_keys_validate(user: dict[str, Any]) -> None:
    kpak = h(STREAMWIDE["kms_public"]["PubAuthKey_KPAK"])
    eccsi.validate_ssk(h(user["UserSigningKeySSK"]), h(user["UserPubTokenPVT"]), h(user["UserID_UID"]), kpak)


@pytest.mark.parametrize("user", ALEA["users"], ids=lambda u: u["name"])
def test_alea_user_keys(user: dict[str, Any]) -> None:
    kpak = h(ALEA["kms_public"]["KPAK"])
    args = (h(user["SSK"]), h(user["PVT"]), h(user["UID"]), kpak)
    if user["eccsi_pair_valid"]:
        eccsi.validate_ssk(*args)
    else:  # the known-bad "bob" set: its PVT is a copy of alice's
        assert user["name"] == "bob"
        with pytest.raises(KeyMaterialError):
            eccsi.validate_ssk(*args)


def _signed_messages() -> list[tuple[str, bytes, bytes, bytes, bytes]]:
    out = []
    for source, kpak_hex, messages in (
        ("streamwide", STREAMWIDE["kms_public"]["PubAuthKey_KPAK"], STREAMWIDE["cases"]["i_messages"]),
        ("alea", ALEA["kms_public"]["KPAK"], ALEA["cases"]),
    ):
        for msg in messages:
            raw = h(msg["i_message_hex"])
            sign_payload = next(p for p in msg["parsed"] if p["payload"] == "SIGN")
            initiator = next(p for p in msg["parsed"] if p["payload"] == "IDR" and p["id_role"] == 8)
            sig = h(sign_payload["signature"])
            assert raw[-len(sig) :] == sig
            # coverage: everything before the signature, i.e. including the SIGN type/length octets
            signed = raw[: -len(sig)]
            assert len(signed) == sign_payload["signed_part_len"] + 2
            out.append((f"{source}-{msg['name']}", signed, sig, h(initiator["id_data"]), h(kpak_hex)))
    return out


@pytest.mark.parametrize("case", _signed_messages(), ids=lambda c: c[0])
def test_deployed_i_message_signatures_verify(case: tuple[str, bytes, bytes, bytes, bytes]) -> None:
    """ECCSI SIGN payloads of real I-MESSAGEs (coverage includes the SIGN S type/length octets)."""
    _, signed, sig, uid, kpak = case
    assert len(sig) == 129
    eccsi.verify(signed, sig, uid, kpak)
    with pytest.raises(AuthenticationError):
        eccsi.verify(signed[:-2], sig, uid, kpak)
