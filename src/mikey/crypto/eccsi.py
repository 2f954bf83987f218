"""ECCSI: Elliptic Curve-Based Certificateless Signatures for Identity-Based Encryption (RFC 6507).

NIST P-256 with SHA-256 (N = 32, as RFC 6509 §2.1.1 mandates for MIKEY-SAKKE).
Points are ``0x04 || x || y`` (RFC 6507 §3.2); a signature is
``r || s || PVT`` = 32 + 32 + 65 = 129 octets (§3.3).

Speed.  Point multiplications are done by OpenSSL through ``cryptography``:
``[k]G`` via key derivation; a full ``[k]Q`` via two ECDH exchanges plus a square
root (ECDH gives only x; the sign of y is fixed exactly with ``[k](Q + G)``).
Verification maps ``J = [s]([HE]G + [r]Y)``, ``Jx == r`` onto an ECDSA
verification with public key Y, digest HE and signature (r, s^-1 mod q), which
OpenSSL performs as ``x([HE*s]G + [r*s]Y) mod q == r``.  That differs from
``Jx == r`` only when r < p - q (about 2^128) or r >= q; those (never seen in
practice, probability ~2^-128) go through the exact pure-Python path.
``Y = [HS]PVT + KPAK`` is cached per (KPAK, ID, PVT) in a bounded LRU.

Side channels.  The Python parts are not constant-time (Python integers and
gmpy2 are variable time).  Signing uses OpenSSL for ``[j]G`` but computes
``s = (HE + r*SSK)^-1 * j mod q`` with variable-time big integers, so SSK and j
can leak through timing to an attacker who can measure single signing
operations closely; issuing keys (KSAK) likewise.  Run the KMS and SSK holders
where timing is not observable by an attacker.  The nonce j comes from
:mod:`secrets`; a caller-supplied j is for known-answer tests only.
Verification uses only public data.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from mikey._lru import BoundedLRU
from mikey.errors import AuthenticationError, CryptoError, KeyMaterialError

from ._curves import Affine, Curve, int_to_bytes, invert, mpz

__all__ = [
    "clear_caches",
    "P256",
    "SIGNATURE_LENGTH",
    "KmsEccsiKeys",
    "EccsiSigner",
    "compute_hs",
    "issue_ssk",
    "validate_ssk",
    "sign",
    "verify",
]

RandBelow = Callable[[int], int]

#: NIST P-256 (RFC 6507 §4 parameters p, B, G, q with n = 256, N = 32).
P256 = Curve(
    "P-256",
    p=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
    b=0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
    q=0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    gx=0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    gy=0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)
N = 32
SIGNATURE_LENGTH = 2 * N + 2 * N + 1
_G_BYTES = P256.encode_point((P256.gx, P256.gy))
_P = int(P256.p)
_Q = int(P256.q)
_CURVE = ec.SECP256R1()
_ECDSA = ec.ECDSA(Prehashed(hashes.SHA256()))
_CACHE_SIZE = 256


def _hash(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def _base_mult(k: int) -> tuple[int, int]:
    """[k]G by OpenSSL (k in [1, q-1])."""
    nums = ec.derive_private_key(int(k), _CURVE).public_key().public_numbers()
    return (mpz(nums.x), mpz(nums.y))


def _public_key(point: tuple[int, int]) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicNumbers(int(point[0]), int(point[1]), _CURVE).public_key()


def _point_mult(k: int, point: tuple[int, int]) -> Affine:
    """Exact ``[k]point`` for a point of the prime-order group, by OpenSSL ECDH.

    ECDH yields only x1 = x([k]Q).  A second exchange gives x2 = x([k]Q + K)
    with K = [k]G known; with A = (x1, y), the chord slope l through A and K
    satisfies l^2 = x2 + x1 + Kx and y = Ky + l(x1 - Kx), and substituting y^2 =
    x1^3 - 3x1 + B fixes l (and so y) uniquely, with no square root.
    """
    k = int(k) % _Q
    if k == 0:
        return None
    p = _P
    gx, gy = P256.gx, P256.gy
    q_plus_g = P256.add(point, (gx, gy))
    if q_plus_g is None or point[0] == gx:  # Q = +-G
        return P256.multiply(k, point)
    priv = ec.derive_private_key(k, _CURVE)
    kg = priv.public_key().public_numbers()
    kx, ky = mpz(kg.x), mpz(kg.y)
    x1 = mpz(int.from_bytes(priv.exchange(ec.ECDH(), _public_key(point)), "big"))
    x2 = mpz(int.from_bytes(priv.exchange(ec.ECDH(), _public_key(q_plus_g)), "big"))
    d = (x1 - kx) % p
    fx = ((x1 * x1 - 3) * x1 + P256.b) % p
    lam2 = (x2 + x1 + kx) % p
    # fx = ky^2 + 2*ky*l*d + l^2*d^2  =>  l = (fx - ky^2 - l^2 d^2) / (2 ky d)
    lam = (fx - ky * ky - lam2 * d * d) * invert(2 * ky * d % p, p) % p
    y = (ky + lam * d) % p
    if (y * y - fx) % p != 0:  # cannot happen for a valid input; stay exact anyway
        return P256.multiply(k, point)
    return (x1, y)


def _decode(data: bytes, error: type[Exception], what: str) -> tuple[int, int]:
    try:
        return P256.decode_point(data)
    except ValueError:
        raise error(f"{what} is not a valid P-256 point") from None


def _scalar(value: int | bytes) -> int:
    return int.from_bytes(value, "big") if isinstance(value, bytes | bytearray) else int(value)


def compute_hs(kpak: bytes, identifier: bytes, pvt: bytes) -> bytes:
    """HS = hash(G || KPAK || ID || PVT) (RFC 6507 §5.1.1 step 3)."""
    return _hash(_G_BYTES, kpak, identifier, pvt)


# ---------------------------------------------------------------------------
# KMS (RFC 6507 §2.2, §5.1.1)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KmsEccsiKeys:
    """A KMS ECCSI key pair: KSAK (secret, hidden from repr) and KPAK = [KSAK]G."""

    ksak: int = field(repr=False)
    kpak: bytes

    @classmethod
    def generate(cls, rng: RandBelow | None = None) -> KmsEccsiKeys:
        """A random KSAK in [1, q-1] and its KPAK (RFC 6507 §2.2)."""
        randbelow = rng or secrets.randbelow
        return cls.from_ksak(1 + randbelow(_Q - 1))

    @classmethod
    def from_ksak(cls, ksak: int | bytes) -> KmsEccsiKeys:
        k = _scalar(ksak)
        if not 1 <= k < _Q:
            raise KeyMaterialError("KSAK must be in [1, q-1]")
        return cls(ksak=k, kpak=P256.encode_point(_base_mult(k)))

    def issue_ssk(self, identifier: bytes, v: int | None = None) -> tuple[bytes, bytes]:
        return issue_ssk(self.ksak, self.kpak, identifier, v)


def issue_ssk(ksak: int | bytes, kpak: bytes, identifier: bytes, v: int | None = None) -> tuple[bytes, bytes]:
    """Construct a user's ``(SSK, PVT)`` (RFC 6507 §5.1.1). ``v`` is for known-answer tests."""
    k = _scalar(ksak)
    if not 1 <= k < _Q:
        raise KeyMaterialError("KSAK must be in [1, q-1]")
    while True:
        vv = (1 + secrets.randbelow(_Q - 1)) if v is None else int(v)
        if not 1 <= vv < _Q:
            raise KeyMaterialError("v must be in [1, q-1]")
        pvt = P256.encode_point(_base_mult(vv))
        hs = int.from_bytes(compute_hs(kpak, identifier, pvt), "big")
        ssk = (k + hs * vv) % _Q
        if ssk != 0 and hs % _Q != 0:
            return int_to_bytes(ssk, N), pvt
        if v is not None:
            raise KeyMaterialError("SSK or HS is zero for this v (RFC 6507 §5.1.1 step 5)")


