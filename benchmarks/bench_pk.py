"""Public-key costs of the PK, DH and RSA-R modes (RFC 3830 §3.2, §3.3; RFC 4738).

Run:  PYTHONPATH=src python benchmarks/bench_pk.py [--quick]
Prints microseconds per operation (best of several repeats).
"""

from __future__ import annotations

import secrets
import sys
import timeit
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import dh as crypto_dh
from cryptography.hazmat.primitives.asymmetric import rsa

from mikey.crypto import dh
from mikey.crypto import rsa as mrsa

try:
    import gmpy2
except ImportError:  # pragma: no cover
    gmpy2 = None


def bench(label: str, fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=repeat)) / number
    print(f"{label:<52} {best * 1e6:>12.1f} us/op")
    return best


def main(quick: bool = False) -> None:
    scale = 0.2 if quick else 1.0

    def n(count: int) -> int:
        return max(1, int(count * scale))

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key()
    data = secrets.token_bytes(600)  # a typical signed MIKEY message size

    print("RSA-2048 (cryptography / OpenSSL)")
    sig15 = mrsa.sign(key, data, mrsa.S_TYPE_RSA_PKCS1_V15)
    bench("  PKCS#1 v1.5 sign (sha256)", lambda: mrsa.sign(key, data, 0), n(200))
    bench("  PKCS#1 v1.5 verify (sha256)", lambda: mrsa.verify(pub, data, sig15, 0), n(2000))
    sig_pss = mrsa.sign(key, data, mrsa.S_TYPE_RSA_PSS)
    bench("  PSS sign (sha256, salt 32)", lambda: mrsa.sign(key, data, 1), n(200))
    bench("  PSS verify (sha256)", lambda: mrsa.verify(pub, data, sig_pss, 1), n(2000))
    env_key = secrets.token_bytes(32)
    ct = mrsa.encrypt_envelope(pub, env_key)
    bench(
        "  envelope encrypt PKCS#1 v1.5 (32-octet key)", lambda: mrsa.encrypt_envelope(pub, env_key), n(2000)
    )
    bench("  envelope decrypt PKCS#1 v1.5", lambda: mrsa.decrypt_envelope(key, ct), n(200))
    ct_oaep = mrsa.encrypt_envelope(pub, env_key, oaep=True)
    bench("  envelope encrypt OAEP", lambda: mrsa.encrypt_envelope(pub, env_key, oaep=True), n(2000))
    bench("  envelope decrypt OAEP", lambda: mrsa.decrypt_envelope(key, ct_oaep, oaep=True), n(200))

    group = dh.get_group(dh.DH_GROUP_OAKLEY5)
    x = dh.generate_private(group)
    peer = dh.public_value(group, dh.generate_private(group))
    print(f"DH group 5 (OAKLEY 5, 1536-bit, {group.exponent_bits}-bit exponent)")
    bench("  generate_private", lambda: dh.generate_private(group), n(20000))
    bench("  public_value g^x", lambda: dh.public_value(group, x), n(500))
    bench("  shared_secret y^x (TGK)", lambda: dh.shared_secret(group, x, peer), n(500))
    params = crypto_dh.DHParameterNumbers(group.p, group.g)
    their_x = crypto_dh.DHPrivateNumbers(
        x, crypto_dh.DHPublicNumbers(int.from_bytes(dh.public_value(group, x), "big"), params)
    ).private_key()
    their_peer = crypto_dh.DHPublicNumbers(int.from_bytes(peer, "big"), params).public_key()
    bench("  (comparison) cryptography DH exchange, same x", lambda: their_x.exchange(their_peer), n(500))

    p = group.p
    y = int.from_bytes(peer, "big")
    e = secrets.randbits(1536) | (1 << 1535)
    print("Full 1536-bit modexp (random 1536-bit exponent)")
    if gmpy2 is not None:
        gy, ge, gp = gmpy2.mpz(y), gmpy2.mpz(e), gmpy2.mpz(p)
        bench("  gmpy2.powmod", lambda: gmpy2.powmod(gy, ge, gp), n(200))
    bench("  pow (CPython int)", lambda: pow(y, e, p), n(50))
    short = x
    print(f"Short {group.exponent_bits}-bit exponent modexp")
    if gmpy2 is not None:
        bench("  gmpy2.powmod", lambda: gmpy2.powmod(gy, short, gp), n(1000))
    bench("  pow (CPython int)", lambda: pow(y, short, p), n(200))


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
