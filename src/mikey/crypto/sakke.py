"""SAKKE: Sakai-Kasahara Key Encryption (RFC 6508) with MIKEY-SAKKE Parameter Set 1 (RFC 6509 App. A).

A Sender encapsulates a Shared Secret Value (SSV) for a Receiver's identifier
using only public data (the KMS Public Key Z); the Receiver recovers it with
its Receiver Secret Key (RSK) provisioned by the KMS.

Speed.  Encapsulation needs no per-recipient state: R = [r]([b]P + Z) is
computed as ``[r*b]P + [r]Z`` from fixed-base tables for P (one per process)
and for each KMS Public Key Z (a small LRU cache), and g^r uses a fixed-base
table in PF_p.  Decapsulation runs Miller's loop over multiples of the RSK
(:class:`SakkeReceiver`): the pairing on E(F_p)[q] is symmetric, so
<R, K_b> = <K_b, R>, and an R outside E(F_p)[q] is caught by the mandatory R
re-check of §6.2.2 step 5.  The loop needs no inversions (Jacobian
coordinates; F_p factors of line values vanish in the final exponentiation).
A receiver's first decapsulation evaluates the lines as it goes; the second
stores them normalised, so later ones only evaluate stored lines; the third
builds a window-6 table for [b]P + Z (about 2 MB, at most two kept per process)
that makes the step 5 re-check a sum of 171 instead of 256 points.  A sender
builds the same table for a recipient on its 16th encapsulation to it.

Side channels.  None of this is constant-time.  Python integers and gmpy2
take time that depends on the values, and the windowed / table-driven scalar
multiplications and exponentiations choose their work from the scalar's
digits.  In particular, the KMS operations with the master secret z
(:func:`generate_master`, :func:`issue_rsk`) and every decapsulation (which
uses the RSK and recovers the SSV) leak timing and cache-access information.
Run KMS code and RSK holders where an attacker cannot measure their timing
(e.g. not co-resident with untrusted code; no network-observable timing of
single operations that matters).  Encapsulation and RSK validation handle
only public data, except the SSV, whose derived scalar r drives the
table lookups of encapsulation: a co-resident attacker could learn about the
SSV there too.  Secrets come from :mod:`secrets`.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from mikey._lru import BoundedLRU
from mikey.errors import AuthenticationError, CryptoError, KeyMaterialError

from ._curves import (
    Affine,
    Curve,
    FixedBaseTable,
    batch_invert,
    int_to_bytes,
    invert,
    jadd_tail,
    mpz,
    signed_digits,
    wnaf,
)

__all__ = [
    "clear_caches",
    "SakkeParams",
    "PARAMETER_SET_1",
    "hash_to_integer_range",
    "pairing",
    "generate_master",
    "public_key_from_master",
    "issue_rsk",
    "validate_rsk",
    "encapsulate",
    "decapsulate",
    "SakkeReceiver",
]

RandBelow = Callable[[int], int]

_Z_TABLE_CACHE_SIZE = 4
_RECEIVER_CACHE_SIZE = 16
_TABLE_WINDOW = 8
#: Receivers' [b]P + Z tables for the §6.2.2 step 5 re-check: window and how many
#: are kept process-wide (about 2 MB each).
_RECIPIENT_TABLE_WINDOW = 6
_RECIPIENT_TABLE_CACHE_SIZE = 2
_RECIPIENT_TABLE_AFTER = 2  # built on a receiver's third decapsulation
_SENDER_TABLE_USES = 16  # built on the 16th encapsulation to one recipient
_SENDER_USES_SIZE = 256  # recipients whose encapsulation counts are remembered


class _PfTable:
    """Fixed-base table for powers of an element of PF_p[q] (RFC 6508 §2.1).

    Entries are representatives t in F_p, i.e. the PF_p element 1 + i*t, so that
    multiplying a projective accumulator a + i*b by one costs two products.
    """

    __slots__ = ("p", "w", "count", "rows")

    def __init__(self, p: int, q: int, g: int, w: int) -> None:
        self.p = p
        self.w = w
        self.count = int(q).bit_length() // w + 1
        half = 1 << (w - 1)
        rows: list[list[int]] = []
        ba, bb = mpz(1), mpz(g)  # 1 + i*g
        for _ in range(self.count):
            proj = [(ba, bb)]
            a, b = ba, bb
            for _d in range(2, half + 1):
                a, b = (a * ba - b * bb) % p, (a * bb + b * ba) % p
                proj.append((a, b))
            inv = batch_invert([x for x, _ in proj], p)
            rows.append([y * i % p for (_, y), i in zip(proj, inv, strict=True)])
            # next base = (top)^2, top = base^(2^(w-1))
            a, b = proj[-1]
            ba, bb = (a + b) * (a - b) % p, 2 * a * b % p
        self.rows = rows

    def power(self, e: int) -> int:
        """The representative in F_p of g^e (e reduced by the caller)."""
        p = self.p
        a, b = mpz(1), mpz(0)
        for row, d in zip(self.rows, signed_digits(e, self.w, self.count), strict=True):
            if d > 0:
                t = row[d - 1]
                a, b = (a - b * t) % p, (b + a * t) % p
            elif d < 0:
                t = row[-d - 1]
                a, b = (a + b * t) % p, (b - a * t) % p
        result: int = b * invert(a, p) % p
        return result


class SakkeParams:
    """SAKKE public parameters (RFC 6508 §2.3): p, q, P, g = <P,P>, Hash and n.

    Fixed-base tables for P and g are built lazily, once per process.
    """

    def __init__(
        self,
        *,
        name: str,
        sakke_params_value: int,
        p: int,
        q: int,
        px: int,
        py: int,
        g: int,
        n_bits: int = 128,
        hash_name: str = "sha256",
    ) -> None:
        self.name = name
        self.sakke_params_value = sakke_params_value
        self.curve = Curve(name, p, 0, q, px, py)
        self.p = self.curve.p
        self.q = self.curve.q
        self.point_p: tuple[int, int] = (self.curve.gx, self.curve.gy)
        self.g = mpz(g)
        self.n_bits = n_bits
        self.hash_name = hash_name
        self.field_len = self.curve.byte_len
        self.ssv_len = n_bits // 8
        self.sed_len = 2 * self.field_len + 1 + self.ssv_len
        self._p_table: FixedBaseTable | None = None
        self._g_table: _PfTable | None = None
        self._z_tables: BoundedLRU[bytes, FixedBaseTable] = BoundedLRU(_Z_TABLE_CACHE_SIZE)
        self._recipient_tables: BoundedLRU[tuple[bytes, int], FixedBaseTable] = BoundedLRU(
            _RECIPIENT_TABLE_CACHE_SIZE
        )
        self._sender_uses: OrderedDict[tuple[bytes, int], int] = OrderedDict()
        self._sender_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SakkeParams({self.name})"

    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    @property
    def p_table(self) -> FixedBaseTable:
        if self._p_table is None:
            self._p_table = FixedBaseTable(self.curve, self.point_p, _TABLE_WINDOW)
        return self._p_table

    @property
    def g_table(self) -> _PfTable:
        if self._g_table is None:
            self._g_table = _PfTable(self.p, self.q, self.g, _TABLE_WINDOW)
        return self._g_table

    def clear_peer_caches(self) -> None:
        """Forget per-recipient precomputation ([b]P+Z tables and sender use counts).

        The next encapsulation to any recipient runs "cold"; the tables for P, g
        and the KMS Public Keys (community-wide, long-lived) are kept.
        """
        self._recipient_tables.clear()
        with self._sender_lock:
            self._sender_uses.clear()

    def clear_kms_tables(self) -> None:
        """Forget the fixed-base tables built for KMS Public Keys Z."""
        self._z_tables.clear()

    def z_table(self, z_bytes: bytes, z_point: tuple[int, int]) -> FixedBaseTable:
        """Fixed-base table for a KMS Public Key (bounded LRU cache)."""
        return self._z_tables.get_or_create(z_bytes, lambda: FixedBaseTable(self.curve, z_point, _TABLE_WINDOW))

    def _recipient_table(self, z_bytes: bytes, b: int) -> FixedBaseTable | None:
        """The cached fixed-base table for [b]P + Z, if there is one."""
        return self._recipient_tables.get((z_bytes, b))

    def _add_recipient_table(self, z_bytes: bytes, b: int, point: tuple[int, int]) -> FixedBaseTable:
        """Build and cache a fixed-base table for the point [b]P + Z (bounded LRU)."""
        return self._recipient_tables.put((z_bytes, b), FixedBaseTable(self.curve, point, _RECIPIENT_TABLE_WINDOW))

    def _sender_table(self, z_bytes: bytes, b: int, z_point: tuple[int, int]) -> FixedBaseTable | None:
        """The [b]P + Z table for encapsulation, built on the 16th use for one recipient.

        Each recipient gets its table built at most once while its count is
        remembered (an evicted table is not rebuilt), so a sender that rotates
        over many recipients never keeps rebuilding tables.
        """
        table = self._recipient_table(z_bytes, b)
        if table is not None:
            return table
        key = (z_bytes, b)
        with self._sender_lock:
            uses = self._sender_uses
            count = uses.pop(key, 0)
            if 0 <= count < _SENDER_TABLE_USES - 1:
                uses[key] = count + 1
            else:
                uses[key] = -1  # built now or before: never again
            while len(uses) > _SENDER_USES_SIZE:
                uses.popitem(last=False)
        if count != _SENDER_TABLE_USES - 1:
            return None
        point = self.curve.add(self.p_table.multiply(b), z_point)
        return None if point is None else self._add_recipient_table(z_bytes, b, point)

    def warm_up(self) -> None:
        """Build the per-process fixed-base tables now instead of on first use."""
        _ = self.p_table, self.g_table


#: MIKEY-SAKKE Parameter Set 1 (RFC 6509 Appendix A; SAKKE params value 1).
PARAMETER_SET_1 = SakkeParams(
    name="MIKEY-SAKKE parameter set 1",
    sakke_params_value=1,
    p=int(
        "997ABB1F0A563FDA65C61198DAD0657A416C0CE19CB48261BE9AE358B3E01A2E"
        "F40AAB27E2FC0F1B228730D531A59CB0E791B39FF7C88A19356D27F4A666A6D0"
        "E26C6487326B4CD4512AC5CD65681CE1B6AFF4A831852A82A7CF3C521C3C09AA"
        "9F94D6AF56971F1FFCE3E82389857DB080C5DF10AC7ACE87666D807AFEA85FEB",
        16,
    ),
    q=int(
        "265EAEC7C2958FF69971846636B4195E905B0338672D20986FA6B8D62CF8068B"
        "BD02AAC9F8BF03C6C8A1CC354C69672C39E46CE7FDF222864D5B49FD2999A9B4"
        "389B1921CC9AD335144AB173595A07386DABFD2A0C614AA0A9F3CF14870F026A"
        "A7E535ABD5A5C7C7FF38FA08E2615F6C203177C42B1EB3A1D99B601EBFAA17FB",
        16,
    ),
    px=int(
        "53FC09EE332C29AD0A7990053ED9B52A2B1A2FD60AEC69C698B2F204B6FF7CBF"
        "B5EDB6C0F6CE2308AB10DB9030B09E1043D5F22CDB9DFA55718BD9E7406CE890"
        "9760AF765DD5BCCB337C86548B72F2E1A702C3397A60DE74A7C1514DBA66910D"
        "D5CFB4CC80728D87EE9163A5B63F73EC80EC46C4967E0979880DC8ABEAE63895",
        16,
    ),
    py=int(
        "0A8249063F6009F1F9F1F0533634A135D3E82016029906963D778D821E141178"
        "F5EA69F4654EC2B9E7F7F5E5F0DE55F66B598CCF9A140B2E416CFF0CA9E032B9"
        "70DAE117AD547C6CCAD696B5B7652FE0AC6F1E80164AA989492D979FC5A4D5F2"
        "13515AD7E9CB99A980BDAD5AD5BB4636ADB9B5706A67DCDE75573FD71BEF16D7",
        16,
    ),
    g=int(
        "66FC2A432B6EA392148F15867D623068C6A87BD1FB94C41E27FABE658E015A87"
        "371E94744C96FEDA449AE9563F8BC446CBFDA85D5D00EF577072DA8F541721BE"
        "EE0FAED1828EAB90B99DFB0138C7843355DF0460B4A9FD74B4F1A32BCAFA1FFA"
        "D682C033A7942BCCE3720F20B9B7B0403C8CAE87B7A0042ACDE0FAB36461EA46",
        16,
    ),
)


# ---------------------------------------------------------------------------
# Supporting algorithms
# ---------------------------------------------------------------------------


def hash_to_integer_range(s: bytes, n: int, hash_name: str = "sha256") -> int:
    """HashToIntegerRange(s, n, hashfn) of RFC 6508 §5.1: an integer in [0, n-1]."""
    n = int(n)
    hashlen = hashlib.new(hash_name).digest_size * 8
    lg = n.bit_length() - 1 if n & (n - 1) == 0 else n.bit_length()  # ceil(lg(n))
    count = -(-lg // hashlen)
    a = hashlib.new(hash_name, s).digest()
    h = bytes(hashlen // 8)
    parts = []
    for _ in range(count):
        h = hashlib.new(hash_name, h).digest()
        parts.append(hashlib.new(hash_name, h + a).digest())
    return int.from_bytes(b"".join(parts), "big") % n


def _identifier_int(identifier: bytes, params: SakkeParams) -> int:
    """The identifier interpreted as an integer (RFC 6508 §2.2, §6.1.1): 2 <= a <= q-1."""
    a = int.from_bytes(identifier, "big")
    if not 2 <= a < int(params.q):
        raise CryptoError("SAKKE identifier is not an integer in [2, q-1] (RFC 6508 §2.2)")
    return a


def _decode_point(data: bytes, params: SakkeParams, error: type[Exception], what: str) -> tuple[int, int]:
    try:
        return params.curve.decode_point(data)
    except ValueError:
        raise error(f"{what} is not a valid point on the SAKKE curve") from None


# ---------------------------------------------------------------------------
# The Tate-Lichtenbaum pairing (RFC 6508 §3.2)
# ---------------------------------------------------------------------------
#
# Miller's loop for <K, Q> runs over multiples of K and evaluates lines at the
# distorted point [i]Q = (-Q_x, i*Q_y).  Every F_p factor of a line value is
# killed by the final exponentiation (p^2-1)/q, because that contains p-1:
# vertical lines (x - c, with c in F_p) vanish, and lines may be scaled by any
# non-zero element of F_p.  So the loop needs no inversions: the multiples of
# K are kept in Jacobian coordinates and each line is used as computed.
#
# The loop walks a width-6 NAF of q-1 (odd digits |d| < 32).  With f_d the
# Miller function of [d]K, f_{2c} = f_c^2 * l_{[c]K,[c]K} and
# f_{c+d} = f_c * f_d * l_{[c]K,[d]K} (up to verticals), and f_{-d} = 1/f_d,
# which is conj(f_d) up to the F_p factor N(f_d).  Any addition chain for q-1
# gives the same function up to an F_p constant, so the value equals that of
# the RFC's binary loop.

_WNAF_WIDTH = 6


def _naf(k: int, width: int = 2) -> list[int]:
    """Width-``width`` non-adjacent form of k (odd digits |d| < 2^(width-1)), most significant first."""
    out = wnaf(k, width)
    out.reverse()
    return out


@functools.lru_cache(maxsize=4)
def _loop_digits(q: int) -> list[int]:
    """The width-``_WNAF_WIDTH`` NAF of q-1 that Miller's loop walks (read-only, shared)."""
    return _naf(q - 1, _WNAF_WIDTH)


