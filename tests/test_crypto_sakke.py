"""SAKKE (RFC 6508) tests with RFC 6509 Parameter Set 1: App. A known answers, tampering, real keys."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from mikey.crypto import sakke
from mikey.errors import AuthenticationError, KeyMaterialError

VECTORS = pathlib.Path(__file__).parent / "vectors"
SAKKE_V: dict[str, Any] = json.loads((VECTORS / "sakke_rfc6508.json").read_text())
PARAMS_V: dict[str, Any] = json.loads((VECTORS / "mikey_sakke_params_rfc6509.json").read_text())["cases"][0]
STREAMWIDE: dict[str, Any] = json.loads((VECTORS / "mikey_sakke_streamwide.json").read_text())
ALEA: dict[str, Any] = json.loads((VECTORS / "mikey_sakke_alea_via_streamwide.json").read_text())
KAT: dict[str, Any] = SAKKE_V["cases"][0]
H2IR: dict[str, Any] = SAKKE_V["cases"][1]
h = bytes.fromhex

PS1 = sakke.PARAMETER_SET_1
B = h(KAT["b"])
Z = h(KAT["Z"])
RSK = h(KAT["RSK"])
SED = h(KAT["SED"])
SSV = h(KAT["SSV"])


def _int(name: str, src: dict[str, Any] = KAT) -> int:
    return int(src[name], 16)


# --- RFC 6509 App. A parameters ----------------------------------------------------


def test_parameter_set_1() -> None:
    """RFC 6509 App. A: p, q, P, g; p = 3 mod 4, q = (p+1)/4, [q]P = 0, g = <P,P>."""
    for src in (PARAMS_V, SAKKE_V["parameter_set_1"]):
        assert PS1.p == int(src["p"], 16)
        assert PS1.q == int(src["q"], 16)
        assert PS1.point_p == (int(src["Px"], 16), int(src["Py"], 16))
        assert PS1.g == int(src["g"], 16)
    assert PS1.p % 4 == 3 and (PS1.p + 1) // PS1.q == 4
    assert PS1.curve.is_on_curve(*PS1.point_p)
    assert PS1.curve.multiply(PS1.q - 1, PS1.point_p) == PS1.curve.neg(PS1.point_p)
    assert sakke.pairing(PS1.point_p, PS1.point_p) == PS1.g
    assert (PS1.sakke_params_value, PS1.n_bits, PS1.sed_len) == (1, 128, 273)


# --- RFC 6508 App. A ------------------------------------------------------------------


def test_hash_to_integer_range_example() -> None:
    """§5.1 / App. A: HashToIntegerRange(SSV || b, q, SHA-256)."""
    assert sakke.hash_to_integer_range(h(H2IR["M"]), PS1.q) == _int("v_mod_q", H2IR)
    assert h(H2IR["M"]) == SSV + B
    assert sakke.hash_to_integer_range(SSV + B, PS1.q) == _int("r")


def test_master_public_key_and_rsk() -> None:
    """App. A: Z = [z]P (§6.1), K_b = [(b + z)^-1]P (§6.1.1), RSK check (§6.1.2)."""
    z = _int("z")
    assert sakke.public_key_from_master(z).hex() == KAT["Z"]
    assert sakke.issue_rsk(z, B).hex() == KAT["RSK"]
    assert RSK[1:129] == h(KAT["Kbx"]) and RSK[129:] == h(KAT["Kby"])
    sakke.validate_rsk(RSK, B, Z)


def test_encapsulation_intermediates() -> None:
    """App. A / §6.2.1: R = [r]([b]P + Z), g^r, mask, H."""
    r = _int("r")
    b = int.from_bytes(B, "big")
    q_b = PS1.curve.add(PS1.curve.multiply(b, PS1.point_p), PS1.curve.decode_point(Z))
    r_point = PS1.curve.multiply(r, q_b)
    assert PS1.curve.encode_point(r_point).hex() == KAT["R"]
    assert r_point == (_int("Rbx"), _int("Rby"))
    g_r = PS1.g_table.power(r)
    assert g_r == _int("g_pow_r")
    mask = sakke.hash_to_integer_range(int(g_r).to_bytes(128, "big"), 1 << 128)
    assert mask == _int("mask")
    assert mask ^ int.from_bytes(SSV, "big") == _int("H")


def test_encapsulate_known_answer() -> None:
    """App. A: SED = 0x04 || Rx || Ry || H (§4), 273 octets."""
    ssv, sed = sakke.encapsulate(SSV, B, Z)
    assert ssv == SSV
    assert sed.hex() == KAT["SED"]
    assert len(sed) == 273


def test_encapsulate_known_answer_from_recipient_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """§6.2.1: the same SED once the sender has built its [b]P + Z table."""
    monkeypatch.setattr(sakke, "_SENDER_TABLE_USES", 2)
    PS1._recipient_tables.clear()
    PS1._sender_uses.clear()
    for _ in range(3):
        assert sakke.encapsulate(SSV, B, Z)[1] == SED
    assert PS1._recipient_table(Z, int.from_bytes(B, "big")) is not None


def test_pairing_known_answer() -> None:
    """App. A: w = <R, K_b> = g^r (§3.2, §6.2.2 step 2), both argument orders."""
    r_point = PS1.curve.decode_point(SED[:257])
    k_point = PS1.curve.decode_point(RSK)
    w = _int("w", KAT["receiver"])
    assert w == _int("g_pow_r")
    assert sakke.pairing(r_point, k_point) == w
    assert sakke.pairing(k_point, r_point) == w


def test_decapsulate_known_answer() -> None:
    """App. A / §6.2.2: SSV recovered, TEST == R."""
    assert sakke.decapsulate(SED, RSK, B, Z) == SSV
    receiver = sakke.SakkeReceiver(RSK, B, Z, validate=True)
    assert receiver.decapsulate(SED) == SSV  # cold: lines evaluated as they are computed
    assert receiver.decapsulate(SED) == SSV  # second use: builds the normalised lines
    assert receiver.decapsulate(SED) == SSV  # warm: stored lines
    assert KAT["RSK"][2:40] not in repr(receiver).lower()


def test_pairing_paths_agree() -> None:
    """§3.2: the direct (Jacobian) Miller loop and the stored normalised lines give the same value."""
    k_point = PS1.curve.decode_point(RSK)
    r_point = PS1.curve.decode_point(SED[:257])
    w = _int("w", KAT["receiver"])
    base = sakke._MillerBase(k_point, PS1)
    lines = sakke._MillerLines(base)
    for q_point, expected in ((r_point, w), (PS1.point_p, None)):
        direct = sakke._final_representative(*base.evaluate_direct(*q_point), PS1.p)
        stored = sakke._final_representative(*lines.evaluate(*q_point), PS1.p)
        assert direct == stored
        if expected is not None:
            assert direct == expected
    # bilinearity: <[3]K, R> = <K, R>^3 = <K, [3]R>, the latter as g^(3r) from the g table
    three_k = PS1.curve.multiply(3, k_point)
    three_r = PS1.curve.multiply(3, r_point)
    assert sakke.pairing(three_k, r_point) == sakke.pairing(k_point, three_r)
    assert sakke.pairing(k_point, three_r) == PS1.g_table.power(3 * _int("r") % PS1.q)


def test_pairing_degenerate_inputs() -> None:
    """A point of order 2 as either argument has no usable pairing value here."""
    with pytest.raises(ValueError):
        sakke.pairing((0, 0), PS1.point_p)
    with pytest.raises(ValueError):
        sakke.pairing(PS1.point_p, (0, 0))
    receiver = sakke.SakkeReceiver(PS1.curve.encode_point((0, 0)), B, Z)
    with pytest.raises(AuthenticationError):
        receiver.decapsulate(SED)


def test_receiver_paths_reject_tampering() -> None:
    """Every decapsulation path (direct, line building, stored lines, [b]P + Z table) keeps step 5."""
    receiver = sakke.SakkeReceiver(RSK, B, Z)
    bad = bytearray(SED)
    bad[-1] ^= 1
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            receiver.decapsulate(bytes(bad))
        assert receiver.decapsulate(SED) == SSV
    assert receiver._recipient_table() is not None
    r_point = PS1.curve.decode_point(SED[:257])
    with pytest.raises(AuthenticationError):  # -R passes no path
        receiver.decapsulate(PS1.curve.encode_point(PS1.curve.neg(r_point)) + SED[257:])


def test_sender_tables_are_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sender builds a recipient's table once; after eviction it is not rebuilt."""
    monkeypatch.setattr(sakke, "_SENDER_TABLE_USES", 3)
    z, z_bytes = sakke.generate_master()
    idents = [b"2024-05\x00tel:+44770091%04d\x00" % n for n in range(3)]
    for ident in idents:
        b = int.from_bytes(ident, "big")
        for use in range(1, 4):
            assert (PS1._recipient_table(z_bytes, b) is not None) == (use > 3)
            sakke.encapsulate(None, ident, z_bytes)
        assert PS1._recipient_table(z_bytes, b) is not None
    first = int.from_bytes(idents[0], "big")
    assert PS1._recipient_table(z_bytes, first) is None  # evicted by the other two
    for _ in range(4):
        ssv, sed = sakke.encapsulate(None, idents[0], z_bytes)
    assert PS1._recipient_table(z_bytes, first) is None  # and not rebuilt
    receiver = sakke.SakkeReceiver(sakke.issue_rsk(z, idents[0]), idents[0], z_bytes)
    assert receiver.decapsulate(sed) == ssv


