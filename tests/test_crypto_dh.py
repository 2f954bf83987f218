"""OAKLEY groups and DH TGK computation (RFC 3830 §3.3, §4.2.7, §6.4)."""

from __future__ import annotations

import gmpy2
import pytest
from cryptography.hazmat.primitives.asymmetric import dh as crypto_dh

from mikey.crypto import dh
from mikey.errors import CryptoError, MikeyError, UnsupportedDHGroupError

# (DH-Group value, prime bits, well-known offset of the pi-based construction)
GROUPS = [(0, 1536, 741804), (1, 768, 149686), (2, 1024, 129093)]

# cryptography >= 50 deprecates finite-field DH; it is used here only as an independent
# cross-check of our OAKLEY group arithmetic (mikey.crypto.dh uses gmpy2).
pytestmark = pytest.mark.filterwarnings("ignore:Diffie-Hellman over finite fields")


def _pi_structure(n: int, offset: int) -> int:
    """p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) * pi) + offset) (RFC 2409 §6, RFC 3526 §2)."""
    with gmpy2.context(precision=n + 64):
        floor_pi: int = int(gmpy2.floor(gmpy2.const_pi() * gmpy2.mpfr(2) ** (n - 130)))
    return int(2**n - 2 ** (n - 64) - 1 + 2**64 * (floor_pi + offset))


