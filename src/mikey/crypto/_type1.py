"""Type-1 curves y^2 = x^3 + 1 over F_p, p = 11 mod 12, and their modified Tate pairing (RFC 5091 §2.1, §3, §4.5).

The private maths under :mod:`mikey.crypto.ibe`.  Field elements of F_p^2 are
pairs ``(a, b)`` meaning a + b*i with i^2 = -1 (RFC 5091 §2.1; p = 3 mod 4).
Points of E(F_p) are affine ``(x, y)`` tuples, ``None`` is the point at infinity.
The big-number helpers and the point arithmetic that does not depend on a
(affine add, Jacobian mixed add, normalisation, wNAF multiplication, batched
sums) come from :class:`mikey.crypto._curves.ShortWeierstrass` (shared with
SAKKE and ECCSI); the doubling and the pairing cannot be shared, because the
SAKKE curve of RFC 6508 is y^2 = x^3 - 3x (a = -3) with the distortion map
(x, y) -> (-x, iy), while the type-1 curve has a = 0 and the map
phi(x, y) = (zeta*x, y).

Pairing.  e'(A, B) = e(A, phi(B)) = f_{q,A}(phi(B))^((p^2-1)/q) (RFC 5091
§3.5, §4.5.2).  Miller's loop walks the NAF of q with lines of F_p
coefficients; the vertical lines do *not* vanish here (phi(B) has its x in
F_p^2), but 1/(zeta*x_B - c) equals (conj(zeta)*x_B - c) times an element of
F_p, and F_p factors are killed by the (p-1) in the final exponent, so every
division by a vertical becomes a multiplication by its conjugate.  The result is
the RFC's value exactly (an F_p-rational function is fixed by its divisor up to
an F_p constant).  :class:`MillerLines` stores the lines for a fixed first
argument (P_pub for a new identity's theta, S_id for a receiver's decryptions),
each divided by its slope, so a step costs 8 products in F_p (7 reductions).
The final exponentiation (p^2-1)/q = (p-1)(p+1)/q takes f^(p-1) = conj(f)^2/N(f)
(one inversion) and raises that element of norm 1 to (p+1)/q with the Lucas
ladder on its trace (:meth:`Type1Curve.lucas_power`: one squaring and one
product per bit).  For p of 1024 bits and q of 224 that is about 3200 products
in F_p per pairing, half in the loop and half in the exponentiation; the
MIKEY-SAKKE pairing (q of 1022 bits, exponent 4) is about 6000.

Fixed bases.  Encryption raises theta = e'(P_pub, Q_id) to a secret l:
:class:`FixedBaseUnitary` (rows of odd powers, regular digits) makes that about
45 products once an identity has a table; [l]P uses :class:`FixedBaseOdd`.

zeta.  RFC 5091 §4.5.2 step 1(b) prints zeta = (p-1)/2 + 3^((p+1)/4)*i, which
is not a cube root of unity; the §7.3 test value only reproduces with
zeta = (-1 - sqrt(-3))/2 = (p-1)/2 - (3^((p+1)/4)/2)*i, which is what
:class:`Type1Curve` uses (the other cube root gives the conjugate, i.e. the
inverse, of every pairing value).

Side channels.  Python integers and gmpy2 take value-dependent time, so nothing
here is constant-time.  What is done: scalars that are secret (the master
secret, l of BFencrypt, exponents of pairing values) go through
:func:`regular_digits` (every digit odd and non-zero, a fixed digit count), so
the sequence of curve / field operations does not depend on the secret; the
table entry each digit selects is still a secret-indexed memory access, and the
big-number operations still leak through their timing.  Miller's loop depends
only on q, which is public.
"""

from __future__ import annotations

import functools

from ..errors import CryptoError
from ._curves import (
    Affine,
    ShortWeierstrass,
    batch_invert,
    int_to_bytes,
    invert,
    mpz,
    powmod,
    wnaf,
)

__all__ = [
    "Affine",
    "Fp2",
    "Type1Curve",
    "FixedBaseOdd",
    "FixedBaseUnitary",
    "MillerLines",
    "regular_digits",
    "canonical",
]