def test_recipient_tables_are_bounded() -> None:
    """At most a few [b]P + Z tables are kept; an evicted receiver falls back to the P and Z tables."""
    z, z_bytes = sakke.generate_master()
    receivers = []
    for n in range(3):
        ident = b"2024-05\x00tel:+44770090%04d\x00" % n
        receiver = sakke.SakkeReceiver(sakke.issue_rsk(z, ident), ident, z_bytes)
        receivers.append(receiver)
        for _ in range(3):
            ssv, sed = sakke.encapsulate(None, ident, z_bytes)
            assert receiver.decapsulate(sed) == ssv
    assert len(PS1._recipient_tables) <= 2
    first = receivers[0]
    assert PS1._recipient_table(first.kms_public_key, first._b) is None  # evicted, not rebuilt
    ssv, sed = sakke.encapsulate(None, first.identifier, z_bytes)
    assert first.decapsulate(sed) == ssv
    assert PS1._recipient_table(first.kms_public_key, first._b) is None


def test_fixed_base_helpers() -> None:
    """Signed base-2^8 digits and tree summation agree with plain arithmetic, including P + P and P - P."""
    from mikey.crypto._curves import signed_digits

    def reference(k: int) -> list[int]:
        out = []
        for _ in range(128):
            d = k & 255
            k >>= 8
            if d > 128:
                d -= 256
                k += 1
            out.append(d)
        return out

    q = int(PS1.q)
    for k in (0, 1, 128, 129, 255, 256, q - 1, (1 << 1016) - 1, 0x80 << 1008):
        digits = signed_digits(k, 8, 128)
        assert digits == reference(k)
        assert all(-128 <= d <= 128 for d in digits)
        assert sum(d << (8 * i) for i, d in enumerate(digits)) == k
    assert sum(d << (8 * i) for i, d in enumerate(signed_digits(-5, 8, 2))) == -5
    with pytest.raises(ValueError):
        signed_digits(1 << 1024, 8, 128)
    curve = PS1.curve
    pt = PS1.point_p
    two = curve.multiply(2, pt)
    assert curve.sum_points([]) is None
    assert curve.sum_points([pt]) == pt
    assert curve.sum_points([pt, pt]) == two
    assert curve.sum_points([pt, curve.neg(pt), two]) == two
    assert curve.sum_points([pt, two, pt, two]) == curve.multiply(6, pt)
    ks = [5, 77, 1 << 900, q - 3, 12345678901234567890]
    assert curve.sum_points([curve.multiply(k, pt) for k in ks]) == curve.multiply(sum(ks) % q, pt)
    assert PS1.p_table.multiply(q - 3) == curve.neg(curve.multiply(3, pt))
    # the batched table build gives exactly the row-by-row table
    from mikey.crypto._curves import FixedBaseTable

    table = FixedBaseTable(curve, two, 3)
    assert table.rows == table._build_sequential(two)
    assert table.multiply(q - 5) == curve.multiply(q - 10, pt)