def _ssk_int(ssk: bytes | int) -> int:
    value = _scalar(ssk)
    if isinstance(ssk, bytes | bytearray) and len(ssk) != N:
        raise KeyMaterialError("SSK must be 32 octets")
    if not 1 <= value < _Q:
        raise KeyMaterialError("SSK must be in [1, q-1]")
    return value


def validate_ssk(ssk: bytes | int, pvt: bytes, identifier: bytes, kpak: bytes) -> None:
    """Validate a received ``(SSK, PVT)``: PVT on E and KPAK = [SSK]G - [HS]PVT (RFC 6507 §5.1.2).

    Raises :class:`~mikey.errors.KeyMaterialError`.
    """
    k = _ssk_int(ssk)
    kpak_point = _decode(kpak, KeyMaterialError, "KPAK")
    pvt_point = _decode(pvt, KeyMaterialError, "PVT")
    hs = int.from_bytes(compute_hs(kpak, identifier, pvt), "big")
    if P256.add(_point_mult(hs, pvt_point), kpak_point) != _base_mult(k):
        raise KeyMaterialError("SSK does not validate: [SSK]G != [HS]PVT + KPAK (RFC 6507 §5.1.2)")


# ---------------------------------------------------------------------------
# Signing (RFC 6507 §5.2.1)
# ---------------------------------------------------------------------------


def _sign(message: bytes, ssk: int, pvt: bytes, hs: bytes, j: int | None) -> bytes:
    while True:
        jj = (1 + secrets.randbelow(_Q - 1)) if j is None else int(j)
        if not 1 <= jj < _Q:
            raise CryptoError("j must be in [1, q-1]")
        r = int_to_bytes(_base_mult(jj)[0], N)
        he = int.from_bytes(_hash(hs, r, message), "big")
        t = (he + int.from_bytes(r, "big") * ssk) % _Q
        if t != 0:
            s = invert(t, _Q) * jj % _Q
            if s >= 1 << (8 * N):
                s = _Q - s
            return r + int_to_bytes(s, N) + pvt
        if j is not None:
            raise CryptoError("HE + r*SSK = 0 mod q for this j (RFC 6507 §5.2.1 step 4)")