Fp2 = tuple[int, int]


def regular_digits(k: int, w: int, count: int) -> list[int]:
    """Signed base-2^w digits of an odd k > 0, all odd (|d| < 2^w), least significant first.

    Exactly ``count`` digits; the caller makes k odd (adding the group order)
    and picks ``count`` so that the top digit is 1 (ValueError otherwise).
    """
    if k <= 0 or not k & 1:
        raise ValueError("regular recoding needs an odd positive scalar")
    full = 1 << (w + 1)
    half = 1 << w
    out: list[int] = []
    for _ in range(count - 1):
        d = (k & (full - 1)) - half
        out.append(d)
        k = (k - d) >> w
    if k != 1:
        raise ValueError("scalar too large for the digit count")
    out.append(1)
    return out


@functools.lru_cache(maxsize=16)
def _ladder_bits(e: int) -> tuple[bool, ...]:
    """The bits of e > 0 after the leading one, most significant first (read-only, shared)."""
    return tuple(c == "1" for c in bin(e)[3:])


@functools.lru_cache(maxsize=8)
def _naf(k: int) -> tuple[int, ...]:
    """Non-adjacent form of k > 0 (digits -1, 0, 1), most significant first."""
    return tuple(reversed(wnaf(k, 2)))


class Type1Curve(ShortWeierstrass):
    """E: y^2 = x^3 + 1 over F_p with p = 11 mod 12 and a subgroup of prime order q | p + 1 (RFC 5091 §2.1)."""

    __slots__ = ("cofactor", "byte_len", "alpha", "beta", "_half", "_sqrt_exp", "_cbrt_exp", "_digit_count")

    def __init__(self, p: int, q: int) -> None:
        p, q = int(p), int(q)
        if p % 12 != 11 or q < 3 or (p + 1) % q:
            raise ValueError("not a type-1 curve: p must be 11 mod 12 and q must divide p + 1")
        self.p = mpz(p)
        self.q = mpz(q)
        self.a = mpz(0)
        self.cofactor = mpz((p + 1) // q)
        self.byte_len = (p.bit_length() + 7) // 8
        sqrt3 = powmod(3, (p + 1) // 4, p)
        if sqrt3 * sqrt3 % p != 3:
            raise ValueError("3 is not a square modulo p")
        half = (p + 1) // 2  # 1/2 mod p
        self.alpha = mpz(p - half)  # -1/2 = (p-1)/2
        self.beta = mpz((p - sqrt3) * half % p)  # -sqrt(3)/2: zeta = alpha + beta*i (see module docstring)
        self._half = mpz(half)
        self._sqrt_exp = mpz((p + 1) // 4)
        self._cbrt_exp = mpz((2 * p - 1) // 3)
        self._digit_count: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"Type1Curve(p={int(self.p).bit_length()} bits, q={int(self.q).bit_length()} bits)"

    # -- points -----------------------------------------------------------------

    def is_on_curve(self, point: Affine) -> bool:
        if point is None:
            return False
        x, y = point
        p = self.p
        return bool(0 <= x < p and 0 <= y < p and (y * y - x * x * x - 1) % p == 0)

    def cube_root(self, a: int) -> int:
        """The unique cube root in F_p (p = 2 mod 3): a^((2p-1)/3) (RFC 5091 §4.4.2 step 2)."""
        return powmod(a, self._cbrt_exp, self.p)

    def point_from_y(self, y: int) -> tuple[int, int]:
        """(x, y) with x = (y^2 - 1)^(1/3): every y in F_p is on exactly one point (RFC 5091 §2.1)."""
        p = self.p
        y = mpz(y) % p
        return (self.cube_root((y * y - 1) % p), y)

    def encode_point(self, point: Affine, compressed: bool = False) -> bytes:
        """SEC 1 §2.3.3 octets: 0x04 || x || y, or (compressed) 0x02/0x03 || x with the parity of y."""
        if point is None:
            raise ValueError("cannot encode the point at infinity")
        n = self.byte_len
        if compressed:
            return bytes([2 | (int(point[1]) & 1)]) + int_to_bytes(point[0], n)
        return b"\x04" + int_to_bytes(point[0], n) + int_to_bytes(point[1], n)

    def point_length(self, first_octet: int) -> int:
        """Encoded length of a point starting with ``first_octet`` (ValueError if no point starts so)."""
        if first_octet == 4:
            return 2 * self.byte_len + 1
        if first_octet in (2, 3):
            return self.byte_len + 1
        raise ValueError("unknown point encoding")

    def decode_point(self, data: bytes) -> tuple[int, int]:
        """Parse an SEC 1 point (uncompressed or compressed) and check that it lies on the curve.

        Raises ``ValueError``; the point at infinity (0x00) is refused.
        """
        if not data or len(data) != self.point_length(data[0]):
            raise ValueError("not a point encoding of the right length")
        n = self.byte_len
        p = self.p
        x = mpz(int.from_bytes(data[1 : 1 + n], "big"))
        if data[0] == 4:
            y = mpz(int.from_bytes(data[1 + n :], "big"))
        else:
            if x >= p:
                raise ValueError("x is not a field element")
            rhs = (x * x * x + 1) % p
            y = powmod(rhs, self._sqrt_exp, p)
            if y * y % p != rhs:
                raise ValueError("x is not the abscissa of a point")
            if (int(y) & 1) != (data[0] & 1):
                y = (p - y) % p
        point = (x, y)
        if not self.is_on_curve(point):
            raise ValueError("point is not on the curve")
        return point

    def in_subgroup(self, point: Affine) -> bool:
        """Whether ``point`` is a finite point of order q (on the curve, and [q]point = 0)."""
        return point is not None and self.is_on_curve(point) and self.multiply(self.q, point) is None

    # -- Jacobian doubling (RFC 5091 §3.3.1); the rest is ShortWeierstrass -------------

    def _jdouble(self, X: int, Y: int, Z: int) -> tuple[int, int, int]:
        """ProjectivePointDouble1 (RFC 5091 §3.3.1, a = 0); Z = 0 stays at infinity."""
        p = self.p
        yy = Y * Y % p
        m = 3 * X * X % p
        s = 4 * X * yy % p
        x3 = (m * m - 2 * s) % p
        return x3, (m * (s - x3) - 8 * yy * yy) % p, 2 * Y * Z % p

    def multiply(self, k: int, point: Affine) -> Affine:
        """[k]point for a *public* k >= 0 (any size; width-5 NAF, variable time; RFC 5091 §3.2.2)."""
        k = int(k)
        if point is None or k == 0:
            return None
        if k < 0:
            return self.neg(self.multiply(-k, point))
        return self._multiply_wnaf(k, point)

    def regular_scalar(self, k: int, w: int) -> list[int]:
        """k modulo q as :func:`regular_digits` (k + q when k is even; q is odd)."""
        q = int(self.q)
        k = int(k) % q
        if k == 0:
            raise ValueError("scalar is 0 modulo q")
        k += q * (1 - (k & 1))  # odd, without a branch on the secret's parity
        count = self._digit_count.get(w)
        if count is None:
            count = -(-(2 * q).bit_length() // w) + 1
            self._digit_count[w] = count
        return regular_digits(k, w, count)

    def multiply_secret(self, k: int, point: tuple[int, int], w: int = 4) -> tuple[int, int]:
        """[k]point for a secret k and a point of order q: a fixed sequence of w doublings and
        one addition per digit (see the module docstring for what this does and does not hide)."""
        odd = self._odd_multiples(point, 1 << (w - 1))
        if odd is None:
            raise CryptoError("point of small order")
        digits = self.regular_scalar(k, w)
        p = self.p
        x, y = odd[digits[-1] >> 1]
        X, Y, Z = mpz(x), mpz(y), mpz(1)
        for d in reversed(digits[:-1]):
            for _ in range(w):
                X, Y, Z = self._jdouble(X, Y, Z)
            px, py = odd[(d if d > 0 else -d) >> 1]
            X, Y, Z = self._jadd_affine(X, Y, Z, px, py if d > 0 else p - py)
        result = self._to_affine(X, Y, Z)
        if result is None:
            raise CryptoError("scalar multiplication reached the point at infinity")
        return result

    # -- F_p^2 (RFC 5091 §2.1; note its printed product formula has the real part's sign flipped) -----

    def fp2_mul(self, a: Fp2, b: Fp2) -> Fp2:
        p = self.p
        a0, a1 = a
        b0, b1 = b
        t0 = a0 * b0
        t1 = a1 * b1
        return ((t0 - t1) % p, ((a0 + a1) * (b0 + b1) - t0 - t1) % p)

    def unitary_power(self, g: Fp2, e: int, secret: bool = False, w: int = 4) -> Fp2:
        """g^e for g of norm 1 (inverse = conjugate).  ``secret``: e is reduced modulo q and
        processed with :func:`regular_digits` (g must then have order dividing q)."""
        p = self.p
        if secret:
            digits = self.regular_scalar(e, w)
        else:
            e = int(e)
            if e == 0:
                return (mpz(1), mpz(0))
            digits = wnaf(e, w + 1)
        odd = [g]
        g2 = self._usquare(g)
        for _ in range((1 << (w - 1)) - 1):
            odd.append(self.fp2_mul(odd[-1], g2))
        top = digits[-1]
        a, b = odd[abs(top) >> 1]
        if top < 0:
            b = p - b
        steps = w if secret else 1
        for d in reversed(digits[:-1]):
            for _ in range(steps):
                a, b = (2 * a * a - 1) % p, 2 * a * b % p
            if d:
                c, s = odd[(d if d > 0 else -d) >> 1]
                if d < 0:
                    s = p - s
                a, b = self.fp2_mul((a, b), (c, s))
        return (a, b)

    def _usquare(self, g: Fp2) -> Fp2:
        a, b = g
        p = self.p
        return ((2 * a * a - 1) % p, 2 * a * b % p)

    def lucas_power(self, g: Fp2, e: int) -> Fp2:
        """g^e for g of norm 1 and a *public* e >= 0, by the Lucas ladder on the trace.

        For g = a + b*i of norm 1, V_k = g^k + g^-k = 2*Re(g^k) satisfies
        V_2k = V_k^2 - 2 and V_2k+1 = V_k*V_k+1 - V_1, so each bit of e costs one
        squaring and one product in F_p (the binary method on F_p^2 costs two,
        plus the window products).  The ladder ends with V_e and V_e+1, which give
        Im(g^e) = (Re(g^e)*a - Re(g^e+1))/b.  Variable time (public e only).
        """
        p = self.p
        a1, b1 = mpz(g[0]) % p, mpz(g[1]) % p
        e = int(e)
        if e == 0:
            return (mpz(1), mpz(0))
        if b1 == 0:  # g = +-1
            return (mpz(1), mpz(0)) if a1 == 1 or not e & 1 else (a1, mpz(0))
        trace = 2 * a1 % p
        v0, v1 = trace, (trace * trace - 2) % p  # V_1, V_2
        for bit in _ladder_bits(e):
            if bit:
                v0 = (v0 * v1 - trace) % p
                v1 = (v1 * v1 - 2) % p
            else:
                v1 = (v0 * v1 - trace) % p
                v0 = (v0 * v0 - 2) % p
        # Re(g^e) = V_e / 2; Im(g^e) = (V_e*a - V_e+1) / (2b)
        return (v0 * self._half % p, (v0 * a1 - v1) * invert(2 * b1, p) % p)

    def final_exponentiation(self, f: Fp2, extra: int = 1) -> Fp2:
        """f^((p^2-1)/q * extra) = (conj(f)/f)^((p+1)/q * extra) (RFC 5091 §3.5.2 step 6); ValueError if f = 0.

        conj(f)/f = conj(f)^2/N(f) has norm 1, so the power by the cofactor (and the
        public ``extra``) runs through :meth:`lucas_power`.
        """
        p = self.p
        a, b = f
        norm = (a * a + b * b) % p
        if norm == 0:
            raise ValueError("degenerate pairing (Miller value 0)")
        ni = invert(norm, p)
        g = ((a + b) * (a - b) * ni % p, (-2 * a * b * ni) % p)  # conj(f)^2 / N(f) = f^(p-1)
        return self.lucas_power(g, self.cofactor * extra)

    def pairing(self, a: tuple[int, int], b: tuple[int, int]) -> Fp2:
        """e'(A, B) = e(A, phi(B)) of RFC 5091 §4.5.2 for points of order q."""
        return MillerLines(self, a).pairing(b)


class FixedBaseOdd:
    """Fixed-base table for a point B of order q: row i holds [d * 2^(w*i)]B for odd d < 2^w.

    With :func:`regular_digits` every row contributes exactly one point, so a
    multiplication is a fixed number of table reads and additions.
    """

    __slots__ = ("curve", "w", "rows")

    def __init__(self, curve: Type1Curve, base: tuple[int, int], w: int = 5) -> None:
        self.curve = curve
        self.w = w
        count = len(curve.regular_scalar(1, w))
        rows = self._build_batched(base, count)
        self.rows = rows if rows is not None else self._build_sequential(base, count)

    def _build_batched(self, base: tuple[int, int], count: int) -> list[list[tuple[int, int]]] | None:
        """All rows at once: row bases by doubling, then each column of odd multiples for every row
        with one batched inversion.  ``None`` if a degenerate case turns up."""
        curve = self.curve
        p = curve.p
        w = self.w
        X, Y, Z = mpz(base[0]), mpz(base[1]), mpz(1)
        jac = [(X, Y, Z)]
        for _ in range(count - 1):
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
        if any(y == 0 for y in bys):
            return None
        # [2]B_i (a = 0), the step between odd multiples
        txs: list[int] = []
        tys: list[int] = []
        for x1, y1, inv in zip(bxs, bys, batch_invert([2 * y for y in bys], p), strict=True):
            lam = 3 * x1 * x1 * inv % p
            x3 = (lam * lam - 2 * x1) % p
            txs.append(x3)
            tys.append((lam * (x1 - x3) - y1) % p)
        columns = [(bxs, bys)]
        for _ in range((1 << (w - 1)) - 1):
            cxs, cys = columns[-1]
            dens = [(tx - cx) % p for tx, cx in zip(txs, cxs, strict=True)]
            if not all(dens):
                return None
            xs: list[int] = []
            ys: list[int] = []
            for tx, ty, cx, cy, inv in zip(txs, tys, cxs, cys, batch_invert(dens, p), strict=True):
                lam = (ty - cy) * inv % p
                x3 = (lam * lam - cx - tx) % p
                xs.append(x3)
                ys.append((lam * (cx - x3) - cy) % p)
            columns.append((xs, ys))
        return [[(xs[i], ys[i]) for xs, ys in columns] for i in range(count)]

    def _build_sequential(self, base: tuple[int, int], count: int) -> list[list[tuple[int, int]]]:
        """Row by row with affine additions (raises CryptoError for a base of small order)."""
        curve = self.curve
        w = self.w
        rows: list[list[tuple[int, int]]] = []
        row_base: Affine = base
        for _ in range(count):
            if row_base is None:
                raise CryptoError("fixed-base table: the base point has small order")
            odd = curve._odd_multiples(row_base, 1 << (w - 1))
            if odd is None:
                raise CryptoError("fixed-base table: the base point has small order")
            rows.append(odd)
            # next row base: [2^w]B = [2^w - 1]B + B
            row_base = curve.add(odd[-1], row_base)
        return rows

    def multiply(self, k: int) -> Affine:
        """[k]B for a secret k (reduced modulo q)."""
        p = self.curve.p
        xs: list[int] = []
        ys: list[int] = []
        for row, d in zip(self.rows, self.curve.regular_scalar(k, self.w), strict=True):
            x, y = row[(d if d > 0 else -d) >> 1]
            xs.append(x)
            ys.append(y if d > 0 else p - y)
        return self.curve.sum_coordinates(xs, ys)


class FixedBaseUnitary:
    """Fixed-base table for g of norm 1 and order q in F_p^2: row i holds g^(d * 2^(w*i)) for odd d < 2^w.

    The F_p^2 counterpart of :class:`FixedBaseOdd`: with :func:`regular_digits`
    every row gives exactly one factor (its inverse is its conjugate), so g^e
    for a secret e is a fixed number of table reads and products, no squarings.
    """

    __slots__ = ("curve", "w", "rows")

    def __init__(self, curve: Type1Curve, g: Fp2, w: int = 5) -> None:
        self.curve = curve
        self.w = w
        p = curve.p
        base = (mpz(g[0]) % p, mpz(g[1]) % p)
        if base[1] == 0:  # +-1: not of order q
            raise CryptoError("fixed-base table: the base has small order")
        count = len(curve.regular_scalar(1, w))
        mul = curve.fp2_mul
        rows: list[list[Fp2]] = []
        for _ in range(count):
            square = curve._usquare(base)
            row = [base]
            for _ in range((1 << (w - 1)) - 1):
                row.append(mul(row[-1], square))
            rows.append(row)
            base = mul(row[-1], base)  # g^(2^w) for the next row
        self.rows = rows

    def power(self, e: int) -> Fp2:
        """g^e for a secret e (reduced modulo q)."""
        p = self.curve.p
        pairs = zip(self.rows, self.curve.regular_scalar(e, self.w), strict=True)
        row, d = next(pairs)
        a, b = row[(d if d > 0 else -d) >> 1]
        if d < 0:
            b = p - b
        for row, d in pairs:
            c, s = row[(d if d > 0 else -d) >> 1]
            if d < 0:
                s = p - s
            t0 = a * c
            t1 = b * s
            a, b = (t0 - t1) % p, ((a + b) * (c + s) - t0 - t1) % p
        return (a, b)


class MillerLines:
    """Normalised lines of Miller's loop for f_{q,K} with K a point of order q (RFC 5091 §3.4, §3.5).

    Each step is ``(il, cl, e, x_new, add)`` for the tangent at T, the line
    ``Y - lam*X + c`` (c = lam*x_T - y_T) divided by its slope: ``il = 1/lam``,
    ``cl = c/lam``, followed by the vertical at [2]T (x = x_new, used through
    its conjugate) and ``e = cl - x_new``; ``add`` is ``None`` or ``(il, cl, e,
    x_new, negative)`` for the chord through T and ±K.  The last NAF digit
    reaches [q]K = 0: its chord is the vertical at K (``final``).

    At phi(Q) = (zeta*x_Q, y_Q), with zeta = alpha + beta*i, ax = alpha*x_Q and
    bx = beta*x_Q, the line over lam is (m + cl - ax) - bx*i with m = y_Q/lam and
    the conjugate vertical is (ax - x_new) - bx*i; their product is
    ((m + cl - ax)(ax - x_new) - bx^2) - bx*(m + e)*i: three products in F_p per
    step, and with f^2 * g (five) eight in all.  Dividing by lam and by the
    vertical's norm only changes F_p factors, which the final exponentiation
    removes.
    """

    __slots__ = ("curve", "steps", "final_positive", "kx")

    def __init__(self, curve: Type1Curve, point: tuple[int, int]) -> None:
        self.curve = curve
        p = curve.p
        kx, ky = mpz(point[0]) % p, mpz(point[1]) % p
        self.kx = kx
        digits = _naf(int(curve.q))
        last = len(digits) - 1
        self.final_positive = digits[-1] > 0
        # Affine multiples of K: one inversion per line gives both the slope lam = num/den and
        # 1/lam = den/num (from 1/(num*den)); a zero slope (x_T = 0: order 3) or denominator
        # (y_T = 0, or T = +-K: order 2 or a multiple of K of order < q) is degenerate.
        x, y = kx, ky
        steps: list[tuple[int, int, int, int, tuple[int, int, int, int, bool] | None]] = []
        for idx, d in enumerate(digits[1:], start=1):
            num = 3 * x * x % p  # tangent: lam = 3x^2 / 2y
            den = 2 * y % p
            inv = num * den % p
            if inv == 0:
                raise ValueError("degenerate first argument")
            inv = invert(inv, p)
            lam = num * num * inv % p
            il = den * den * inv % p
            x2 = (lam * lam - 2 * x) % p
            y2 = (lam * (x - x2) - y) % p
            cl = (x - y * il) % p  # c/lam with c = lam*x_T - y_T
            doubling = (il, cl, (cl - x2) % p, x2)
            x, y = x2, y2
            if d == 0:
                steps.append((*doubling, None))
                continue
            negative = d < 0
            ay = p - ky if negative else ky
            if idx == last:  # [q]K = 0: T = -(+-K) and the chord is the vertical at K
                if x != kx or (y + ay) % p or y == 0:
                    raise ValueError("first argument is not of order q")
                steps.append((*doubling, None))
                break
            num = (ay - y) % p  # chord through T and (kx, ay)
            den = (kx - x) % p
            inv = num * den % p
            if inv == 0:
                raise ValueError("degenerate first argument")
            inv = invert(inv, p)
            lam = num * num * inv % p
            il = den * den * inv % p
            x3 = (lam * lam - x - kx) % p
            cl = (kx - ay * il) % p  # c/lam with c = lam*kx - ay
            steps.append((*doubling, (il, cl, (cl - x3) % p, x3, negative)))
            x, y = x3, (lam * (x - x3) - y) % p
        else:
            raise ValueError("first argument is not of order q")
        self.steps = steps

    def miller_value(self, point: tuple[int, int]) -> Fp2:
        """f_{q,K}(phi(Q)) up to a factor in F_p (ValueError if the value is 0)."""
        curve = self.curve
        p = curve.p
        xq, yq = mpz(point[0]), mpz(point[1])
        ax = curve.alpha * xq % p
        bx = curve.beta * xq % p
        bx2 = bx * bx % p
        a, b = mpz(1), mpz(0)
        for il, cl, e, x_new, add in self.steps:
            # g = line/lam * conj(vertical) = g0 - h*i (class docstring)
            m = yq * il % p
            g0 = ((m + cl - ax) * (ax - x_new) - bx2) % p
            h = bx * (m + e) % p
            # f = f^2 * g, f^2 = A + B*i
            A = (a + b) * (a - b) % p
            B = (a * b << 1) % p
            t0 = A * g0
            t1 = B * h
            a, b = (t0 + t1) % p, ((A + B) * (g0 - h) - t0 + t1) % p
            if add is not None:
                il, cl, e, x_new, negative = add
                m = yq * il % p
                g0 = ((m + cl - ax) * (ax - x_new) - bx2) % p
                g1 = -bx * (m + e) % p
                if negative:  # f_{-1} = 1/v_K: times conj(v_K(phi(Q))) = (ax - kx) - bx*i
                    u0 = ax - self.kx
                    g0, g1 = (g0 * u0 + g1 * bx) % p, (g1 * u0 - g0 * bx) % p
                a, b = curve.fp2_mul((a, b), (g0, g1))
        if self.final_positive:  # chord through -K and K: the vertical v_K(phi(Q)) = (ax - kx) + bx*i
            a, b = curve.fp2_mul((a, b), ((ax - self.kx) % p, bx))
        if a == 0 and b == 0:
            raise ValueError("degenerate pairing (Miller value 0)")
        return (a, b)

    def pairing(self, point: tuple[int, int]) -> Fp2:
        """e'(K, Q) = e(K, phi(Q)) (RFC 5091 §4.5.2)."""
        return self.curve.final_exponentiation(self.miller_value(point))


def canonical(curve: Type1Curve, value: Fp2, order: int = 0) -> bytes:
    """Canonical1(p, o, v) of RFC 5091 §4.3.2: a || b (o = 0) or b || a (o = 1), each ceil(lg(p)/8) octets."""
    n = curve.byte_len
    a = int_to_bytes(value[0], n)
    b = int_to_bytes(value[1], n)
    return a + b if order == 0 else b + a
