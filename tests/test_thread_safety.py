"""Caches shared across threads (per-peer ECCSI values, SAKKE receivers and tables) never race:
concurrent use with constant eviction raises nothing and gives the same answers as serial use.
Responders sharing one replay cache accept each I_MESSAGE once (atomic check-and-insert, RFC 3830
§5.4), and one Responder object takes one I_MESSAGE however many threads call it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from pki import NOW as PKI_NOW
from pki import TwoPartyPki, two_party_pki
from twoparty import race

from mikey._lru import BoundedLRU
from mikey.crypto import eccsi
from mikey.errors import MikeyError, ReplayError, StateError
from mikey.modes.base import Responder, ResponderFactory, ResponderOutcome
from mikey.modes.dh import DhInitiator, DhResponder
from mikey.modes.pk import PkInitiator, PkResponder
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.replay import ReplayCache

NOW = PKI_NOW.timestamp()
PSK = bytes(range(16))


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


# --- Responders and the replay cache under threads ------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> TwoPartyPki:
    return two_party_pki("Thread Test Root")


def _i_messages(pki: TwoPartyPki, mode: str, n: int) -> tuple[list[bytes], ResponderFactory[Responder]]:
    if mode == "psk":
        return [PskInitiator(PSK).create_message(NOW) for _ in range(n)], ResponderFactory(PskResponder, PSK)
    if mode == "pk":
        msgs = [PkInitiator(pki.a, pki.bob.cert, validator=pki.validator).create_message(NOW) for _ in range(n)]
        return msgs, ResponderFactory(PkResponder, pki.b, pki.validator)
    msgs = [DhInitiator(pki.a, pki.validator).create_message(NOW) for _ in range(n)]
    return msgs, ResponderFactory(DhResponder, pki.b, pki.validator)


@pytest.mark.parametrize("mode,rounds", [("psk", 150), ("pk", 25), ("dh", 25)])
def test_same_i_message_accepted_once_by_responders_sharing_a_cache(
    pki: TwoPartyPki, busy_switching: None, mode: str, rounds: int
) -> None:
    """8 threads, one I_MESSAGE per round: exactly one Responder gets keys, the others a silent ReplayError
    (old code: check and insert took the lock separately, and 1-8 copies were accepted)."""
    messages, factory = _i_messages(pki, mode, rounds)
    for r, round_outcomes in enumerate(race(messages, lambda _k: factory(), 8, NOW)):
        accepted = [o for o in round_outcomes if isinstance(o, ResponderOutcome)]
        refused = [o for o in round_outcomes if isinstance(o, ReplayError)]
        assert (len(accepted), len(refused)) == (1, 7), (r, round_outcomes)
        assert all(e.error_message is None for e in refused)
        assert accepted[0].result.authenticated


def test_one_responder_shared_by_threads_takes_one_message(pki: TwoPartyPki, busy_switching: None) -> None:
    """4 threads, 4 different I_MESSAGEs, one PkResponder: one exchange, the others refused with StateError at
    once (old code: 2-4 were accepted and ``result`` held whichever finished last)."""
    for _ in range(10):
        messages = [PkInitiator(pki.a, pki.bob.cert, validator=pki.validator).create_message(NOW) for _ in range(4)]
        shared = PkResponder(pki.b, pki.validator)
        barrier = threading.Barrier(4)
        outcomes: list[object] = [None] * 4

        def worker(k: int, shared: PkResponder = shared, barrier: threading.Barrier = barrier,
                   outcomes: list[object] = outcomes, messages: list[bytes] = messages) -> None:
            barrier.wait()
            try:
                outcomes[k] = shared.receive(messages[k], NOW)
            except MikeyError as exc:
                outcomes[k] = exc

        pool = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        accepted = [o for o in outcomes if isinstance(o, ResponderOutcome)]
        assert len(accepted) == 1 and all(isinstance(o, StateError) for o in outcomes if o is not accepted[0])
        assert shared.result is accepted[0].result
        assert len(shared.replay_cache) == 1  # the refused messages were never processed


def test_responder_factory_makes_one_responder_per_exchange() -> None:
    factory = ResponderFactory(PskResponder, PSK, own_ssrcs=[0x2222])
    a, b = factory(), factory()
    assert a is not b and a.replay_cache is b.replay_cache is factory.replay_cache
    assert a.own_ssrcs == [0x2222]
    assert PSK.hex() not in repr(factory) and repr(factory) == "ResponderFactory(PskResponder)"
    msg = PskInitiator(PSK).create_message(NOW)
    assert factory.receive(msg, NOW).result.authenticated
    with pytest.raises(ReplayError):
        factory.receive(msg, NOW + 1)
    shared = ReplayCache()
    assert ResponderFactory(PskResponder, PSK, replay_cache=shared)().replay_cache is shared


def test_responder_takes_one_message_even_after_a_non_mikey_failure() -> None:
    """The claim is never given back: a Responder cannot be reused however its first message ended."""
    responder = PskResponder(PSK)
    with pytest.raises(TypeError):
        responder.receive(None, NOW)  # type: ignore[arg-type]
    with pytest.raises(StateError, match="already taken a message"):
        responder.receive(PskInitiator(PSK).create_message(NOW), NOW)
