"""Shared big-number and elliptic-curve maths for ECCSI (RFC 6507) and SAKKE (RFC 6508).

:class:`ShortWeierstrass` holds the point arithmetic common to every short
Weierstrass curve; the two curves used by MIKEY-SAKKE have a = -3 (NIST P-256,
and the supersingular ``y^2 = x^3 - 3x`` of RFC 6508 §2.1) and share
:class:`Curve`, the a = 0 type-1 curves of RFC 5091 (``_type1``) subclass it
with their own doubling.  Integers are ``gmpy2.mpz`` when gmpy2 is
importable and plain ``int`` otherwise; every function here works with either.

Nothing in this module is constant-time: see the side-channel notes in
:mod:`mikey.crypto.sakke` and :mod:`mikey.crypto.eccsi`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import CryptoError

__all__ = [
    "HAVE_GMPY2",
    "Affine",
    "mpz",
    "invert",
    "powmod",
    "to_int",
    "int_to_bytes",
    "batch_invert",
    "ShortWeierstrass",
    "Curve",
    "FixedBaseTable",
    "signed_digits",
    "wnaf",
    "jadd_tail",
]

try:  # pragma: no cover - exercised implicitly
    import gmpy2 as _gmpy2

    mpz: Callable[..., Any] = _gmpy2.mpz
    HAVE_GMPY2 = True

    def invert(a: int, m: int) -> int:
        """Inverse of ``a`` modulo ``m`` (``a`` must be invertible)."""
        return _gmpy2.invert(a, m)  # type: ignore[no-any-return]

    def powmod(a: int, e: int, m: int) -> int:
        return _gmpy2.powmod(a, e, m)  # type: ignore[no-any-return]

except ImportError:  # pragma: no cover - fallback when gmpy2 is absent
    mpz = int
    HAVE_GMPY2 = False

    def invert(a: int, m: int) -> int:
        """Inverse of ``a`` modulo ``m`` (``a`` must be invertible)."""
        return pow(a, -1, m)

    def powmod(a: int, e: int, m: int) -> int:
        return pow(a, e, m)


#: An affine point ``(x, y)``; ``None`` is the point at infinity.
Affine = tuple[int, int] | None


def to_int(value: int) -> int:
    """A plain Python ``int`` from an ``int`` or ``mpz``."""
    return int(value)


def int_to_bytes(value: int, length: int) -> bytes:
    """Big-endian octet string of ``length`` octets (RFC 6090 §6 / RFC 6508 §4)."""
    return int(value).to_bytes(length, "big")


def batch_invert(values: Sequence[int], p: int) -> list[int]:
    """Montgomery's simultaneous inversion: all inverses for one ``invert`` and 3n products."""
    n = len(values)
    if n == 0:
        return []
    prefix = [values[0]] * n
    acc = values[0]
    for i in range(1, n):
        acc = acc * values[i] % p
        prefix[i] = acc
    if not acc % p:  # a zero among the values: a point at infinity reached the batch (small-order base)
        raise CryptoError("batch inversion of zero: a point of small order reached the curve arithmetic")
    inv = invert(acc, p)
    out = [inv] * n
    for i in range(n - 1, 0, -1):
        out[i] = inv * prefix[i - 1] % p
        inv = inv * values[i] % p
    out[0] = inv
    return out


def signed_digits(k: int, w: int, count: int) -> list[int]:
    """Base-2^w digits of ``k`` in ``[-2^(w-1), 2^(w-1)]``, least significant first."""
    k = int(k)
    if w == 8 and k >= 0:  # the common case: one digit per octet
        if k.bit_length() > 8 * count:
            raise ValueError("scalar too large for the digit count")
        out: list[int] = []
        append = out.append
        carry = 0
        for octet in k.to_bytes(count, "little"):
            d = octet + carry
            if d > 128:
                append(d - 256)
                carry = 1
            else:
                append(d)
                carry = 0
        if carry:
            raise ValueError("scalar too large for the digit count")
        return out
    half = 1 << (w - 1)
    full = 1 << w
    mask = full - 1
    out = []
    for _ in range(count):
        d = k & mask
        k >>= w
        if d > half:
            d -= full
            k += 1
        out.append(d)
    if k:
        raise ValueError("scalar too large for the digit count")
    return out


