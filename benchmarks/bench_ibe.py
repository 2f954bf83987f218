"""Micro-benchmarks for the identity-based crypto (ECCSI, SAKKE); prints microseconds per operation.

"cold" = first use for a fresh peer/key (process-wide fixed-base tables already
built, including the KMS Public Key table); "warm" = repeated with cached
per-peer/per-key precomputation (a SakkeReceiver builds its stored Miller lines
on its second decapsulation and its [b]P + Z table on the third; a sender builds
that table on its 16th encapsulation to one recipient; each shown as its own row).  Each row is the best of
several rounds, which matters on a shared machine.
Run: PYTHONPATH=src python benchmarks/bench_ibe.py
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import gmpy2

from mikey.crypto import eccsi, sakke

ROUNDS = 5


def _time(fn: Callable[[], object], number: int) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best * 1e6


def _row(name: str, us: float) -> None:
    print(f"{name:<38} {us:>10.1f} us/op")


def main() -> None:
    params = sakke.PARAMETER_SET_1
    start = time.perf_counter()
    params.warm_up()
    z, z_bytes = sakke.generate_master()
    _row("SAKKE global tables (P, g, Z) build", (time.perf_counter() - start) * 1e6)

    idents = [b"2024-05\x00tel:+4477009%05d\x00" % i for i in range(400)]
    it = iter(idents)
    _row("SAKKE encapsulate (cold)", _time(lambda: sakke.encapsulate(None, next(it), z_bytes), 40))
    ident = idents[-1]
    for _ in range(sakke._SENDER_TABLE_USES - 1):
        sakke.encapsulate(None, ident, z_bytes)
    start = time.perf_counter()
    sakke.encapsulate(None, ident, z_bytes)
    _row(f"SAKKE encapsulate ({sakke._SENDER_TABLE_USES}th, table)", (time.perf_counter() - start) * 1e6)
    _row("SAKKE encapsulate (warm)", _time(lambda: sakke.encapsulate(None, ident, z_bytes), 40))

    rsks = [(i, sakke.issue_rsk(z, i)) for i in idents[: 4 * ROUNDS + ROUNDS]]
    seds = [sakke.encapsulate(None, i, z_bytes)[1] for i, _ in rsks]
    pairs = iter(zip(rsks, seds, strict=True))

    def cold_decap() -> None:
        (i, rsk), sed = next(pairs)
        sakke.SakkeReceiver(rsk, i, z_bytes).decapsulate(sed)

    _row("SAKKE decapsulate (cold)", _time(cold_decap, 4))

    def later_decaps() -> None:
        (i, rsk), sed = next(pairs)
        receiver = sakke.SakkeReceiver(rsk, i, z_bytes)
        receiver.decapsulate(sed)
        for times in (second, third):
            start = time.perf_counter()
            receiver.decapsulate(sed)
            times.append(time.perf_counter() - start)

    second: list[float] = []
    third: list[float] = []
    for _ in range(ROUNDS):
        later_decaps()
    _row("SAKKE decapsulate (2nd, builds lines)", min(second) * 1e6)
    _row("SAKKE decapsulate (3rd, [b]P+Z table)", min(third) * 1e6)
    receiver = sakke.SakkeReceiver(rsks[0][1], rsks[0][0], z_bytes)
    for _ in range(3):
        receiver.decapsulate(seds[0])
    _row("SAKKE decapsulate (warm)", _time(lambda: receiver.decapsulate(seds[0]), 20))

    kms = eccsi.KmsEccsiKeys.generate()
    ssk, pvt = kms.issue_ssk(b"alice")
    signer = eccsi.EccsiSigner(ssk, pvt, b"alice", kms.kpak)
    _row("ECCSI sign", _time(lambda: signer.sign(b"message"), 500))
    sig = signer.sign(b"message")

    def cold_verify() -> None:
        eccsi._peers.clear()
        eccsi.verify(b"message", sig, b"alice", kms.kpak)

    _row("ECCSI verify (cold)", _time(cold_verify, 300))
    _row("ECCSI verify (warm)", _time(lambda: eccsi.verify(b"message", sig, b"alice", kms.kpak), 500))

    m = gmpy2.mpz(secrets.randbits(1024) | (1 << 1023) | 1)
    b, e = gmpy2.mpz(secrets.randbits(1024)), gmpy2.mpz(secrets.randbits(1024))
    _row("1024-bit modexp (gmpy2.powmod)", _time(lambda: gmpy2.powmod(b, e, m), 200))


if __name__ == "__main__":
    main()