@pytest.mark.parametrize(("group_id", "bits", "offset"), GROUPS)
def test_group_primes_match_rfc_structure(group_id: int, bits: int, offset: int) -> None:
    group = dh.get_group(group_id)
    assert group.g == 2
    assert group.p.bit_length() == bits == group.bits
    assert group.byte_length == bits // 8
    assert group.p == _pi_structure(bits, offset)
    assert gmpy2.is_prime(group.p)
    assert gmpy2.is_prime((group.p - 1) // 2)  # safe prime


def test_group5_first_and_last_words() -> None:
    # RFC 3526 §2 begins "FFFFFFFF FFFFFFFF C90FDAA2 2168C234" and ends "CA237327 FFFFFFFF FFFFFFFF".
    p = dh.get_group(0).p.to_bytes(192, "big")
    assert p[:16].hex().upper() == "FFFFFFFFFFFFFFFFC90FDAA22168C234"
    assert p[-12:].hex().upper() == "CA237327FFFFFFFFFFFFFFFF"


def test_unsupported_group() -> None:
    with pytest.raises(UnsupportedDHGroupError) as info:
        dh.get_group(3)
    assert info.value.err_no == 6
    assert [g.group_id for g in dh.supported_groups()] == [0, 1, 2]


def test_only_oakley5_allowed_by_default() -> None:
    assert dh.DEFAULT_GROUPS == {0} and dh.WEAK_GROUPS == {1, 2}
    assert dh.check_allowed(0) is dh.get_group(0)
    for group_id, bits in ((1, 768), (2, 1024)):
        with pytest.raises(UnsupportedDHGroupError) as info:
            dh.check_allowed(group_id)
        assert info.value.err_no == 6
        assert info.value.message == (
            f"DH group {group_id} (OAKLEY {group_id}, {bits}-bit) is too weak to be allowed by default; "
            f"allow it explicitly with allowed_groups=[0, {group_id}] (CLI: --allow-dh-group {group_id})"
        )
        assert dh.check_allowed(group_id, {0, group_id}).bits == bits
    with pytest.raises(UnsupportedDHGroupError, match="DH group 0 \\(OAKLEY 5\\) is not allowed by local policy"):
        dh.check_allowed(0, {2})
    with pytest.raises(UnsupportedDHGroupError, match="not supported"):
        dh.check_allowed(3, {0, 1, 2})


def test_allowed_groups_validation() -> None:
    assert dh.allowed_groups() == {0}
    assert dh.allowed_groups([2, 0, 2]) == {0, 2}
    with pytest.raises(ValueError, match="at least one"):
        dh.allowed_groups([])
    with pytest.raises(ValueError, match=r"unknown DH group\(s\) \[3\]"):
        dh.allowed_groups([0, 3])


@pytest.mark.parametrize("group_id", [0, 1, 2])
def test_exchange_round_trip(group_id: int) -> None:
    group = dh.get_group(group_id)
    xi, xr = dh.generate_private(group), dh.generate_private(group)
    assert xi != xr
    dhi, dhr = dh.public_value(group, xi), dh.public_value(group, xr)
    assert len(dhi) == len(dhr) == group.byte_length
    tgk_i = dh.shared_secret(group, xi, dhr)
    tgk_r = dh.shared_secret(group, xr, dhi)
    assert tgk_i == tgk_r
    assert len(tgk_i) == group.byte_length
    assert int.from_bytes(tgk_i, "big") == pow(2, xi * xr, group.p)


@pytest.mark.parametrize("group_id", [0, 1, 2])
def test_cross_check_against_cryptography(group_id: int) -> None:
    group = dh.get_group(group_id)
    params = crypto_dh.DHParameterNumbers(group.p, group.g)
    theirs = params.parameters().generate_private_key()
    their_y = theirs.public_key().public_numbers().y
    x = dh.generate_private(group)
    ours_pub = dh.public_value(group, x)
    # Their exchange with our public value equals our shared secret with theirs.
    peer = crypto_dh.DHPublicNumbers(int.from_bytes(ours_pub, "big"), params).public_key()
    expected = theirs.exchange(peer)
    ours = dh.shared_secret(group, x, their_y.to_bytes(group.byte_length, "big"))
    assert ours == expected.rjust(group.byte_length, b"\0")
    # And our public value is what cryptography computes for the same exponent.
    same = crypto_dh.DHPrivateNumbers(x, crypto_dh.DHPublicNumbers(int.from_bytes(ours_pub, "big"), params))
    assert same.private_key().public_key().public_numbers().y == int.from_bytes(ours_pub, "big")


def test_generate_private_range_and_rng() -> None:
    group = dh.get_group(0)
    x = dh.generate_private(group)
    assert 2 <= x < 2**group.exponent_bits
    assert group.exponent_bits >= 256
    # Deterministic rng: the all-zero draw is rejected, the next one used.
    draws = iter([bytes(32), b"\x01" * 32])
    assert dh.generate_private(group, rng=lambda n: next(draws)) == int.from_bytes(b"\x01" * 32, "big")


def test_known_small_exponent_value() -> None:
    group = dh.get_group(1)
    assert dh.public_value(group, 2) == (4).to_bytes(96, "big")  # full-length, leading zeros kept
    assert dh.shared_secret(group, 3, (4).to_bytes(96, "big")) == (64).to_bytes(96, "big")


@pytest.mark.parametrize("which", ["0", "1", "p-1", "p", "p+1", "all-ones"])
def test_peer_value_range_rejected(which: str) -> None:
    group = dh.get_group(2)
    values = {
        "0": 0,
        "1": 1,
        "p-1": group.p - 1,
        "p": group.p,
        "p+1": group.p + 1,
        "all-ones": 2 ** (8 * group.byte_length) - 1,
    }
    raw = values[which].to_bytes(group.byte_length, "big")
    with pytest.raises(CryptoError):
        dh.shared_secret(group, dh.generate_private(group), raw)


def test_peer_value_length_rejected() -> None:
    group = dh.get_group(0)
    x = dh.generate_private(group)
    good = dh.public_value(group, dh.generate_private(group))
    for raw in (good[1:], b"\0" + good, b""):
        with pytest.raises(CryptoError):
            dh.shared_secret(group, x, raw)
    # The same value in another group's length is rejected too.
    with pytest.raises(CryptoError):
        dh.shared_secret(dh.get_group(2), dh.generate_private(dh.get_group(2)), good)


def test_private_range_checked() -> None:
    group = dh.get_group(0)
    for x in (0, 1, group.p - 1):
        with pytest.raises(CryptoError):
            dh.public_value(group, x)


def test_errors_never_show_private_exponent() -> None:
    group = dh.get_group(0)
    x = dh.generate_private(group)
    with pytest.raises(MikeyError) as info:
        dh.shared_secret(group, x, b"\x00" * 192)
    assert str(x) not in str(info.value) and hex(x)[2:] not in str(info.value)
    assert "p=" not in repr(group)  # the prime is long; the repr stays readable


def test_modexp_matches_pow() -> None:
    p = dh.get_group(0).p
    for base, exp in [(2, 12345), (3, p - 2), (p - 2, 2**255 + 7)]:
        assert dh.modexp(base, exp, p) == pow(base, exp, p)


def test_lengths_agree_with_wire_registry() -> None:
    from mikey.constants import DH_VALUE_LENGTHS, DHGroup

    for group_id, length in DH_VALUE_LENGTHS.items():
        assert dh.get_group(group_id).byte_length == length
    assert {g.group_id for g in dh.supported_groups()} == set(DHGroup)
