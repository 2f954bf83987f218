"""Boneh-Franklin identity-based encryption as RFC 5091 §5 (BFsetup, BFextractPriv, BFencrypt, BFdecrypt).

The IBE of MIKEY-IBAKE (RFC 6267 §4.2): a KMS holds the master secret s and
issues S_id = [s]Q_id to each identity; anyone encrypts to an identity with the
public parameters (p, q, P, P_pub = [s]P, hashfcn) alone.  The maths (type-1
curve y^2 = x^3 + 1, p = 11 mod 12, and the modified Tate pairing) is in
:mod:`mikey.crypto._type1`; this module has the RFC 5091 §4 supporting
algorithms, the §5 algorithms, the KMS-side operations RFC 6267 needs, and the
byte encodings (mikey's profile; RFC 6267 fixes none of them).

Typed API: :func:`bf_setup` -> (:class:`BfParams`, :class:`BfMasterSecret`);
:func:`bf_extract` -> :class:`BfPrivateKey`; :func:`bf_encrypt` ->
:class:`BfCiphertext`; :func:`bf_decrypt`.  Time-bounded identities (RFC 6267
§4.2.1, §7: K_PUB = H1(ID || date)) come from :func:`period_identity`.

Encodings (mikey's profile):

* Points: SEC 1 §2.3.3, uncompressed ``0x04 || x || y`` (default) or compressed
  ``0x02/0x03 || x``, each coordinate ceil(lg(p)/8) octets; :class:`PointFormat`
  chooses; decoders accept both unless told which one.
* Public parameters: ``version(1) = 2 || hash(1) || len(p)(2) || p || len(q)(1) || q
  || P || P_pub`` with hash 1 = SHA-1, 2 = SHA-224, 3 = SHA-256, 4 = SHA-384,
  5 = SHA-512 (RFC 5091 §5.1.2 step 2 hash functions).
* Master secret: s, big-endian, as many octets as q.
* Private key S_id (the K_PR of RFC 6267 §6.1.3): one point encoding.
* Ciphertext: ``U || V || W`` (RFC 5091 §5.4.1 step 13): U a point encoding
  (its first octet gives its length), V hashlen octets, W the rest (|W| = |m|).

Where RFC 5091 is wrong or unclear (found by computation; tests/test_crypto_ibe.py):

* §4.5.2: zeta = (p-1)/2 + 3^((p+1)/4)*i is not a cube root of unity; the §7.3
  pairing value reproduces only with zeta = (p-1)/2 - (3^((p+1)/4)/2)*i, i.e.
  (-1 - sqrt(-3))/2 with sqrt(-3) = i*3^((p+1)/4).  That is what we use.
* §2.1: the product a*b = (a_1*b_1 - a_0*b_0, ...) has the real part's sign
  flipped; it is a_0*b_0 - a_1*b_1 (the §7.3 value needs the right one).
* §3.5.2 (TateMillerSolinas) step 4(c): "if c = -1, v_den = v_den *
  EvalVertical1(B, A)" is wrong.  With c = -1, [q+1]A = A and f_q = f_(q+1)
  (f_(-1) = 1/v_A cancels the line through A and -A, which is v_A); the §7.3
  value (q = 2^128 - 2^18 - 1) reproduces only without that factor.  With
  c = +1 the missing factor is v_A in the numerator.  Step 3(b) also prints
  V_a's y as s * x_V / z_V^3 (it is y_V / z_V^3).  We do not use the Solinas
  form at all (Miller's loop over the NAF of q, any prime q).
* §7.4-§7.6: id is printed 6f:42:62 but "Bob" is 42:6f:62, which is what
  reproduces Q_id; §7.2 prints SHA-1's OID as 1.3.14.3.2.16 (it is .26);
  §7.5 labels S_id "Q_id".
* §7.6 BFencrypt: the printed U has 256-bit coordinates and is not on the §7.4
  curve; the printed W (which depends only on m, rho and HashBytes) and V are
  not reproduced by the §5.4.1 algorithm with any SHA-1/SHA-2 hash.  Our values
  for those inputs (l, U, V, W) are in the test vector file as computed values,
  cross-checked by decryption with the §7.5 key, by bilinearity and by a
  literal transcription of RFC 5091 §3.5.2 in the tests.
* §4.2.1 says HashBytes' b MUST be <= hashlen yet defines blocks for longer
  output; we allow any length (IBAKE encrypts more than hashlen octets).
* §4.1.1 HashToRange always uses two hash blocks, so for n > 256^(2*hashlen)
  (HashToPoint with the §5.1.2 sizes, e.g. a 1024-bit p and SHA-224) its output
  covers only [0, 256^(2*hashlen)).  We follow the RFC exactly (interop; the
  one other public implementation seen, cryptid-org/cryptid-native, reads both
  §4.1.1 and §4.2.1 the same way).

Side channels: see :mod:`mikey.crypto._type1`; secret scalars and exponents use a
regular (fixed-sequence) recoding, but Python big integers are not constant-time,
so run the KMS and key holders where their timing cannot be measured by an
attacker.  Decryption failures all raise the same error; the final U check uses
:func:`hmac.compare_digest`.  Secrets never appear in ``repr``.
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import gmpy2

from mikey._lru import BoundedLRU
from mikey.errors import AuthenticationError, CryptoError, IbeFormatError, KeyMaterialError

from ._curves import int_to_bytes, mpz
from ._type1 import FixedBaseOdd, FixedBaseUnitary, Fp2, MillerLines, Type1Curve, canonical

__all__ = [
    "RandBelow",
    "PointFormat",
    "KeyPeriod",
    "SECURITY_LEVELS",
    "HASH_CODES",
    "BfParams",
    "BfMasterSecret",
    "BfPrivateKey",
    "BfCiphertext",
    "hash_to_range",
    "hash_bytes",
    "hash_to_point",
    "canonical",
    "pairing",
    "bf_setup",
    "bf_params_from_master",
    "bf_derive_public",
    "bf_extract",
    "bf_extract_for_period",
    "bf_public_key",
    "bf_encrypt",
    "bf_decrypt",
    "period_identity",
    "MAX_MESSAGE_LENGTH",
]

RandBelow = Callable[[int], int]

#: RFC 5091 §5.1.2 step 2: security parameter n -> (bits of p, bits of q, hash function).
SECURITY_LEVELS: dict[int, tuple[int, int, str]] = {
    1024: (512, 160, "sha1"),
    2048: (1024, 224, "sha224"),
    3072: (1536, 256, "sha256"),
    7680: (3840, 384, "sha384"),
    15360: (7680, 512, "sha512"),
}

#: mikey's one-octet code for the hash function in encoded public parameters.
HASH_CODES: dict[str, int] = {"sha1": 1, "sha224": 2, "sha256": 3, "sha384": 4, "sha512": 5}
_HASH_BY_CODE = {v: k for k, v in HASH_CODES.items()}

#: The largest plaintext bf_encrypt takes (an IBAKE "Encr data len" is 16 bits).
MAX_MESSAGE_LENGTH = 65535

_MAX_P_BITS = 7680  # RFC 5091 §2.1: p of 512 to 7680 bits, q of 160 to 512 bits
_MIN_P_BITS = 512
_MAX_Q_BITS = 512
_MIN_Q_BITS = 160
_THETA_CACHE_SIZE = 64
_THETA_TABLE_CACHE_SIZE = 8  # fixed-base tables for e'(P_pub, Q_id), about 0.25 MB each (p of 1024 bits)
_THETA_TABLE_AFTER = 2  # built on the third encryption to an identity
_TABLE_WINDOW = 5  # per-identity theta tables: 46 rows of 16 for q of 224 bits
_P_TABLE_WINDOW = 7  # the one table for P: 34 rows of 64 points (about 0.8 MB for p of 1024 bits)


class PointFormat(enum.Enum):
    """How points are written (SEC 1 §2.3.3)."""

    UNCOMPRESSED = "uncompressed"
    COMPRESSED = "compressed"


class KeyPeriod(enum.Enum):
    """Granularity of the date in K_PUB = H1(ID || date) (RFC 6267 §4.2.1: "a matter of security policy").

    The value shows the ASCII date string appended to the identity (UTC).
    """

    YEAR = "YYYY"
    MONTH = "YYYY-MM"
    DAY = "YYYY-MM-DD"
    HOUR = "YYYY-MM-DDTHH"


def period_identity(
    identity: bytes, when: _dt.datetime | _dt.date, period: KeyPeriod = KeyPeriod.MONTH
) -> bytes:
    """The IBE identity ``ID || date`` of RFC 6267 §4.2.1 for the key period containing ``when``.

    The date is ASCII in UTC (``2024-05`` for :attr:`KeyPeriod.MONTH`); aware
    datetimes are converted to UTC, naive ones are taken as UTC.  For one
    granularity the date has a fixed length, so ID || date is unambiguous.
    """
    if isinstance(when, _dt.datetime) and when.tzinfo is not None:
        when = when.astimezone(_dt.UTC)
    if period is KeyPeriod.HOUR and not isinstance(when, _dt.datetime):
        raise CryptoError("an hourly key period needs a datetime")
    date = f"{when.year:04d}"
    if period is not KeyPeriod.YEAR:
        date += f"-{when.month:02d}"
    if period in (KeyPeriod.DAY, KeyPeriod.HOUR):
        date += f"-{when.day:02d}"
    if isinstance(when, _dt.datetime) and period is KeyPeriod.HOUR:
        date += f"T{when.hour:02d}"
    return bytes(identity) + date.encode("ascii")


# ---------------------------------------------------------------------------
# Supporting algorithms (RFC 5091 §4)
# ---------------------------------------------------------------------------


def _hash(name: str, data: bytes) -> bytes:
    return hashlib.new(name, data).digest()


def hash_to_range(s: bytes, n: int, hash_name: str) -> int:
    """HashToRange(s, n, hashfcn) of RFC 5091 §4.1.1: v = (h_1 || h_2) mod n, h_i = H(h_(i-1) || s)."""
    hashlen = hashlib.new(hash_name).digest_size
    h = bytes(hashlen)
    v = 0
    for _ in range(2):
        h = _hash(hash_name, h + s)
        v = (v << (8 * hashlen)) + int.from_bytes(h, "big")
    return v % int(n)


def hash_bytes(b: int, p: bytes, hash_name: str) -> bytes:
    """HashBytes(b, p, hashfcn) of RFC 5091 §4.2.1: r_i = H(h_i || H(p)), h_i = H(h_(i-1)), truncated to b."""
    k = _hash(hash_name, p)
    h = bytes(len(k))
    out = []
    for _ in range(-(-b // len(k))):
        h = _hash(hash_name, h)
        out.append(_hash(hash_name, h + k))
    return b"".join(out)[:b]


def hash_to_point(curve: Type1Curve, identity: bytes, hash_name: str) -> tuple[int, int]:
    """HashToPoint1(p, q, id, hashfcn) of RFC 5091 §4.4.2: [(p+1)/q](x, y), y = HashToRange(id, p)."""
    y = hash_to_range(identity, curve.p, hash_name)
    point = curve.multiply(curve.cofactor, curve.point_from_y(y))
    if point is None:  # only if y^2 = 1 or (x, y) has order dividing (p+1)/q: negligible
        raise CryptoError("identity hashes to the point at infinity (RFC 5091 §4.4.2)")
    return point


def pairing(params: BfParams, a: tuple[int, int], b: tuple[int, int]) -> Fp2:
    """Pairing(E, p, q, A, B) = e'(A, B) of RFC 5091 §4.5.2, as (a, b) meaning a + b*i."""
    try:
        return params.curve.pairing(a, b)
    except ValueError:
        raise CryptoError("pairing of points not of order q") from None