class _MillerBase:
    """The part of Miller's loop for <K, .> that depends on K only (RFC 6508 §3.2).

    ``odd[j]`` is [2j+1]K in affine coordinates; ``tangent`` is the normalised
    tangent line at K and ``chords[j]`` the line through [2j+1]K and [2]K, both
    as ``(l, m)`` with value ``(l*Q_x + m) + i*Q_y`` at [i]Q.  They give f_d(Q)
    for the odd digits d of the loop.
    """

    __slots__ = ("p", "digits", "odd", "tangent", "chords")

    def __init__(self, point: tuple[int, int], params: SakkeParams) -> None:
        p = params.p
        kx, ky = mpz(point[0]), mpz(point[1])
        self.p = p
        self.digits = _loop_digits(int(params.q))
        count = 1 << (_WNAF_WIDTH - 2)
        if ky % p == 0:
            raise ValueError("degenerate first argument")
        lam = 3 * (kx * kx - 1) * invert(2 * ky, p) % p
        self.tangent = (lam, (lam * kx - ky) % p)
        x2 = (lam * lam - 2 * kx) % p
        y2 = (lam * (kx - x2) - ky) % p
        odd = [(kx, ky)]
        chords = []
        for _ in range(count - 1):
            x1, y1 = odd[-1]
            den = (x2 - x1) % p
            if den == 0:
                raise ValueError("degenerate first argument")
            lam = (y2 - y1) * invert(den, p) % p
            chords.append((lam, (lam * x1 - y1) % p))
            x3 = (lam * lam - x1 - x2) % p
            odd.append((x3, (lam * (x1 - x3) - y1) % p))
        self.odd = odd
        self.chords = chords

    def f_values(self, u: int, w: int) -> list[tuple[int, int]]:
        """f_d at [i]Q for d = 1, 3, 5, ... given u = Q_x/Q_y and w = 1/Q_y, as (re, im)."""
        p = self.p
        lam, m = self.tangent
        t = (lam * u + m * w) % p  # f_2 = t + i
        values = [(mpz(1), mpz(0))]
        for lam, m in self.chords:
            la = (lam * u + m * w) % p
            # f_{d+2} = f_d * f_2 * l_{[d]K,[2]K}; (t + i)(la + i) = (t*la - 1) + i(t + la)
            c, e = (t * la - 1) % p, t + la
            a, b = values[-1]
            values.append(((a * c - b * e) % p, (a * e + b * c) % p))
        return values

    def evaluate_direct(self, qx: int, qy: int) -> tuple[int, int]:
        """Miller's loop evaluated at [i]Q as it goes, in Jacobian coordinates: f_{q-1}(Q) as (a, b).

        Nothing is stored; raises ``ValueError`` on a degenerate input.
        """
        p = self.p
        if qy % p == 0:
            raise ValueError("degenerate evaluation point")
        w = invert(qy, p)
        fvals = self.f_values(qx * w % p, w)
        odd = self.odd
        digits = self.digits
        d0 = digits[0]
        X, Y = odd[d0 >> 1]
        Z = mpz(1)
        a, b = fvals[d0 >> 1]
        xq = mpz(qx) % p
        yq = mpz(qy) % p
        for d in digits[1:]:
            # doubling T = (X, Y, Z), a = -3; tangent line scaled by Z3*Z^2:
            # m*(Q_x*Z^2 + X) - 2Y^2 + i*Q_y*Z3*Z^2 with m = 3(X^2 - Z^4), Z3 = 2YZ
            zz = Z * Z % p
            yy = Y * Y % p
            m = 3 * (X - zz) * (X + zz) % p
            s = (X * yy << 2) % p
            X3 = (m * m - 2 * s) % p
            Z = (Y * Z << 1) % p
            if not Z:
                raise ValueError("degenerate first argument")
            czz = Z * zz % p
            re = (m * (xq * zz + X) - 2 * yy) % p
            im = czz * yq % p
            Y = (m * (s - X3) - 8 * yy * yy) % p
            X = X3
            A = (a + b) * (a - b) % p
            B = (a * b << 1) % p
            a, b = (A * re - B * im) % p, (A * im + B * re) % p
            if d:
                j = (d if d > 0 else -d) >> 1
                kx, ky = odd[j]
                if d < 0:
                    ky = p - ky
                # mixed addition T + (kx, ky); chord scaled by Z3 = Z*h:
                # r*(Q_x + kx) - ky*Z3 + i*Q_y*Z3
                zz = Z * Z % p
                h = (kx * zz - X) % p
                if not h:
                    raise ValueError("degenerate first argument")
                r = (ky * zz * Z - Y) % p
                X, Y, Z = jadd_tail(X, Y, Z, h, r, p)
                re = (r * (xq + kx) - ky * Z) % p
                im = yq * Z % p
                c, e = fvals[j]
                if d < 0:
                    e = -e
                # f *= f_d * line
                c, e = (c * re - e * im) % p, (c * im + e * re) % p
                a, b = (a * c - b * e) % p, (a * e + b * c) % p
        return a, b


