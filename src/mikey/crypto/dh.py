"""Finite-field Diffie-Hellman over the OAKLEY MODP groups (RFC 3830 §3.3, §4.2.7, §6.4).

The DH payload names its group with an 8-bit DH-Group number (RFC 3830 Table 6.4):

====  ===========================================  ==========
 id   group                                         bits
====  ===========================================  ==========
 0    OAKLEY 5 (RFC 3526 §2, "1536-bit MODP")       1536
 1    OAKLEY 1 (RFC 2409 §6.1, first Oakley group)   768
 2    OAKLEY 2 (RFC 2409 §6.2, second Oakley group) 1024
====  ===========================================  ==========

All three are safe primes p = 2q + 1 with generator g = 2, built as
``p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) * pi) + offset)``.

Only OAKLEY 5 is allowed by default (:data:`DEFAULT_GROUPS`): it is the one RFC 3830 §4.2.7
makes mandatory, so every conforming peer has it, while OAKLEY 1 and 2 are OPTIONAL there and
too weak today (:data:`WEAK_GROUPS`): RFC 8247 §2.4 says 768-bit MODP MUST NOT and 1024-bit
MODP SHOULD NOT be used, and one-off precomputation against these fixed, widely shared primes
puts 1024 bits in reach (the "Logjam" attack).  An application that must talk to an old peer
names the weak group it accepts (``allowed_groups``; CLI ``--allow-dh-group N``);
:func:`check_allowed` refuses any other with Error no 6 and names that switch.

The TGK of the DH and DH-HMAC modes is ``g^(xi*xr) mod p`` written as a
full-length (``byte_length`` octets) big-endian string (RFC 3830 §3.3, §4.1.3).

Private exponents are drawn uniformly from ``[2, 2^exponent_bits)``; every
group uses a 256-bit exponent, which is at least twice the strength of each
group (RFC 3526 §8 estimates 90-120 bits for the 1536-bit group; the 768- and
1024-bit groups are weaker still), so the short exponent never dominates.  The
private exponent is a plain ``int``: callers that keep it in a dataclass must
mark the field ``repr=False``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from mikey import constants
from mikey.errors import CryptoError, UnsupportedDHGroupError

try:  # gmpy2's powmod is several times faster than Python's pow for 1536-bit moduli.
    import gmpy2 as _gmpy2
except ImportError:  # pragma: no cover - gmpy2 is a declared dependency
    _gmpy2 = None

__all__ = [
    "DH_GROUP_OAKLEY5",
    "DH_GROUP_OAKLEY1",
    "DH_GROUP_OAKLEY2",
    "DHGroup",
    "DEFAULT_GROUPS",
    "WEAK_GROUPS",
    "get_group",
    "supported_groups",
    "allowed_groups",
    "check_allowed",
    "generate_private",
    "public_value",
    "shared_secret",
    "modexp",
]

#: RFC 3830 Table 6.4 DH-Group values.
DH_GROUP_OAKLEY5 = constants.DHGroup.OAKLEY_5
DH_GROUP_OAKLEY1 = constants.DHGroup.OAKLEY_1
DH_GROUP_OAKLEY2 = constants.DHGroup.OAKLEY_2

#: Bits of private exponent used for every group (see the module docstring).
DEFAULT_EXPONENT_BITS = 256


def _hex(text: str) -> int:
    return int("".join(text.split()), 16)


# RFC 2409 §6.1 -- First Oakley Default Group (768 bits).  offset 149686.
_OAKLEY1_P = _hex(
    """
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1
    29024E08 8A67CC74 020BBEA6 3B139B22 514A0879 8E3404DD
    EF9519B3 CD3A431B 302B0A6D F25F1437 4FE1356D 6D51C245
    E485B576 625E7EC6 F44C42E9 A63A3620 FFFFFFFF FFFFFFFF
    """
)

# RFC 2409 §6.2 -- Second Oakley Group (1024 bits).  offset 129093.
_OAKLEY2_P = _hex(
    """
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1
    29024E08 8A67CC74 020BBEA6 3B139B22 514A0879 8E3404DD
    EF9519B3 CD3A431B 302B0A6D F25F1437 4FE1356D 6D51C245
    E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE65381
    FFFFFFFF FFFFFFFF
    """
)

# RFC 3526 §2 -- 1536-bit MODP Group ("OAKLEY 5").  offset 741804.
_OAKLEY5_P = _hex(
    """
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1
    29024E08 8A67CC74 020BBEA6 3B139B22 514A0879 8E3404DD
    EF9519B3 CD3A431B 302B0A6D F25F1437 4FE1356D 6D51C245
    E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D
    C2007CB8 A163BF05 98DA4836 1C55D39A 69163FA8 FD24CF5F
    83655D23 DCA3AD96 1C62F356 208552BB 9ED52907 7096966D
    670C354E 4ABC9804 F1746C08 CA237327 FFFFFFFF FFFFFFFF
    """
)


@dataclass(frozen=True)
class DHGroup:
    """One DH group of RFC 3830 Table 6.4: prime ``p``, generator ``g``, DH-value length."""

    group_id: int
    p: int = field(repr=False)
    g: int
    byte_length: int
    name: str = ""
    exponent_bits: int = DEFAULT_EXPONENT_BITS

    @property
    def bits(self) -> int:
        return self.p.bit_length()


_GROUPS: dict[int, DHGroup] = {
    DH_GROUP_OAKLEY5: DHGroup(DH_GROUP_OAKLEY5, _OAKLEY5_P, 2, 192, "OAKLEY 5"),
    DH_GROUP_OAKLEY1: DHGroup(DH_GROUP_OAKLEY1, _OAKLEY1_P, 2, 96, "OAKLEY 1"),
    DH_GROUP_OAKLEY2: DHGroup(DH_GROUP_OAKLEY2, _OAKLEY2_P, 2, 128, "OAKLEY 2"),
}


def get_group(group_id: int) -> DHGroup:
    """The group for a DH payload's DH-Group value; unknown values raise (Error no 6)."""
    try:
        return _GROUPS[group_id]
    except KeyError:
        raise UnsupportedDHGroupError(f"DH group {group_id} not supported") from None