def _xor(a: bytes, b: bytes) -> bytes:
    """a XOR b for octet strings of one length (ValueError otherwise)."""
    if len(a) != len(b):
        raise ValueError("XOR of octet strings of different lengths")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


# ---------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------


class _Theta:
    """A cached e'(P_pub, Q_id) and how many encryptions to that identity have used it."""

    __slots__ = ("value", "uses")

    def __init__(self, value: Fp2) -> None:
        self.value = value
        self.uses = 0


class BfParams:
    """BF public parameters (version 2, E: y^2 = x^3 + 1, p, q, P, P_pub, hashfcn) of RFC 5091 §5.1.2.

    The constructor validates: p and q prime, p = 11 mod 12, q | p + 1, P and
    P_pub points of order q, and (unless ``check_sizes=False``, for the RFC's
    small §7 test sets) the sizes of RFC 5091 §2.1.  Lines of Miller's loop for
    P_pub, a fixed-base table for P and a small LRU of e'(P_pub, Q_id) per
    identity are built on first use.
    """

    version = 2

    def __init__(
        self,
        p: int,
        q: int,
        point_p: tuple[int, int],
        point_p_pub: tuple[int, int],
        hash_name: str,
        *,
        check_sizes: bool = True,
    ) -> None:
        if hash_name not in HASH_CODES:
            raise IbeFormatError(f"unsupported BF hash function {hash_name!r}")
        p, q = int(p), int(q)
        if check_sizes and not (
            _MIN_P_BITS <= p.bit_length() <= _MAX_P_BITS and _MIN_Q_BITS <= q.bit_length() <= _MAX_Q_BITS
        ):
            raise IbeFormatError("BF p or q outside the sizes of RFC 5091 §2.1")
        if not (gmpy2.is_prime(q) and gmpy2.is_prime(p)):
            raise IbeFormatError("BF p and q must be prime")
        try:
            self.curve = Type1Curve(p, q)
        except ValueError as exc:
            raise IbeFormatError(f"BF parameters: {exc}") from None
        pp = (mpz(point_p[0]), mpz(point_p[1]))
        ppub = (mpz(point_p_pub[0]), mpz(point_p_pub[1]))
        if not (self.curve.in_subgroup(pp) and self.curve.in_subgroup(ppub)):
            raise IbeFormatError("BF P and P_pub must be points of order q on y^2 = x^3 + 1")
        self.p = self.curve.p
        self.q = self.curve.q
        self.point_p = pp
        self.point_p_pub = ppub
        self.hash_name = hash_name
        self.hashlen = hashlib.new(hash_name).digest_size
        self._p_table: FixedBaseOdd | None = None
        self._p_pub_lines: MillerLines | None = None
        self._p_lines: MillerLines | None = None
        self._theta: BoundedLRU[bytes, _Theta] = BoundedLRU(_THETA_CACHE_SIZE)
        self._theta_tables: BoundedLRU[bytes, FixedBaseUnitary] = BoundedLRU(_THETA_TABLE_CACHE_SIZE)

    def __repr__(self) -> str:
        return f"BfParams(p={int(self.p).bit_length()} bits, q={int(self.q).bit_length()} bits, {self.hash_name})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BfParams):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[int, int, int, int, int, int, str]:
        return (
            int(self.p),
            int(self.q),
            int(self.point_p[0]),
            int(self.point_p[1]),
            int(self.point_p_pub[0]),
            int(self.point_p_pub[1]),
            self.hash_name,
        )

    # -- precomputation -------------------------------------------------------

    @property
    def p_table(self) -> FixedBaseOdd:
        if self._p_table is None:
            self._p_table = FixedBaseOdd(self.curve, self.point_p, _P_TABLE_WINDOW)
        return self._p_table

    @property
    def p_pub_lines(self) -> MillerLines:
        if self._p_pub_lines is None:
            self._p_pub_lines = MillerLines(self.curve, self.point_p_pub)
        return self._p_pub_lines

    @property
    def p_lines(self) -> MillerLines:
        if self._p_lines is None:
            self._p_lines = MillerLines(self.curve, self.point_p)
        return self._p_lines

    def warm_up(self) -> None:
        """Build the per-parameter tables now instead of on first use."""
        _ = self.p_table, self.p_pub_lines

    def clear_caches(self) -> None:
        """Forget the per-identity pairing values and their tables (the tables for P and P_pub stay)."""
        self._theta.clear()
        self._theta_tables.clear()

    def theta(self, identity: bytes) -> Fp2:
        """e'(P_pub, Q_id) (RFC 5091 §5.4.1 steps 2 and 7), cached per identity (a small LRU).

        Q_id = [c]Q' with c = (p+1)/q (§4.4.2), and the reduced Tate pairing is
        bilinear in its second argument over all of E(F_p), so this computes
        e'(P_pub, Q')^c: one exponentiation by c * (c mod q) (with the final
        exponentiation's c) in F_p^2 instead of the scalar multiplication by c on
        the curve (the tests check both ways agree).
        """
        return self._theta_entry(bytes(identity)).value

    def theta_power(self, identity: bytes, exponent: int) -> Fp2:
        """e'(P_pub, Q_id)^exponent for a secret exponent (RFC 5091 §5.4.1 step 7: theta' = theta^l).

        From the third call for an identity on, a fixed-base table for its theta
        (kept in a small LRU, like SAKKE's per-recipient tables) turns the
        exponentiation into about 45 products; an identity whose table was
        evicted is not given a new one (no thrashing).
        """
        identity = bytes(identity)
        entry = self._theta_entry(identity)
        table = self._theta_tables.get(identity)
        if table is None:
            entry.uses += 1
            if entry.uses != _THETA_TABLE_AFTER + 1:
                return self.curve.unitary_power(entry.value, exponent, secret=True)
            table = self._theta_tables.put(identity, FixedBaseUnitary(self.curve, entry.value, _TABLE_WINDOW))
        return table.power(exponent)

    def _theta_entry(self, identity: bytes) -> _Theta:
        return self._theta.get_or_create(identity, lambda: _Theta(self._compute_theta(identity)))

    def _compute_theta(self, identity: bytes) -> Fp2:
        curve = self.curve
        q_prime = curve.point_from_y(hash_to_range(identity, curve.p, self.hash_name))
        try:
            theta = curve.final_exponentiation(self.p_pub_lines.miller_value(q_prime), curve.cofactor % curve.q)
        except ValueError:  # Q' on a line of the loop (x = 0): take the long way
            theta = (mpz(1), mpz(0))
        if theta == (1, 0):  # Q_id = 0 (hash_to_point raises) or the degenerate case above
            theta = self.p_pub_lines.pairing(hash_to_point(curve, identity, self.hash_name))
        return theta

    # -- encoding -------------------------------------------------------------

    def encode(self, point_format: PointFormat = PointFormat.UNCOMPRESSED) -> bytes:
        """``2 || hash || len(p) || p || len(q) || q || P || P_pub`` (module docstring)."""
        compressed = point_format is PointFormat.COMPRESSED
        plen = self.curve.byte_len
        qlen = (int(self.q).bit_length() + 7) // 8
        return b"".join(
            (
                bytes([self.version, HASH_CODES[self.hash_name]]),
                plen.to_bytes(2, "big"),
                int_to_bytes(self.p, plen),
                bytes([qlen]),
                int_to_bytes(self.q, qlen),
                self.curve.encode_point(self.point_p, compressed),
                self.curve.encode_point(self.point_p_pub, compressed),
            )
        )

    @classmethod
    def decode(cls, data: bytes, *, check_sizes: bool = True) -> BfParams:
        """Parse and validate :meth:`encode` output; raises :class:`~mikey.errors.IbeFormatError`."""
        data = bytes(data)
        try:
            if len(data) < 5 or data[0] != cls.version or data[1] not in _HASH_BY_CODE:
                raise ValueError("unknown version or hash function")
            plen = int.from_bytes(data[2:4], "big")
            if not 1 <= plen <= _MAX_P_BITS // 8:
                raise ValueError("p length out of range")
            p = int.from_bytes(data[4 : 4 + plen], "big")
            off = 4 + plen
            if len(data) < off + 1:
                raise ValueError("truncated")
            qlen = data[off]
            q = int.from_bytes(data[off + 1 : off + 1 + qlen], "big")
            off += 1 + qlen
            if not 1 <= qlen <= _MAX_Q_BITS // 8 or len(data) < off + 1:
                raise ValueError("q length out of range or truncated")
            if p % 12 != 11 or q < 3 or (p + 1) % q:
                raise ValueError("not a type-1 curve")
            curve = Type1Curve(p, q)
            if curve.byte_len != plen:
                raise ValueError("p is not minimally encoded")
            n1 = curve.point_length(data[off])
            point_p = curve.decode_point(data[off : off + n1])
            off += n1
            if len(data) < off + 1:
                raise ValueError("truncated")
            n2 = curve.point_length(data[off])
            if len(data) != off + n2:
                raise ValueError("wrong length")
            point_p_pub = curve.decode_point(data[off:])
        except ValueError as exc:
            raise IbeFormatError(f"malformed BF public parameters: {exc}") from None
        return cls(p, q, point_p, point_p_pub, _HASH_BY_CODE[data[1]], check_sizes=check_sizes)

    # -- helpers --------------------------------------------------------------

    def encode_point(self, point: tuple[int, int], point_format: PointFormat) -> bytes:
        return self.curve.encode_point(point, point_format is PointFormat.COMPRESSED)

    def decode_point(self, data: bytes, point_format: PointFormat | None, what: str) -> tuple[int, int]:
        """A point of order q from its encoding; raises :class:`~mikey.errors.IbeFormatError`."""
        allowed = {None: (2, 3, 4), PointFormat.UNCOMPRESSED: (4,), PointFormat.COMPRESSED: (2, 3)}[
            point_format
        ]
        if not data or data[0] not in allowed:
            raise IbeFormatError(f"{what}: not a point in the expected format")
        try:
            point = self.curve.decode_point(data)
        except ValueError as exc:
            raise IbeFormatError(f"{what}: {exc}") from None
        if not self.curve.in_subgroup(point):
            raise IbeFormatError(f"{what}: not a point of order q")
        return point