class _MillerLines:
    """Normalised line coefficients of Miller's loop for a fixed first argument K (RFC 6508 §3.2).

    Each step is ``(l, m, add)``: the doubling line is ``(l*Q_x + m) + i*Q_y`` at
    [i]Q, i.e. ``l*u + m*w + i`` after scaling by w = 1/Q_y; ``add`` is ``None`` or
    ``(l, m, j, negative)`` for the addition of [±(2j+1)]K.  The multiples of K are
    computed in Jacobian coordinates and all lines are normalised with one batched
    inversion.
    """

    __slots__ = ("base", "steps")

    def __init__(self, base: _MillerBase) -> None:
        self.base = base
        p = base.p
        odd = base.odd
        digits = base.digits
        X, Y = odd[digits[0] >> 1]
        Z = mpz(1)
        # per line: (A, B, C) with value A*Q_x + B + i*C*Q_y, and the addition details
        raw: list[tuple[int, int, int]] = []
        adds: list[tuple[int, bool] | None] = []
        for d in digits[1:]:
            zz = Z * Z % p
            yy = Y * Y % p
            m = 3 * (X - zz) * (X + zz) % p
            s = (X * yy << 2) % p
            X3 = (m * m - 2 * s) % p
            Z = (Y * Z << 1) % p
            if not Z:
                raise ValueError("degenerate first argument")
            raw.append((m * zz % p, (m * X - 2 * yy) % p, Z * zz % p))
            Y = (m * (s - X3) - 8 * yy * yy) % p
            X = X3
            if d:
                j = (d if d > 0 else -d) >> 1
                kx, ky = odd[j]
                if d < 0:
                    ky = p - ky
                zz = Z * Z % p
                h = (kx * zz - X) % p
                if not h:
                    raise ValueError("degenerate first argument")
                r = (ky * zz * Z - Y) % p
                X, Y, Z = jadd_tail(X, Y, Z, h, r, p)
                # slope r/Z3 through (kx, ky): l = r/Z3, m = l*kx - ky
                raw.append((r, -1, Z))
                adds.append((j, d < 0))
            else:
                adds.append(None)
        inv = batch_invert([c for _, _, c in raw], p)
        steps: list[tuple[int, int, Any]] = []
        k = 0
        for add in adds:
            a_, b_, _c = raw[k]
            ci = inv[k]
            k += 1
            entry: Any = None
            if add is not None:
                j, negative = add
                kx, ky = odd[j]
                r, _, _z = raw[k]
                lam = r * inv[k] % p
                k += 1
                entry = (lam, (lam * kx - (p - ky if negative else ky)) % p, j, negative)
            steps.append((a_ * ci % p, b_ * ci % p, entry))
        self.steps = steps

    def evaluate(self, qx: int, qy: int) -> tuple[int, int]:
        """f_{q-1}(Q) as (a, b) from the stored lines; raises ``ValueError`` on a degenerate input."""
        base = self.base
        p = base.p
        if qy % p == 0:
            raise ValueError("degenerate evaluation point")
        w = invert(qy, p)
        u = qx * w % p
        fvals = base.f_values(u, w)
        a, b = fvals[base.digits[0] >> 1]
        for lam, m, add in self.steps:
            la = (lam * u + m * w) % p
            A = (a + b) * (a - b) % p
            B = (a * b << 1) % p
            a, b = (A * la - B) % p, (A + B * la) % p
            if add is not None:
                lam, m, j, negative = add
                la = (lam * u + m * w) % p
                c, e = fvals[j]
                if negative:
                    e = -e
                # (c + ie)(la + i) = (c*la - e) + i(c + e*la)
                c, e = (c * la - e) % p, (c + e * la) % p
                a, b = (a * c - b * e) % p, (a * e + b * c) % p
        return a, b