def supported_groups() -> tuple[DHGroup, ...]:
    """Every supported group, mandatory OAKLEY 5 first."""
    return tuple(_GROUPS.values())


#: Groups allowed unless the caller says otherwise: OAKLEY 5, mandatory in RFC 3830 §4.2.7.
DEFAULT_GROUPS: frozenset[int] = frozenset({int(DH_GROUP_OAKLEY5)})
#: Supported but off by default: 768-bit OAKLEY 1 and 1024-bit OAKLEY 2 (RFC 8247 §2.4).
WEAK_GROUPS: frozenset[int] = frozenset({int(DH_GROUP_OAKLEY1), int(DH_GROUP_OAKLEY2)})


def allowed_groups(groups: Collection[int] = DEFAULT_GROUPS) -> frozenset[int]:
    """A local policy's set of DH-Group values; an empty set or an unknown number raises ValueError."""
    chosen = frozenset(int(g) for g in groups)
    if not chosen:
        raise ValueError("at least one DH group must be allowed")
    unknown = sorted(chosen - _GROUPS.keys())
    if unknown:
        raise ValueError(f"unknown DH group(s) {unknown}; supported: {sorted(_GROUPS)}")
    return chosen


def check_allowed(group_id: int, allowed: Collection[int] = DEFAULT_GROUPS) -> DHGroup:
    """The group for *group_id* if local policy *allowed* it, else Error no 6 (RFC 3830 §4.2.7, §6.12).

    Refusing a weak group names the switch that allows it.
    """
    group = get_group(group_id)
    if group_id not in allowed:
        if group_id in WEAK_GROUPS:
            wanted = sorted({int(g) for g in allowed} | {int(group_id)})
            raise UnsupportedDHGroupError(
                f"DH group {int(group_id)} ({group.name}, {group.bits}-bit) is too weak to be allowed by default; "
                f"allow it explicitly with allowed_groups={wanted} (CLI: --allow-dh-group {int(group_id)})"
            )
        raise UnsupportedDHGroupError(f"DH group {int(group_id)} ({group.name}) is not allowed by local policy")
    return group


def modexp(base: int, exponent: int, modulus: int) -> int:
    """``base^exponent mod modulus`` with gmpy2 when available, else Python's pow."""
    if _gmpy2 is not None:
        return int(_gmpy2.powmod(base, exponent, modulus))
    return pow(base, exponent, modulus)


def generate_private(group: DHGroup, rng: Callable[[int], bytes] | None = None) -> int:
    """A fresh secret exponent x, uniform in ``[2, 2^group.exponent_bits)`` (RFC 3830 §3.3).

    ``rng(n)`` returns n random octets; it defaults to :func:`secrets.token_bytes`.
    """
    draw = secrets.token_bytes if rng is None else rng
    nbytes = (group.exponent_bits + 7) // 8
    excess = nbytes * 8 - group.exponent_bits
    while True:
        x = int.from_bytes(draw(nbytes), "big") >> excess
        if 2 <= x < group.p - 1:
            return x


def _check_private(group: DHGroup, x: int) -> None:
    if not 1 < x < group.p - 1:
        raise CryptoError("DH private exponent out of range")


def public_value(group: DHGroup, x: int) -> bytes:
    """The DH-value ``g^x mod p`` as ``byte_length`` big-endian octets (RFC 3830 §6.4)."""
    _check_private(group, x)
    return modexp(group.g, x, group.p).to_bytes(group.byte_length, "big")


def shared_secret(group: DHGroup, x: int, peer_public: bytes) -> bytes:
    """The TGK ``g^(xi*xr) mod p`` as ``byte_length`` big-endian octets (RFC 3830 §3.3).

    The peer's value must be exactly ``byte_length`` octets and lie in
    ``(1, p-1)``; 0, 1 and p-1 would force a predictable TGK.
    """
    _check_private(group, x)
    if len(peer_public) != group.byte_length:
        raise CryptoError(
            f"DH-value for group {group.group_id} must be {group.byte_length} octets, got {len(peer_public)}"
        )
    y = int.from_bytes(peer_public, "big")
    if not 1 < y < group.p - 1:
        raise CryptoError("peer DH-value out of range (must satisfy 1 < y < p-1)")
    z = modexp(y, x, group.p)
    if z <= 1 or z == group.p - 1:  # pragma: no cover - impossible for a safe prime and valid y, x
        raise CryptoError("degenerate DH shared secret")
    return z.to_bytes(group.byte_length, "big")
