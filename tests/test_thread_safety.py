"""Caches shared across threads (per-peer ECCSI values, SAKKE receivers and tables) never race:
concurrent use with constant eviction raises nothing and gives the same answers as serial use."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from mikey._lru import BoundedLRU
from mikey.crypto import eccsi


def test_bounded_lru_under_contention() -> None:
    lru: BoundedLRU[int, int] = BoundedLRU(8)
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            for i in range(3000):
                k = (seed * 7919 + i) % 50
                v = lru.get_or_create(k, lambda k=k: k * k)  # type: ignore[misc]
                assert v == k * k
                if i % 97 == 0:
                    lru.pop(k)
        except BaseException as e:  # noqa: BLE001 - collected and re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(lru) <= 8


def test_lru_evicts_least_recently_used() -> None:
    lru: BoundedLRU[str, int] = BoundedLRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # "a" is now the most recent
    lru.put("c", 3)
    assert "b" not in lru and lru.get("a") == 1 and lru.get("c") == 3


def test_concurrent_eccsi_verify_with_eviction() -> None:
    kms = eccsi.KmsEccsiKeys.generate()
    signers = []
    for n in range(300):  # more distinct signers than the per-peer cache holds (256)
        ident = f"sip:user{n}@example.org".encode()
        ssk, pvt = kms.issue_ssk(ident)
        signers.append((ident, eccsi.sign(b"message %d" % n, ssk, pvt, ident, kms.kpak)))
    eccsi.clear_caches()

    def check(i: int) -> bool:
        ident, sig = signers[i % len(signers)]
        eccsi.verify(b"message %d" % (i % len(signers)), sig, ident, kms.kpak)
        return True

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(check, range(900)))