class BfMasterSecret:
    """The KMS master secret s (RFC 5091 §5.1.2 step 5) with its public parameters; s is never shown."""

    __slots__ = ("params", "_s")

    def __init__(self, params: BfParams, s: int) -> None:
        if not 2 <= int(s) < int(params.q):
            raise KeyMaterialError("BF master secret must be in [2, q-1] (RFC 5091 §5.1.2)")
        self.params = params
        self._s = mpz(s)

    def __repr__(self) -> str:
        return f"BfMasterSecret({self.params!r})"

    def encode(self) -> bytes:
        """s as big-endian octets, as many as q takes."""
        return int_to_bytes(self._s, (int(self.params.q).bit_length() + 7) // 8)

    @classmethod
    def decode(cls, data: bytes, params: BfParams) -> BfMasterSecret:
        """Parse :meth:`encode` output and check that it belongs to ``params`` ([s]P = P_pub)."""
        if len(data) != (int(params.q).bit_length() + 7) // 8:
            raise IbeFormatError("BF master secret has the wrong length")
        s = int.from_bytes(data, "big")
        if not 2 <= s < int(params.q):
            raise IbeFormatError("BF master secret out of range")
        master = cls(params, s)
        if params.curve.multiply_secret(s, params.point_p) != params.point_p_pub:
            raise KeyMaterialError("BF master secret does not match P_pub")
        return master


class BfPrivateKey:
    """An identity's private key S_id = [s]Q_id (RFC 5091 §5.3.1), the K_PR of RFC 6267 §6.1.3.

    Not shown in ``repr``; the lines of Miller's loop for S_id are built on the
    first decryption and kept (they are as secret as S_id).
    """

    __slots__ = ("params", "identity", "point", "_lines")

    def __init__(self, params: BfParams, identity: bytes, point: tuple[int, int]) -> None:
        self.params = params
        self.identity = bytes(identity)
        self.point = (mpz(point[0]), mpz(point[1]))
        self._lines: MillerLines | None = None

    def __repr__(self) -> str:
        return f"BfPrivateKey(identity={self.identity!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BfPrivateKey):
            return NotImplemented
        return (
            self.params == other.params
            and self.identity == other.identity
            and hmac.compare_digest(self.encode(), other.encode())
        )

    __hash__ = None  # type: ignore[assignment]

    def encode(self, point_format: PointFormat = PointFormat.UNCOMPRESSED) -> bytes:
        return self.params.encode_point(self.point, point_format)

    @classmethod
    def decode(
        cls,
        data: bytes,
        params: BfParams,
        identity: bytes,
        *,
        point_format: PointFormat | None = None,
        validate: bool = True,
    ) -> BfPrivateKey:
        """Parse a K_PR; with ``validate`` also check e'(S_id, P) = e'(P_pub, Q_id) (KeyMaterialError)."""
        key = cls(params, bytes(identity), params.decode_point(bytes(data), point_format, "BF private key"))
        if validate:
            key.validate()
        return key

    def validate(self) -> None:
        """Raise :class:`~mikey.errors.KeyMaterialError` unless e'(P, S_id) = e'(P_pub, Q_id)."""
        params = self.params
        q_id = hash_to_point(params.curve, self.identity, params.hash_name)
        try:
            ok = params.p_lines.pairing(self.point) == params.p_pub_lines.pairing(q_id)
        except ValueError:
            ok = False
        if not ok:
            raise KeyMaterialError("BF private key does not match the identity and P_pub")

    def _miller_lines(self) -> MillerLines:
        if self._lines is None:
            try:
                self._lines = MillerLines(self.params.curve, self.point)
            except ValueError:
                raise KeyMaterialError("BF private key is not a point of order q") from None
        return self._lines


@dataclass(frozen=True)
class BfCiphertext:
    """The BF ciphertext (U, V, W) of RFC 5091 §5.4.1 step 13."""

    u: tuple[int, int]
    v: bytes
    w: bytes

    def encode(self, params: BfParams, point_format: PointFormat = PointFormat.UNCOMPRESSED) -> bytes:
        """``U || V || W`` (module docstring)."""
        return params.encode_point(self.u, point_format) + self.v + self.w

    @classmethod
    def decode(
        cls, data: bytes, params: BfParams, *, point_format: PointFormat | None = None
    ) -> BfCiphertext:
        """Parse ``U || V || W``: U on the curve and of order q, V of hashlen octets.

        Raises :class:`~mikey.errors.IbeFormatError`.
        """
        data = bytes(data)
        if not data:
            raise IbeFormatError("empty BF ciphertext")
        try:
            n = params.curve.point_length(data[0])
        except ValueError:
            raise IbeFormatError("BF ciphertext U: unknown point encoding") from None
        if len(data) < n + params.hashlen or len(data) > n + params.hashlen + MAX_MESSAGE_LENGTH:
            raise IbeFormatError("BF ciphertext has the wrong length")
        u = params.decode_point(data[:n], point_format, "BF ciphertext U")
        return cls(u, data[n : n + params.hashlen], data[n + params.hashlen :])


# ---------------------------------------------------------------------------
# RFC 5091 §5
# ---------------------------------------------------------------------------


def _solinas_prime(bits: int, randbelow: RandBelow) -> int:
    """An n_q-bit Solinas prime 2^a + s*2^b + c, s, c in {-1, +1} (RFC 5091 §5.1.2 step 3a)."""
    for _ in range(100000):
        s = 1 if randbelow(2) else -1
        c = 1 if randbelow(2) else -1
        a = bits - 1 if s > 0 else bits
        b = 1 + randbelow(a - 1)
        q = (1 << a) + s * (1 << b) + c
        if q.bit_length() == bits and gmpy2.is_prime(q, 50):
            return q
    raise CryptoError("no Solinas prime found")  # pragma: no cover - there are plenty


def bf_setup(security_bits: int = 2048, rng: RandBelow | None = None) -> tuple[BfParams, BfMasterSecret]:
    """BFsetup1 (RFC 5091 §5.1.2): fresh type-1 curve, P of order q, master secret s and P_pub = [s]P.

    ``security_bits`` is the RFC's n: 1024 (p 512 bits, q 160, SHA-1), 2048 (p 1024,
    q 224, SHA-224), 3072, 7680 or 15360.  ``rng(n)`` returns a uniform integer in
    [0, n) (default :func:`secrets.randbelow`); every random choice is drawn from it.
    """
    if security_bits not in SECURITY_LEVELS:
        raise CryptoError(f"BF security parameter must be one of {sorted(SECURITY_LEVELS)} (RFC 5091 §5.1.2)")
    randbelow = rng or secrets.randbelow
    p_bits, q_bits, hash_name = SECURITY_LEVELS[security_bits]
    for _ in range(1000):
        q = _solinas_prime(q_bits, randbelow)
        low = -(-((1 << (p_bits - 1)) + 1) // (12 * q))
        high = (1 << p_bits) // (12 * q)
        for _ in range(20 * p_bits):
            r = low + randbelow(high - low)
            p = 12 * r * q - 1
            if p.bit_length() == p_bits and gmpy2.is_prime(p, 50):
                break
        else:
            continue
        curve = Type1Curve(p, q)
        point = curve.multiply(12 * r, curve.point_from_y(randbelow(p)))
        if point is None:
            continue
        break
    else:  # pragma: no cover
        raise CryptoError("BF setup failed")
    s = 2 + randbelow(q - 2)
    p_pub = curve.multiply_secret(s, point)
    params = BfParams(p, q, point, p_pub, hash_name)
    return params, BfMasterSecret(params, s)


def bf_params_from_master(
    p: int, q: int, point_p: tuple[int, int], s: int, hash_name: str, *, check_sizes: bool = True
) -> tuple[BfParams, BfMasterSecret]:
    """Public parameters and master secret for a given curve, P and s (P_pub = [s]P; RFC 5091 §5.1.2 step 5)."""
    curve = Type1Curve(p, q)
    p_pub = curve.multiply_secret(s, (mpz(point_p[0]), mpz(point_p[1])))
    params = BfParams(p, q, point_p, p_pub, hash_name, check_sizes=check_sizes)
    return params, BfMasterSecret(params, s)


def bf_derive_public(params: BfParams, identity: bytes) -> tuple[int, int]:
    """BFderivePubl (RFC 5091 §5.2.1): Q_id = HashToPoint(E, p, q, id, hashfcn)."""
    return hash_to_point(params.curve, bytes(identity), params.hash_name)


def bf_extract(master: BfMasterSecret, identity: bytes) -> BfPrivateKey:
    """BFextractPriv (RFC 5091 §5.3.1): S_id = [s]Q_id."""
    params = master.params
    q_id = bf_derive_public(params, identity)
    return BfPrivateKey(params, bytes(identity), params.curve.multiply_secret(master._s, q_id))


def bf_extract_for_period(
    master: BfMasterSecret,
    identity: bytes,
    when: _dt.datetime | _dt.date,
    period: KeyPeriod = KeyPeriod.MONTH,
) -> BfPrivateKey:
    """The K_PR for ``identity`` in the key period containing ``when``: S for ID || date (RFC 6267 §4.2.1)."""
    return bf_extract(master, period_identity(identity, when, period))


def bf_public_key(
    params: BfParams, identity: bytes, point_format: PointFormat = PointFormat.UNCOMPRESSED
) -> bytes:
    """K_PUB = Q_id = H1(identity) (RFC 5091 §5.2.1, RFC 6267 §4.2.1) as a point encoding."""
    return params.encode_point(bf_derive_public(params, identity), point_format)


def bf_encrypt(
    params: BfParams,
    identity: bytes,
    message: bytes,
    rng: RandBelow | None = None,
    *,
    rho: bytes | None = None,
) -> BfCiphertext:
    """BFencrypt (RFC 5091 §5.4.1): (U, V, W) for ``message`` under ``identity``.

    rho (hashlen random octets) is drawn from ``rng`` (default :mod:`secrets`);
    passing ``rho`` is for known-answer tests only.
    """
    message = bytes(message)
    if len(message) > MAX_MESSAGE_LENGTH:
        raise CryptoError(f"BF plaintext longer than {MAX_MESSAGE_LENGTH} octets")
    hashlen = params.hashlen
    if rho is None:
        rho = secrets.token_bytes(hashlen) if rng is None else int_to_bytes(rng(1 << (8 * hashlen)), hashlen)
    elif len(rho) != hashlen:
        raise CryptoError(f"rho must be {hashlen} octets")
    identity = bytes(identity)
    t = _hash(params.hash_name, message)
    l_value = hash_to_range(rho + t, params.q, params.hash_name)
    if l_value == 0:  # probability 1/q; U would be the point at infinity
        raise CryptoError("BF encryption: l = 0, choose another rho")
    u = params.p_table.multiply(l_value)
    if u is None:  # pragma: no cover - l != 0 mod q
        raise CryptoError("BF encryption failed")
    theta_l = params.theta_power(identity, l_value)
    w_mask = _hash(params.hash_name, canonical(params.curve, theta_l, 0))
    v = _xor(w_mask, rho)
    w = _xor(hash_bytes(len(message), rho, params.hash_name), message)
    return BfCiphertext(u, v, w)


def bf_decrypt(params: BfParams, private_key: BfPrivateKey, ciphertext: BfCiphertext) -> bytes:
    """BFdecrypt (RFC 5091 §5.5.1): the plaintext, or :class:`~mikey.errors.AuthenticationError`.

    Any failure (wrong identity or key period, tampered ciphertext, U not of
    order q) raises the same error after the same steps where possible.
    """
    if private_key.params is not params and private_key.params != params:
        raise KeyMaterialError("BF private key belongs to other public parameters")
    if len(ciphertext.v) != params.hashlen or len(ciphertext.w) > MAX_MESSAGE_LENGTH:
        raise AuthenticationError("BF decryption failed")
    try:
        # theta = e'(U, S_id) = e'(S_id, U): the modified pairing is symmetric on the order-q group;
        # a U outside it fails the U = [l]P check below.
        theta = private_key._miller_lines().pairing(ciphertext.u)
    except ValueError:
        raise AuthenticationError("BF decryption failed") from None
    name = params.hash_name
    rho = _xor(_hash(name, canonical(params.curve, theta, 0)), ciphertext.v)
    message = _xor(hash_bytes(len(ciphertext.w), rho, name), ciphertext.w)
    l_value = hash_to_range(rho + _hash(name, message), params.q, name)
    expected = params.p_table.multiply(l_value) if l_value else None
    curve = params.curve
    got = curve.encode_point(ciphertext.u) if curve.is_on_curve(ciphertext.u) else b""
    want = curve.encode_point(expected) if expected is not None else b"\x00"
    if not hmac.compare_digest(got, want):
        raise AuthenticationError("BF decryption failed")
    return message