def wnaf(k: int, width: int) -> list[int]:
    """Width-``width`` NAF of k >= 0: digits 0 or odd with |d| < 2^(width-1), least significant first.

    For public scalars only (the digit pattern follows k); width 2 is the plain NAF.
    Secret scalars use a fixed-sequence recoding instead (``_type1.regular_digits``).
    """
    out: list[int] = []
    append = out.append
    mask = (1 << width) - 1
    half = 1 << (width - 1)
    full = 1 << width
    while k:
        if k & 1:
            d = k & mask
            if d > half:  # d is odd, so never equal to half (width >= 2)
                d -= full
            k -= d
        else:
            d = 0
        append(d)
        k >>= 1
    return out


def jadd_tail(X: int, Y: int, Z: int, h: int, r: int, p: int) -> tuple[int, int, int]:
    """End of the Jacobian + affine addition (X, Y, Z) + (x2, y2) once h = x2*Z^2 - X and
    r = y2*Z^3 - Y are known and h != 0 (the Miller loops keep r for their chord lines)."""
    hh = h * h % p
    hhh = h * hh % p
    v = X * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    return x3, (r * (v - x3) - Y * hhh) % p, Z * h % p


class ShortWeierstrass:
    """Point arithmetic shared by the curves y^2 = x^3 + a*x + b over F_p (p > 3 prime, q prime).

    Affine points are ``(x, y)`` tuples (``None`` is infinity); Jacobian ``(X, Y, Z)``
    means (X/Z^2, Y/Z^3), Z = 0 at infinity.  Subclasses give ``a`` and the
    Jacobian doubling (its cheapest form depends on a: RFC 5091 §3.3.1 for a = 0,
    the a = -3 form for RFC 6508 / P-256); addition, normalisation, wNAF
    multiplication by public scalars and batched sums are common.
    """

    __slots__ = ("p", "q", "a")

    p: int
    q: int
    a: int

    def neg(self, point: Affine) -> Affine:
        if point is None:
            return None
        return (point[0], (-point[1]) % self.p)

    def add(self, a: Affine, b: Affine) -> Affine:
        """Affine addition / doubling, one inversion (RFC 5091 §3.1.1 PointAdd1 / PointDouble1 for a = 0)."""
        if a is None:
            return b
        if b is None:
            return a
        p = self.p
        x1, y1 = a
        x2, y2 = b
        if x1 == x2:
            if (y1 + y2) % p == 0:
                return None
            lam = (3 * x1 * x1 + self.a) * invert(2 * y1, p) % p
        else:
            lam = (y2 - y1) * invert(x2 - x1, p) % p
        x3 = (lam * lam - x1 - x2) % p
        return (x3, (lam * (x1 - x3) - y1) % p)

    def _jdouble(self, X: int, Y: int, Z: int) -> tuple[int, int, int]:
        """Jacobian doubling for any a, M = 3X^2 + a*Z^4 (Z = 0 stays at infinity); subclasses
        override it with the cheaper form for their a."""
        p = self.p
        zz = Z * Z % p
        yy = Y * Y % p
        m = (3 * X * X + self.a * zz * zz) % p
        s = 4 * X * yy % p
        x3 = (m * m - 2 * s) % p
        return x3, (m * (s - x3) - 8 * yy * yy) % p, 2 * Y * Z % p

    def _jadd_affine(self, X: int, Y: int, Z: int, x2: int, y2: int) -> tuple[int, int, int]:
        """Jacobian + affine (complete: handles infinity, doubling and P + (-P))."""
        p = self.p
        if Z == 0:
            return mpz(x2), mpz(y2), mpz(1)
        zz = Z * Z % p
        h = (x2 * zz - X) % p
        r = (y2 * zz * Z - Y) % p
        if h == 0:
            if r == 0:
                return self._jdouble(X, Y, Z)
            return mpz(1), mpz(1), mpz(0)
        return jadd_tail(X, Y, Z, h, r, p)

    def _to_affine(self, X: int, Y: int, Z: int) -> Affine:
        p = self.p
        if Z % p == 0:
            return None
        zi = invert(Z, p)
        zi2 = zi * zi % p
        return (X * zi2 % p, Y * zi2 * zi % p)

    def _odd_multiples(self, point: tuple[int, int], count: int) -> list[tuple[int, int]] | None:
        """[1]B, [3]B, ..., [2*count-1]B in affine, or ``None`` if B has small order."""
        two = self.add(point, point)
        if two is None:
            return None
        out = [point]
        for _ in range(count - 1):
            nxt = self.add(out[-1], two)
            if nxt is None:
                return None
            out.append(nxt)
        return out

    def _multiply_plain(self, k: int, point: Affine) -> Affine:
        result: Affine = None
        addend = point
        while k:
            if k & 1:
                result = self.add(result, addend)
            addend = self.add(addend, addend)
            k >>= 1
        return result

    def _multiply_wnaf(self, k: int, point: tuple[int, int]) -> Affine:
        """[k]point for a public k > 0: width-5 NAF over the odd multiples 1..15 in Jacobian
        coordinates (variable time); plain double-and-add for a point of tiny order."""
        odd = self._odd_multiples(point, 8)
        if odd is None:  # a point of order 2 or 3 (never in the prime-order group)
            return self._multiply_plain(k, point)
        p = self.p
        jdouble = self._jdouble
        jadd = self._jadd_affine
        X, Y, Z = mpz(1), mpz(1), mpz(0)
        for d in reversed(wnaf(k, 5)):
            if Z:
                X, Y, Z = jdouble(X, Y, Z)
            if d > 0:
                px, py = odd[d >> 1]
                X, Y, Z = jadd(X, Y, Z, px, py)
            elif d < 0:
                px, py = odd[(-d) >> 1]
                X, Y, Z = jadd(X, Y, Z, px, p - py)
        return self._to_affine(X, Y, Z)

    def sum_points(self, points: list[tuple[int, int]]) -> Affine:
        """Sum of affine points by a balanced tree of affine additions, one batched inversion per level."""
        return self.sum_coordinates([x for x, _ in points], [y for _, y in points])

    def sum_coordinates(self, xs: list[int], ys: list[int]) -> Affine:
        """:meth:`sum_points` for the points ``(xs[i], ys[i])`` (the lists are not modified)."""
        p = self.p
        while len(xs) > 1:
            n = len(xs) >> 1
            x1s = xs[0 : 2 * n : 2]
            x2s = xs[1 : 2 * n : 2]
            y1s = ys[0 : 2 * n : 2]
            y2s = ys[1 : 2 * n : 2]
            dens = [b - a for a, b in zip(x1s, x2s, strict=True)]
            # Montgomery's trick: prefix[i] = dens[0] * ... * dens[i-1]
            prefix = [mpz(1)] * n
            acc = dens[0]
            for i in range(1, n):
                prefix[i] = acc
                acc = acc * dens[i] % p
            if acc % p == 0:  # equal x somewhere: P + P or P - P
                return self._sum_jacobian(list(zip(xs, ys, strict=True)))
            inv = invert(acc, p)
            nx = xs[:n]
            ny = ys[:n]
            for i in range(n - 1, -1, -1):
                x1 = x1s[i]
                y1 = y1s[i]
                lam = (y2s[i] - y1) * (inv * prefix[i] % p) % p
                inv = inv * dens[i] % p
                x3 = (lam * lam - x1 - x2s[i]) % p
                nx[i] = x3
                ny[i] = (lam * (x1 - x3) - y1) % p
            if len(xs) & 1:
                nx.append(xs[-1])
                ny.append(ys[-1])
            xs, ys = nx, ny
        return (xs[0], ys[0]) if xs else None

    def _sum_jacobian(self, points: list[tuple[int, int]]) -> Affine:
        X, Y, Z = mpz(1), mpz(1), mpz(0)
        for x, y in points:
            X, Y, Z = self._jadd_affine(X, Y, Z, x, y)
        return self._to_affine(X, Y, Z)