class EccsiSigner:
    """A Signer's ECCSI key material, with HS precomputed (RFC 6507 §5.1.2 step 2).

    The SSK is validated on construction unless ``validate=False`` and is never
    shown in ``repr``.
    """

    __slots__ = ("_ssk", "pvt", "identifier", "kpak", "hs")

    def __init__(
        self, ssk: bytes | int, pvt: bytes, identifier: bytes, kpak: bytes, *, validate: bool = True
    ) -> None:
        if validate:
            validate_ssk(ssk, pvt, identifier, kpak)
        self._ssk = _ssk_int(ssk)
        self.pvt = bytes(pvt)
        self.identifier = bytes(identifier)
        self.kpak = bytes(kpak)
        self.hs = compute_hs(kpak, identifier, pvt)

    def __repr__(self) -> str:
        return f"EccsiSigner(identifier={self.identifier!r})"

    def sign(self, message: bytes, j: int | None = None) -> bytes:
        """Signature ``r || s || PVT`` over ``message`` (RFC 6507 §5.2.1)."""
        return _sign(message, self._ssk, self.pvt, self.hs, j)


def sign(
    message: bytes,
    ssk: bytes | int,
    pvt: bytes,
    identifier: bytes,
    kpak: bytes,
    j: int | None = None,
) -> bytes:
    """Sign ``message`` (RFC 6507 §5.2.1); ``j`` is for known-answer tests only.

    The own (SSK, PVT) is not re-validated here; validate it once on receipt.
    """
    return _sign(message, _ssk_int(ssk), bytes(pvt), compute_hs(kpak, identifier, pvt), j)


# ---------------------------------------------------------------------------
# Verification (RFC 6507 §5.2.2)
# ---------------------------------------------------------------------------


class _Peer:
    __slots__ = ("hs", "y_point", "y_key")

    def __init__(self, hs: bytes, y_point: tuple[int, int], y_key: ec.EllipticCurvePublicKey) -> None:
        self.hs = hs
        self.y_point = y_point
        self.y_key = y_key


_peers: BoundedLRU[tuple[bytes, bytes, bytes], _Peer] = BoundedLRU(_CACHE_SIZE)


def clear_caches() -> None:
    """Forget the cached Y = [HS]PVT + KPAK of every peer; the next verify per peer runs cold."""
    _peers.clear()


def _peer(identifier: bytes, pvt: bytes, kpak: bytes) -> _Peer:
    key = (kpak, identifier, pvt)
    peer = _peers.get(key)
    if peer is not None:
        return peer
    kpak_point = _decode(kpak, KeyMaterialError, "KPAK")
    pvt_point = _decode(pvt, AuthenticationError, "PVT")  # step 1
    hs = compute_hs(kpak, identifier, pvt)  # step 2
    y_point = P256.add(_point_mult(int.from_bytes(hs, "big"), pvt_point), kpak_point)  # step 4
    if y_point is None:
        raise AuthenticationError("ECCSI signature verification failed")
    return _peers.put(key, _Peer(hs, y_point, _public_key(y_point)))


def verify(message: bytes, signature: bytes, identifier: bytes, kpak: bytes) -> None:
    """Verify ``signature`` = r || s || PVT over ``message`` for ``identifier`` (RFC 6507 §5.2.2).

    Raises :class:`~mikey.errors.AuthenticationError` if it does not verify.
    """
    if len(signature) != SIGNATURE_LENGTH:
        raise AuthenticationError("ECCSI signature has the wrong length")
    r_bytes = signature[:N]
    r = int.from_bytes(r_bytes, "big")
    s = int.from_bytes(signature[N : 2 * N], "big") % _Q
    peer = _peer(bytes(identifier), bytes(signature[2 * N :]), bytes(kpak))
    if s == 0 or r % _P == 0:
        raise AuthenticationError("ECCSI signature verification failed")
    he_bytes = _hash(peer.hs, r_bytes, message)  # step 3
    if _P - _Q <= r < _Q:
        try:
            peer.y_key.verify(encode_dss_signature(r, int(invert(s, _Q))), he_bytes, _ECDSA)
        except InvalidSignature:
            raise AuthenticationError("ECCSI signature verification failed") from None
        return
    _verify_exact(peer.y_point, int.from_bytes(he_bytes, "big"), r, s)


def _verify_exact(y_point: tuple[int, int], he: int, r: int, s: int) -> None:
    """Steps 5-6 of RFC 6507 §5.2.2 exactly: J = [s]([HE]G + [r]Y), Jx == r mod p, Jx != 0."""
    inner = P256.add(_point_mult(he, (P256.gx, P256.gy)), _point_mult(r, y_point))
    j_point = None if inner is None else P256.multiply(s, inner)
    if j_point is None or j_point[0] != r % _P or j_point[0] == 0:
        raise AuthenticationError("ECCSI signature verification failed")