def _final_representative(a: int, b: int, p: int) -> int:
    """t = v^c with c = (p+1)/q = 4, then its representative b/a (RFC 6508 §3.2)."""
    for _ in range(2):
        a, b = (a + b) * (a - b) % p, 2 * a * b % p
    if a == 0:
        raise ValueError("pairing value has no representative in F_p")
    return b * invert(a, p) % p


def pairing(r_point: tuple[int, int], q_point: tuple[int, int], params: SakkeParams = PARAMETER_SET_1) -> int:
    """<R, Q> of RFC 6508 §3.2 (Miller's loop over multiples of R, evaluated at [i]Q).

    Returns the representative in F_p of the result in PF_p[q].
    """
    a, b = _MillerBase(r_point, params).evaluate_direct(q_point[0], q_point[1])
    return _final_representative(a, b, params.p)


# ---------------------------------------------------------------------------
# KMS side (RFC 6508 §6.1)
# ---------------------------------------------------------------------------


def public_key_from_master(z: int, params: SakkeParams = PARAMETER_SET_1) -> bytes:
    """KMS Public Key Z = [z]P (RFC 6508 §6.1), encoded 0x04 || x || y."""
    if not 2 <= int(z) < int(params.q):
        raise KeyMaterialError("SAKKE master secret must be in [2, q-1] (RFC 6508 §6.1)")
    return params.curve.encode_point(params.p_table.multiply(z))