class Curve(ShortWeierstrass):
    """A short Weierstrass curve ``y^2 = x^3 - 3x + b`` over F_p with a subgroup of prime order ``q``."""

    __slots__ = ("b", "gx", "gy", "byte_len", "name")

    def __init__(self, name: str, p: int, b: int, q: int, gx: int, gy: int) -> None:
        self.name = name
        self.p = mpz(p)
        self.a = mpz(-3)
        self.b = mpz(b)
        self.q = mpz(q)
        self.gx = mpz(gx)
        self.gy = mpz(gy)
        self.byte_len = (int(p).bit_length() + 7) // 8

    def __repr__(self) -> str:
        return f"Curve({self.name})"

    # -- encoding ---------------------------------------------------------

    def is_on_curve(self, x: int, y: int) -> bool:
        p = self.p
        if not (0 <= x < p and 0 <= y < p):
            return False
        return bool((y * y - (x * x * x - 3 * x + self.b)) % p == 0)

    def encode_point(self, point: Affine) -> bytes:
        """Uncompressed ``0x04 || x || y`` (RFC 5480 §2.2, RFC 6507 §3.2, RFC 6508 §4)."""
        if point is None:
            raise ValueError("cannot encode the point at infinity")
        n = self.byte_len
        return b"\x04" + int_to_bytes(point[0], n) + int_to_bytes(point[1], n)

    def decode_point(self, data: bytes) -> tuple[int, int]:
        """Parse ``0x04 || x || y`` and check that the point lies on the curve.

        Raises ``ValueError``; callers turn it into the error their RFC step asks for.
        """
        n = self.byte_len
        if len(data) != 2 * n + 1 or data[0] != 4:
            raise ValueError("not an uncompressed point of the right length")
        x = mpz(int.from_bytes(data[1 : 1 + n], "big"))
        y = mpz(int.from_bytes(data[1 + n :], "big"))
        if not self.is_on_curve(x, y):
            raise ValueError("point is not on the curve")
        return (x, y)

    # -- Jacobian doubling (a = -3) -----------------------------------------

    def _jdouble(self, X: int, Y: int, Z: int) -> tuple[int, int, int]:
        p = self.p
        zz = Z * Z % p
        yy = Y * Y % p
        m = 3 * (X - zz) * (X + zz) % p
        s = 4 * X * yy % p
        x3 = (m * m - 2 * s) % p
        return x3, (m * (s - x3) - 8 * yy * yy) % p, 2 * Y * Z % p

    def multiply(self, k: int, point: Affine) -> Affine:
        """``[k mod q]point`` by a width-5 NAF in Jacobian coordinates (public k, variable time)."""
        if point is None:
            return None
        k = int(k) % int(self.q)
        if k == 0:
            return None
        return self._multiply_wnaf(k, point)


