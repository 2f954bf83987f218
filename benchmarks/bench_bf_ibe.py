"""Micro-benchmarks for Boneh-Franklin IBE (RFC 5091 §5), with the SAKKE pairing as the baseline.

Prints microseconds per operation for the RFC 5091 security parameter 2048
(a 1024-bit p, 224-bit q, SHA-224: the parameter set whose p matches MIKEY-SAKKE
Parameter Set 1), next to the SAKKE pairing (RFC 6508 §3.2, 1024-bit p and
q) and a 1024-bit modexp measured in the same run.  "cold" = first use for an
identity or key (the per-parameter tables for P and P_pub already built);
"warm" = repeated (e'(P_pub, Q_id) cached per identity for encryption, the
Miller lines of S_id kept by the private key for decryption).  Each row is the
best of several rounds of CPU time (``time.process_time``), which moves much less
than wall time on a shared, loaded machine.
Run: PYTHONPATH=src python benchmarks/bench_bf_ibe.py [--security 1024|2048|3072]
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import time
from collections.abc import Callable

import gmpy2

from mikey.crypto import ibe, sakke
from mikey.crypto._type1 import MillerLines

ROUNDS = 5


def _time(fn: Callable[[], object], number: int, rounds: int = ROUNDS) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(number):
            fn()
        best = min(best, (time.process_time() - start) / number)
    return best * 1e6


def _row(name: str, us: float) -> None:
    print(f"{name:<44} {us:>10.1f} us/op (CPU)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--security", type=int, default=2048, choices=sorted(ibe.SECURITY_LEVELS))
    args = parser.parse_args()
    p_bits, q_bits, hash_name = ibe.SECURITY_LEVELS[args.security]
    print(f"BF-IBE, RFC 5091 security {args.security}: p {p_bits} bits, q {q_bits} bits, {hash_name}")

    _row("BF setup (BFsetup1: primes, P, s, P_pub)", _time(lambda: ibe.bf_setup(args.security), 1, 3))
    params, master = ibe.bf_setup(args.security)
    start = time.process_time()
    params.warm_up()
    _row("BF tables for P and P_pub (once per params)", (time.process_time() - start) * 1e6)

    counter = iter(range(10**9))

    today = dt.date.today()

    def fresh_identity() -> bytes:
        return ibe.period_identity(b"tel:+44770090%04d" % next(counter), today)

    _row(
        "BF derive public key (HashToPoint1)",
        _time(lambda: ibe.bf_derive_public(params, fresh_identity()), 10),
    )
    _row("BF extract (BFextractPriv)", _time(lambda: ibe.bf_extract(master, fresh_identity()), 10))

    message = secrets.token_bytes(160)  # about an IBAKE payload: two identities and EC points
    _row(
        "BF encrypt 160 octets (cold identity)",
        _time(lambda: ibe.bf_encrypt(params, fresh_identity(), message), 10),
    )
    bob = fresh_identity()
    ibe.bf_encrypt(params, bob, message)
    _row("BF encrypt 160 octets (warm identity)", _time(lambda: ibe.bf_encrypt(params, bob, message), 20))

    keys = [ibe.bf_extract(master, bob) for _ in range(ROUNDS)]
    ciphertext = ibe.bf_encrypt(params, bob, message)
    key_iter = iter(keys)
    _row(
        "BF decrypt (cold key: builds Miller lines)",
        _time(lambda: ibe.bf_decrypt(params, next(key_iter), ciphertext), 1),
    )
    key = keys[0]
    _row("BF decrypt (warm key)", _time(lambda: ibe.bf_decrypt(params, key, ciphertext), 20))
    encoded = ciphertext.encode(params)
    _row(
        "BF ciphertext decode (U on curve, order q)",
        _time(lambda: ibe.BfCiphertext.decode(encoded, params), 50),
    )

    q_id = ibe.bf_derive_public(params, bob)
    _row("BF pairing e'(P, Q) (one-off)", _time(lambda: ibe.pairing(params, params.point_p, q_id), 10))
    lines = MillerLines(params.curve, params.point_p_pub)
    _row("BF pairing, stored lines for the first point", _time(lambda: lines.pairing(q_id), 10))
    value = lines.miller_value(q_id)
    _row("BF pairing final exponentiation alone", _time(lambda: params.curve.final_exponentiation(value), 10))

    sp = sakke.PARAMETER_SET_1
    _row("SAKKE pairing <P, P> (RFC 6508, baseline)", _time(lambda: sakke.pairing(sp.point_p, sp.point_p), 5))
    m = gmpy2.mpz(secrets.randbits(1024) | (1 << 1023) | 1)
    b, e = gmpy2.mpz(secrets.randbits(1024)), gmpy2.mpz(secrets.randbits(1024))
    _row("1024-bit modexp (gmpy2.powmod)", _time(lambda: gmpy2.powmod(b, e, m), 200))


if __name__ == "__main__":
    main()