def generate_master(rng: RandBelow | None = None, params: SakkeParams = PARAMETER_SET_1) -> tuple[int, bytes]:
    """A fresh KMS Master Secret z in [2, q-1] and its Public Key Z = [z]P (RFC 6508 §6.1)."""
    randbelow = rng or secrets.randbelow
    z = 2 + randbelow(int(params.q) - 2)
    return z, public_key_from_master(z, params)


def issue_rsk(z: int, identifier: bytes, params: SakkeParams = PARAMETER_SET_1) -> bytes:
    """Receiver Secret Key K_a = [(a + z)^-1]P for identifier a (RFC 6508 §6.1.1)."""
    a = _identifier_int(identifier, params)
    s = (a + int(z)) % int(params.q)
    if s == 0:
        raise KeyMaterialError("a + z = 0 mod q: no RSK exists for this identifier")
    return params.curve.encode_point(params.p_table.multiply(invert(s, params.q)))


def _recipient_point(b: int, z_bytes: bytes, params: SakkeParams) -> tuple[int, int]:
    """[b]P + Z for a recipient identifier b."""
    z_point = _decode_point(z_bytes, params, KeyMaterialError, "KMS Public Key Z")
    point = params.curve.add(params.p_table.multiply(b), z_point)
    if point is None:
        raise KeyMaterialError("[b]P + Z is the point at infinity")
    return point