class FixedBaseTable:
    """Fixed-base precomputation: row i holds ``[d * 2^(w*i)]B`` for d = 1 .. 2^(w-1), in affine.

    A scalar multiplication is then one table lookup per signed base-2^w digit
    and a sum of those points (no doublings).
    """

    __slots__ = ("curve", "w", "rows", "count")

    def __init__(self, curve: Curve, base: tuple[int, int], w: int = 8) -> None:
        self.curve = curve
        self.w = w
        bits = int(curve.q).bit_length()
        self.count = bits // w + 1
        rows = self._build_batched(base)
        self.rows = rows if rows is not None else self._build_sequential(base)

    def _build_batched(self, base: tuple[int, int]) -> list[list[tuple[int, int]]] | None:
        """All rows at once: row bases by doubling, then column d = 2 .. 2^(w-1) for every row
        with one batched inversion per column.  ``None`` if a degenerate case turns up."""
        curve = self.curve
        p = curve.p
        w = self.w
        half = 1 << (w - 1)
        X, Y, Z = mpz(base[0]), mpz(base[1]), mpz(1)
        jac = [(X, Y, Z)]
        for _ in range(self.count - 1):
            for _ in range(w):
                X, Y, Z = curve._jdouble(X, Y, Z)
            if Z % p == 0:
                return None
            jac.append((X, Y, Z))
        zinv = batch_invert([z for _, _, z in jac], p)
        bxs: list[int] = []
        bys: list[int] = []
        for (X, Y, _Z), zi in zip(jac, zinv, strict=True):
            zi2 = zi * zi % p
            bxs.append(X * zi2 % p)
            bys.append(Y * zi2 * zi % p)
        columns = [(bxs, bys)]
        if half >= 2:
            if any(y == 0 for y in bys):
                return None
            invs = batch_invert([2 * y for y in bys], p)
            xs: list[int] = []
            ys: list[int] = []
            for x1, y1, inv in zip(bxs, bys, invs, strict=True):
                lam = 3 * (x1 * x1 - 1) * inv % p  # a = -3
                x3 = (lam * lam - 2 * x1) % p
                xs.append(x3)
                ys.append((lam * (x1 - x3) - y1) % p)
            columns.append((xs, ys))
        for _d in range(3, half + 1):
            cxs, cys = columns[-1]
            dens = [bx - cx for bx, cx in zip(bxs, cxs, strict=True)]
            if any(d % p == 0 for d in dens):
                return None
            invs = batch_invert(dens, p)
            xs = []
            ys = []
            for bx, by, cx, cy, inv in zip(bxs, bys, cxs, cys, invs, strict=True):
                lam = (by - cy) * inv % p
                x3 = (lam * lam - cx - bx) % p
                xs.append(x3)
                ys.append((lam * (cx - x3) - cy) % p)
            columns.append((xs, ys))
        return [[(xs[i], ys[i]) for xs, ys in columns] for i in range(self.count)]

    def _build_sequential(self, base: tuple[int, int]) -> list[list[tuple[int, int]]]:
        """Row by row with Jacobian additions (handles every case the batched build rejects)."""
        curve = self.curve
        half = 1 << (self.w - 1)
        rows: list[list[tuple[int, int]]] = []
        row_base: Affine = base
        p = curve.p
        for _ in range(self.count):
            if row_base is None:  # [2^(w*i)]B is the point at infinity: B has small order
                raise CryptoError("fixed-base table: the base point has small order")
            # Jacobian multiples d*B, then one batched normalisation per row
            bx, by = row_base
            jac = [(bx, by, mpz(1))]
            X, Y, Z = bx, by, mpz(1)
            for _d in range(2, half + 1):
                X, Y, Z = curve._jadd_affine(X, Y, Z, bx, by)
                jac.append((X, Y, Z))
            zinv = batch_invert([z for _, _, z in jac], p)
            row = []
            for (X, Y, _Z), zi in zip(jac, zinv, strict=True):
                zi2 = zi * zi % p
                row.append((X * zi2 % p, Y * zi2 * zi % p))
            rows.append(row)
            # next row base = [2^w]B = [2^(w-1)]B doubled
            top = row[-1]
            row_base = curve.add(top, top)
        return rows

    def coordinates_for(self, k: int, xs: list[int], ys: list[int]) -> None:
        """Append to ``xs`` and ``ys`` the coordinates of the affine points whose sum is ``[k]B`` (k modulo q)."""
        p = self.curve.p
        digits = signed_digits(int(k) % int(self.curve.q), self.w, self.count)
        add_x = xs.append
        add_y = ys.append
        for row, d in zip(self.rows, digits, strict=True):
            if d > 0:
                x, y = row[d - 1]
                add_x(x)
                add_y(y)
            elif d < 0:
                x, y = row[-d - 1]
                add_x(x)
                add_y(p - y)

    def multiply(self, k: int) -> Affine:
        xs: list[int] = []
        ys: list[int] = []
        self.coordinates_for(k, xs, ys)
        return self.curve.sum_coordinates(xs, ys)
