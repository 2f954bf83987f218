"""The fast paths of the Boneh-Franklin maths (crypto/_type1.py, crypto/ibe.py) against the plain ones.

The Lucas-ladder final exponentiation, the slope-normalised Miller lines, the
fixed-base table for e'(P_pub, Q_id) and its use from the third encryption on
must give exactly the values of the straightforward algorithms (the RFC 5091 §7
known answers and the literal transcription of §3.5.2 are in test_crypto_ibe.py).
"""

from __future__ import annotations

import random

import pytest

from mikey.crypto import ibe
from mikey.crypto._type1 import FixedBaseOdd, FixedBaseUnitary, Fp2, MillerLines, Type1Curve
from mikey.errors import CryptoError


@pytest.fixture(scope="module")
def kms() -> tuple[ibe.BfParams, ibe.BfMasterSecret]:
    """RFC 5091 security parameter 1024 (p of 512 bits, q of 160 bits, SHA-1), deterministic."""
    return ibe.bf_setup(1024, random.Random(6267).randrange)


def _unitary(curve: Type1Curve, rnd: random.Random) -> Fp2:
    """A random element of norm 1 of F_p^2: conj(f)/f for a random f."""
    p = int(curve.p)
    a, b = rnd.randrange(1, p), rnd.randrange(1, p)
    n_inv = pow(a * a + b * b, -1, p)
    return ((a * a - b * b) * n_inv % p, (-2 * a * b) * n_inv % p)


def test_lucas_power_equals_the_binary_method(kms: tuple[ibe.BfParams, ibe.BfMasterSecret]) -> None:
    params, _ = kms
    curve = params.curve
    p, q, c = int(curve.p), int(curve.q), int(curve.cofactor)
    rnd = random.Random(1)
    exponents = [0, 1, 2, 3, 4, 5, q - 1, q, c, c * (c % q), p + 1, *(rnd.randrange(1, p) for _ in range(6))]
    for _ in range(3):
        g = _unitary(curve, rnd)
        assert (g[0] ** 2 + g[1] ** 2) % p == 1
        for e in exponents:
            assert curve.lucas_power(g, e) == curve.unitary_power(g, e), e
    assert curve.lucas_power(g, p + 1) == (1, 0)  # the norm-1 group has order p + 1
    # +-1 (the ladder's Im recovery divides by Im g = 0: handled apart)
    for e in (0, 1, 2, 7, c):
        assert curve.lucas_power((1, 0), e) == (1, 0)
        assert curve.lucas_power((p - 1, 0), e) == ((1, 0) if e % 2 == 0 else (p - 1, 0))


def test_final_exponentiation_with_extra_exponent(kms: tuple[ibe.BfParams, ibe.BfMasterSecret]) -> None:
    params, _ = kms
    curve = params.curve
    p = int(curve.p)
    rnd = random.Random(2)
    for _ in range(3):
        f = (rnd.randrange(p), rnd.randrange(1, p))
        value = curve.final_exponentiation(f)
        assert curve.unitary_power(value, int(curve.q)) == (1, 0)  # in the order-q group
        # f^(p-1) computed independently: conj(f)^2 / N(f)
        n_inv = pow(f[0] ** 2 + f[1] ** 2, -1, p)
        g = ((f[0] ** 2 - f[1] ** 2) * n_inv % p, (-2 * f[0] * f[1]) * n_inv % p)
        assert value == curve.unitary_power(g, int(curve.cofactor))
        assert curve.final_exponentiation(f, 12345) == curve.unitary_power(value, 12345)
        # an F_p factor of the Miller value vanishes
        k = rnd.randrange(2, p)
        assert curve.final_exponentiation((f[0] * k % p, f[1] * k % p)) == value
    with pytest.raises(ValueError):
        curve.final_exponentiation((0, 0))


def test_miller_lines_are_slope_normalised(kms: tuple[ibe.BfParams, ibe.BfMasterSecret]) -> None:
    """Every stored step has e = cl - x_new and 1/lam non-zero; the pairing through them is bilinear."""
    params, _ = kms
    curve = params.curve
    p = int(curve.p)
    lines = MillerLines(curve, params.point_p_pub)
    for il, cl, e, x_new, add in lines.steps:
        assert il != 0 and e == (cl - x_new) % p
        if add is not None:
            assert add[0] != 0 and add[2] == (add[1] - add[3]) % p
    rnd = random.Random(3)
    a = rnd.randrange(1, int(curve.q))
    point = curve.multiply(a, params.point_p)
    assert point is not None
    base = lines.pairing(params.point_p)
    assert lines.pairing(point) == curve.unitary_power(base, a)
    assert MillerLines(curve, point).pairing(params.point_p_pub) == lines.pairing(point)  # symmetric