def validate_rsk(
    rsk: bytes, identifier: bytes, kms_public_key: bytes, params: SakkeParams = PARAMETER_SET_1
) -> None:
    """Check a received RSK: <[a]P + Z, K_a> == g (RFC 6508 §6.1.2), and [q]K_a = 0.

    Raises :class:`~mikey.errors.KeyMaterialError` if the RSK does not check out.
    """
    k_point = _decode_point(rsk, params, KeyMaterialError, "RSK")
    a = _identifier_int(identifier, params)
    # [q]K == O  <=>  [q-1]K == -K
    qm1 = params.curve.multiply(int(params.q) - 1, k_point)
    if qm1 != params.curve.neg(k_point):
        raise KeyMaterialError("RSK is not in the order-q subgroup")
    try:
        value = pairing(_recipient_point(a, kms_public_key, params), k_point, params)
    except ValueError:
        raise KeyMaterialError("RSK does not validate (degenerate pairing)") from None
    if value != params.g:
        raise KeyMaterialError("RSK does not validate: <[a]P + Z, K_a> != g (RFC 6508 §6.1.2)")


# ---------------------------------------------------------------------------
# Key exchange (RFC 6508 §6.2)
# ---------------------------------------------------------------------------


def _r_point(
    r: int,
    b: int,
    z_bytes: bytes,
    z_point: tuple[int, int],
    params: SakkeParams,
    table: FixedBaseTable | None = None,
) -> Affine:
    """[r]([b]P + Z): from ``table`` (for [b]P + Z) if given, else as [r*b]P + [r]Z."""
    xs: list[int] = []
    ys: list[int] = []
    if table is not None:
        table.coordinates_for(r, xs, ys)
    else:
        params.p_table.coordinates_for(r * b % int(params.q), xs, ys)
        params.z_table(z_bytes, z_point).coordinates_for(r, xs, ys)
    return params.curve.sum_coordinates(xs, ys)