# --- tampering ----------------------------------------------------------------------


@pytest.mark.parametrize("bit", [8, 500, 1030, 1500, 2055, 2060, 2100, 2183])
def test_flipped_bit_in_sed_rejected(bit: int) -> None:
    sed = bytearray(SED)
    sed[bit // 8] ^= 0x80 >> (bit % 8)
    with pytest.raises(AuthenticationError):
        sakke.decapsulate(bytes(sed), RSK, B, Z)


def test_malformed_sed_rejected() -> None:
    with pytest.raises(AuthenticationError):
        sakke.decapsulate(SED[:-1], RSK, B, Z)
    with pytest.raises(AuthenticationError):
        sakke.decapsulate(b"\x05" + SED[1:], RSK, B, Z)
    neg_r = PS1.curve.encode_point(PS1.curve.neg(PS1.curve.decode_point(SED[:257])))
    with pytest.raises(AuthenticationError):  # -R is a valid point of order q, but the wrong one
        sakke.decapsulate(neg_r + SED[257:], RSK, B, Z)
    two_torsion = PS1.curve.encode_point((0, 0))
    with pytest.raises(AuthenticationError):
        sakke.decapsulate(two_torsion + SED[257:], RSK, B, Z)


def test_wrong_identifier_rejected() -> None:
    with pytest.raises(AuthenticationError):
        sakke.decapsulate(SED, RSK, B.replace(b"02", b"03"), Z)


# --- key validation and round trips ---------------------------------------------------


def test_validate_rsk_rejects_bad_keys() -> None:
    with pytest.raises(KeyMaterialError):
        sakke.validate_rsk(RSK, B.replace(b"02", b"03"), Z)
    with pytest.raises(KeyMaterialError):
        sakke.validate_rsk(PS1.curve.encode_point(PS1.point_p), B, Z)
    with pytest.raises(KeyMaterialError):
        sakke.validate_rsk(RSK[:-1] + bytes([RSK[-1] ^ 1]), B, Z)
    with pytest.raises(KeyMaterialError):  # a point of order 2, outside E(F_p)[q]
        sakke.validate_rsk(PS1.curve.encode_point((0, 0)), B, Z)


def test_round_trip_random_master() -> None:
    z, z_bytes = sakke.generate_master()
    assert 2 <= z < PS1.q
    ident = b"2024-05\x00tel:+447700900999\x00"
    rsk = sakke.issue_rsk(z, ident)
    sakke.validate_rsk(rsk, ident, z_bytes)
    receiver = sakke.SakkeReceiver(rsk, ident, z_bytes)
    seen = set()
    for _ in range(3):
        ssv, sed = sakke.encapsulate(None, ident, z_bytes)
        assert len(ssv) == 16 and len(sed) == 273
        assert receiver.decapsulate(sed) == ssv
        seen.add(ssv)
    assert len(seen) == 3
    with pytest.raises(AuthenticationError):  # encapsulated for someone else
        receiver.decapsulate(sakke.encapsulate(None, ident + b"x", z_bytes)[1])


# --- deployed MIKEY-SAKKE key material --------------------------------------------------


@pytest.mark.parametrize("user", STREAMWIDE["users"], ids=lambda u: u["name"])
def test_streamwide_rsk_validates(user: dict[str, Any]) -> None:
    sakke.validate_rsk(
        h(user["UserDecryptKey_RSK"]), h(user["UserID_UID"]), h(STREAMWIDE["kms_public"]["PubEncKey_Z"])
    )


@pytest.mark.parametrize("user", ALEA["users"], ids=lambda u: u["name"])
def test_alea_rsk(user: dict[str, Any]) -> None:
    args = (h(user["RSK"]), h(user["UID"]), h(ALEA["kms_public"]["Z"]))
    if user["sakke_rsk_valid"]:
        sakke.validate_rsk(*args)
    else:  # the known-bad "bob" set
        assert user["name"] == "bob"
        with pytest.raises(KeyMaterialError):
            sakke.validate_rsk(*args)


def _sakke_messages() -> list[tuple[str, bytes, bytes, bytes, bytes, bytes]]:
    out = []
    for source, z_hex, users, messages, uid_key, rsk_key in (
        (
            "streamwide",
            STREAMWIDE["kms_public"]["PubEncKey_Z"],
            STREAMWIDE["users"],
            STREAMWIDE["cases"]["i_messages"],
            "UserID_UID",
            "UserDecryptKey_RSK",
        ),
        ("alea", ALEA["kms_public"]["Z"], ALEA["users"], ALEA["cases"], "UID", "RSK"),
    ):
        by_uid = {u[uid_key]: u for u in users}
        for msg in messages:
            payload = next(p for p in msg["parsed"] if p["payload"] == "SAKKE")
            responder = next(p for p in msg["parsed"] if p["payload"] == "IDR" and p["id_role"] == 9)
            uid = responder["id_data"]
            out.append(
                (
                    f"{source}-{msg['name']}",
                    h(payload["sakke_data"]),
                    h(by_uid[uid][rsk_key]),
                    h(uid),
                    h(z_hex),
                    h(msg["key"]),
                )
            )
    return out


@pytest.mark.parametrize("case", _sakke_messages(), ids=lambda c: c[0])
def test_deployed_i_message_sakke_payloads_decapsulate(
    case: tuple[str, bytes, bytes, bytes, bytes, bytes],
) -> None:
    """SAKKE payloads of real I-MESSAGEs decapsulate to the listed GMK/CSK/PCK (responder UID, role 9)."""
    _, sed, rsk, uid, z_bytes, key = case
    assert len(sed) == 273
    assert sakke.decapsulate(sed, rsk, uid, z_bytes) == key


def test_shared_weierstrass_helpers() -> None:
    """wnaf digits rebuild k with the NAF property; the generic-a doubling of ShortWeierstrass
    gives the same multiples as the a = -3 form of Curve (RFC 6508 curve and P-256)."""
    from mikey.crypto._curves import ShortWeierstrass, wnaf
    from mikey.crypto.eccsi import P256

    for width in (2, 5, 6):
        for k in (1, 2, 15, 16, 17, 31, 255, (1 << 255) - 19, int(PS1.q) - 1):
            digits = wnaf(k, width)
            assert sum(d << i for i, d in enumerate(digits)) == k
            assert digits[-1] > 0
            assert all(d == 0 or (d & 1 and abs(d) < 1 << (width - 1)) for d in digits)
            nonzero = [i for i, d in enumerate(digits) if d]
            assert all(b - a >= width for a, b in zip(nonzero, nonzero[1:], strict=False))
    assert wnaf(0, 5) == []
    assert wnaf(7, 2) == [-1, 0, 0, 1]

    class Generic(ShortWeierstrass):
        __slots__ = ()

        def __init__(self, p: int, q: int, a: int) -> None:
            self.p, self.q, self.a = p, q, a

    for curve, pt in ((PS1.curve, PS1.point_p), (P256, (P256.gx, P256.gy))):
        generic = Generic(int(curve.p), int(curve.q), -3)
        for k in (1, 2, 3, 1000003, int(curve.q) - 1, int(curve.q) // 3):
            assert generic._multiply_wnaf(k, pt) == curve.multiply(k, pt)
        assert generic._multiply_wnaf(int(curve.q), pt) is None