def test_fixed_base_unitary_equals_the_regular_power(kms: tuple[ibe.BfParams, ibe.BfMasterSecret]) -> None:
    params, _ = kms
    curve = params.curve
    q = int(curve.q)
    theta = params.theta(b"sip:alice@example.org")
    rnd = random.Random(4)
    for w in (4, 5):
        table = FixedBaseUnitary(curve, theta, w)
        for e in [1, 2, 3, q - 1, q + 5, *(rnd.randrange(1, q) for _ in range(8))]:
            assert table.power(e) == curve.unitary_power(theta, e % q) == curve.unitary_power(theta, e, secret=True)
    with pytest.raises(CryptoError):
        FixedBaseUnitary(curve, (1, 0))


def test_theta_power_builds_its_table_on_the_third_use(kms: tuple[ibe.BfParams, ibe.BfMasterSecret]) -> None:
    params, _ = kms
    curve = params.curve
    params.clear_caches()
    ident = b"sip:bob@example.org2024-05"
    theta = params.theta(ident)
    rnd = random.Random(5)
    for use in range(1, 6):
        e = rnd.randrange(1, int(curve.q))
        assert params.theta_power(ident, e) == curve.unitary_power(theta, e)
        assert (ident in params._theta_tables) == (use >= 3), use
    params.clear_caches()
    assert ident not in params._theta_tables and ident not in params._theta


def test_evicted_theta_table_is_not_rebuilt(kms: tuple[ibe.BfParams, ibe.BfMasterSecret]) -> None:
    params, _ = kms
    curve = params.curve
    params.clear_caches()
    first = b"first"
    for _ in range(3):
        params.theta_power(first, 7)
    assert first in params._theta_tables
    for n in range(ibe._THETA_TABLE_CACHE_SIZE):  # other identities push it out
        for _ in range(3):
            params.theta_power(b"other%d" % n, 7)
    assert first not in params._theta_tables
    for _ in range(3):
        assert params.theta_power(first, 11) == curve.unitary_power(params.theta(first), 11)
    assert first not in params._theta_tables
    params.clear_caches()


def test_encrypt_and_decrypt_agree_across_the_table_threshold(kms: tuple[ibe.BfParams, ibe.BfMasterSecret]) -> None:
    """Ciphertexts made before and after the identity's theta table decrypt alike, also after a restart."""
    params, master = kms
    params.clear_caches()
    ident = b"sip:carol@example.org2024-05"
    key = ibe.bf_extract(master, ident)
    rnd = random.Random(6)
    for n in range(5):
        message = bytes(rnd.randrange(256) for _ in range(40 + n))
        rho = bytes(rnd.randrange(256) for _ in range(params.hashlen))
        ct = ibe.bf_encrypt(params, ident, message, rho=rho)
        again = ibe.bf_encrypt(ibe.BfParams.decode(params.encode()), ident, message, rho=rho)  # cold parameters
        assert ct == again
        assert ibe.bf_decrypt(params, key, ct) == message
    params.clear_caches()


@pytest.mark.parametrize("w", [2, 3, 5, 7])
def test_fixed_base_odd_batched_build_equals_the_sequential_one(
    kms: tuple[ibe.BfParams, ibe.BfMasterSecret], w: int
) -> None:
    params, _ = kms
    curve = params.curve
    table = FixedBaseOdd(curve, params.point_p, w)
    count = len(curve.regular_scalar(1, w))
    assert table.rows == table._build_sequential(params.point_p, count)
    assert len(table.rows) == count and all(len(row) == 1 << (w - 1) for row in table.rows)
    rnd = random.Random(w)
    for k in [1, 2, int(curve.q) - 1, *(rnd.randrange(1, int(curve.q)) for _ in range(4))]:
        assert table.multiply(k) == curve.multiply(k, params.point_p)


def test_fixed_base_odd_refuses_a_base_of_small_order(kms: tuple[ibe.BfParams, ibe.BfMasterSecret]) -> None:
    with pytest.raises(CryptoError):
        FixedBaseOdd(kms[0].curve, (0, 1))  # order 3


def test_miller_lines_refuse_points_not_of_order_q(kms: tuple[ibe.BfParams, ibe.BfMasterSecret]) -> None:
    params, _ = kms
    curve = params.curve
    p = int(curve.p)
    rnd = random.Random(8)
    full = curve.point_from_y(rnd.randrange(2, p))  # order (p+1)/k for some k: almost never q
    assert curve.multiply(int(curve.q), full) is not None
    for bad in [(0, 1), (0, p - 1), (p - 1, 0), full]:  # orders 3, 3, 2 and large
        with pytest.raises(ValueError):
            MillerLines(curve, bad)
    with pytest.raises(CryptoError):
        ibe.pairing(params, full, params.point_p)