def encapsulate(
    ssv: bytes | None,
    identifier: bytes,
    kms_public_key: bytes,
    params: SakkeParams = PARAMETER_SET_1,
) -> tuple[bytes, bytes]:
    """Sender side (RFC 6508 §6.2.1): returns ``(SSV, SED)`` with SED = 0x04 || Rx || Ry || H.

    ``ssv`` is normally ``None`` (a random n-bit SSV is drawn); a caller-supplied
    SSV is for known-answer tests.  Only public data is used apart from the SSV.
    """
    if ssv is None:
        ssv = secrets.token_bytes(params.ssv_len)
    elif len(ssv) != params.ssv_len:
        raise CryptoError(f"SSV must be {params.ssv_len} octets")
    b = _identifier_int(identifier, params)
    z_point = _decode_point(kms_public_key, params, KeyMaterialError, "KMS Public Key Z")
    q = int(params.q)
    r = hash_to_integer_range(ssv + identifier, q, params.hash_name)
    if r == 0:
        raise CryptoError("SSV hashes to r = 0; choose another SSV")
    table = params._sender_table(kms_public_key, b, z_point)
    r_point = _r_point(r, b, kms_public_key, z_point, params, table)
    if r_point is None:  # only if [b]P + Z = O, i.e. b = -z
        raise KeyMaterialError("[b]P + Z is the point at infinity")
    g_r = params.g_table.power(r)
    mask = hash_to_integer_range(int_to_bytes(g_r, params.field_len), 1 << params.n_bits, params.hash_name)
    h = int.from_bytes(ssv, "big") ^ mask
    return ssv, params.curve.encode_point(r_point) + int_to_bytes(h, params.ssv_len)


class SakkeReceiver:
    """A Receiver's SAKKE key (RSK, identifier, KMS Public Key) ready for repeated decapsulation.

    The first :meth:`decapsulate` evaluates Miller's loop for the RSK directly;
    the second builds normalised line coefficients (about 0.5 MB) that later
    calls reuse; the third builds the table for the step 5 re-check.  The RSK
    is never shown in ``repr``.
    Validate the RSK once on receipt with :func:`validate_rsk` (or pass
    ``validate=True``).
    """

    __slots__ = (
        "params",
        "identifier",
        "kms_public_key",
        "_b",
        "_z_point",
        "_rsk_point",
        "_base",
        "_lines",
        "_uses",
    )

    def __init__(
        self,
        rsk: bytes,
        identifier: bytes,
        kms_public_key: bytes,
        params: SakkeParams = PARAMETER_SET_1,
        *,
        validate: bool = False,
    ) -> None:
        if validate:
            validate_rsk(rsk, identifier, kms_public_key, params)
        self.params = params
        self.identifier = bytes(identifier)
        self.kms_public_key = bytes(kms_public_key)
        self._b = _identifier_int(identifier, params)
        self._z_point = _decode_point(kms_public_key, params, KeyMaterialError, "KMS Public Key Z")
        self._rsk_point = _decode_point(rsk, params, KeyMaterialError, "RSK")
        self._base: _MillerBase | None = None
        self._lines: _MillerLines | None = None
        self._uses = 0

    def __repr__(self) -> str:
        return f"SakkeReceiver(identifier={self.identifier!r}, params={self.params.name!r})"

    def _recipient_table(self) -> FixedBaseTable | None:
        """The [b]P + Z table for the re-check, if cached; built once, on this receiver's third use.

        It lives in a small process-wide LRU (shared with senders); a receiver whose
        table was evicted does not rebuild it (no thrashing), it uses the P and Z
        tables instead.
        """
        params = self.params
        self._uses += 1
        table = params._recipient_table(self.kms_public_key, self._b)
        if table is None and self._uses == _RECIPIENT_TABLE_AFTER + 1:
            point = params.curve.add(params.p_table.multiply(self._b), self._z_point)
            if point is not None:
                table = params._add_recipient_table(self.kms_public_key, self._b, point)
        return table

    def _pairing_with(self, r_point: tuple[int, int]) -> int:
        """<K_b, R>: evaluated directly on first use; normalised lines are built and kept on the second."""
        params = self.params
        if self._lines is not None:
            a, b = self._lines.evaluate(r_point[0], r_point[1])
        elif self._base is None:
            base = _MillerBase(self._rsk_point, params)
            a, b = base.evaluate_direct(r_point[0], r_point[1])
            self._base = base
        else:
            self._lines = _MillerLines(self._base)
            a, b = self._lines.evaluate(r_point[0], r_point[1])
        return _final_representative(a, b, params.p)

    def decapsulate(self, sed: bytes) -> bytes:
        """Receiver side (RFC 6508 §6.2.2): the SSV, after the mandatory R re-check.

        Raises :class:`~mikey.errors.AuthenticationError` if the SED is malformed or
        the re-check TEST = [r]([b]P + Z) == R fails.
        """
        params = self.params
        flen = params.field_len
        if len(sed) != params.sed_len or sed[0] != 4:
            raise AuthenticationError("SAKKE Encapsulated Data has the wrong length or format")
        r_point = _decode_point(sed[: 2 * flen + 1], params, AuthenticationError, "SAKKE R")
        h = int.from_bytes(sed[2 * flen + 1 :], "big")
        # w = <R, K_b> = <K_b, R> (symmetric on E(F_p)[q]; other R fail step 5)
        try:
            w = self._pairing_with(r_point)
        except ValueError:
            raise AuthenticationError("SAKKE decapsulation failed") from None
        mask = hash_to_integer_range(int_to_bytes(w, flen), 1 << params.n_bits, params.hash_name)
        ssv = int_to_bytes(h ^ mask, params.ssv_len)
        r = hash_to_integer_range(ssv + self.identifier, params.q, params.hash_name)
        test = _r_point(r, self._b, self.kms_public_key, self._z_point, params, self._recipient_table())
        if test != r_point:
            raise AuthenticationError("SAKKE decapsulation failed: R re-check (RFC 6508 §6.2.2 step 5)")
        return ssv


_receivers: BoundedLRU[tuple[Any, ...], SakkeReceiver] = BoundedLRU(_RECEIVER_CACHE_SIZE)


def clear_caches(params: SakkeParams | None = None, *, kms_tables: bool = False) -> None:
    """Forget per-peer precomputation: cached receivers and per-recipient tables of *params*.

    With ``kms_tables`` the KMS Public Key tables go too.  For benchmarks of
    cold operations and for deployments that rotate key material.
    """
    _receivers.clear()
    target = params if params is not None else PARAMETER_SET_1
    target.clear_peer_caches()
    if kms_tables:
        target.clear_kms_tables()


def decapsulate(
    sed: bytes,
    rsk: bytes,
    identifier: bytes,
    kms_public_key: bytes,
    params: SakkeParams = PARAMETER_SET_1,
) -> bytes:
    """Receiver side (RFC 6508 §6.2.2) as a function; keeps a small LRU of :class:`SakkeReceiver`.

    Raises :class:`~mikey.errors.AuthenticationError` when decapsulation fails.
    """
    key = (id(params), bytes(rsk), bytes(identifier), bytes(kms_public_key))
    receiver = _receivers.get_or_create(key, lambda: SakkeReceiver(rsk, identifier, kms_public_key, params))
    return receiver.decapsulate(sed)
