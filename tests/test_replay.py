"""Replay cache (RFC 3830 §5.4): remembered for the skew window, atomic, bounded without locking honest
peers out (the skew shrinks as it fills), and per-peer COUNTER state that is bounded and does not wrap."""

from __future__ import annotations

import pytest

from mikey.constants import EncrAlg, MacAlg
from mikey.crypto import kemac as kemac_crypto
from mikey.errors import AuthenticationError, InvalidTimestampError, ReplayError
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.replay import MAX_COUNTER, ReplayCache, ReplayStore
from mikey.wire import IdPayload, KemacPayload, Message, TimestampPayload

NOW = 1_700_000_000.0
PSK = bytes(range(16))
SKEW = 300.0


def _k(name: str) -> bytes:
    return ReplayCache.key_for(name.encode())


def test_replay_rejected_inside_window_and_forgotten_after() -> None:
    cache = ReplayCache()
    cache.check(_k("msg-1"), 100.0, now=100.0)
    cache.add(_k("msg-1"), 100.0, now=100.0, skew=SKEW)
    with pytest.raises(ReplayError, match="already received"):
        cache.check(_k("msg-1"), 100.0, now=399.0)
    cache.check(_k("msg-2"), 399.0, now=399.0)  # another message is fine
    assert len(cache) == 1
    cache.add(_k("msg-2"), 500.0, now=500.0, skew=SKEW)  # msg-1's window (and margin) has passed: purged
    assert len(cache) == 1
    # its timestamp is now at or below the floor: a replay stays refused even by a wider window
    with pytest.raises(ReplayError, match="forgotten"):
        cache.check(_k("msg-1"), 100.0, now=500.0)


def test_key_is_sha256_and_interface_is_abstract() -> None:
    assert ReplayCache.key_for(b"abc").hex().startswith("ba7816bf")  # SHA-256("abc"), FIPS 180-2 B.1
    assert isinstance(ReplayCache(), ReplayStore)
    with pytest.raises(TypeError):
        ReplayStore()  # type: ignore[abstract]


def test_add_is_atomic_set_if_absent() -> None:
    """Two copies may both pass the pre-check; only the first add succeeds (RFC 3830 §5.4)."""
    cache = ReplayCache()
    cache.check(_k("m"), NOW, NOW)
    cache.check(_k("m"), NOW, NOW)  # the pre-check changes nothing
    cache.add(_k("m"), NOW, NOW, skew=SKEW)
    with pytest.raises(ReplayError, match="already received"):
        cache.add(_k("m"), NOW, NOW, skew=SKEW)
    assert len(cache) == 1


def test_effective_skew_shrinks_as_the_cache_fills() -> None:
    cache = ReplayCache(max_entries=100)
    values = {}
    for n in range(101):
        values[n] = cache.effective_skew(SKEW, NOW)
        if n < 100:
            cache.add(_k(f"m{n}"), NOW + n * 0.01, NOW, skew=SKEW)
    assert values[0] == values[50] == SKEW  # up to half full: the configured skew
    assert values[75] == pytest.approx(150.0)  # then linearly less
    assert values[90] == pytest.approx(60.0)
    assert values[100] == 10.0  # min_skew when full
    assert cache.effective_skew(4.0, NOW) == 4.0  # never more than the configured skew
    # expired entries do not count: once they are gone the full window is back
    assert cache.effective_skew(SKEW, NOW + SKEW + 2) == SKEW


def test_full_cache_admits_newer_messages_and_never_an_evicted_one() -> None:
    cache = ReplayCache(max_entries=3)
    for i in range(3):
        cache.add(_k(f"m{i}"), NOW + i, NOW + 3, skew=SKEW)
    with pytest.raises(ReplayError, match="full of newer"):
        cache.check(_k("older"), NOW - 1, NOW + 3)
    with pytest.raises(ReplayError, match="full of newer"):
        cache.add(_k("older"), NOW - 1, NOW + 3, skew=SKEW)
    cache.add(_k("fresh"), NOW + 3, NOW + 3, skew=SKEW)  # evicts m0, the oldest
    assert len(cache) == 3
    with pytest.raises(ReplayError, match="forgotten"):
        cache.add(_k("m0"), NOW, NOW + 3, skew=SKEW)
    with pytest.raises(ReplayError, match="already received"):
        cache.add(_k("m1"), NOW + 1, NOW + 3, skew=SKEW)


def test_cache_shared_by_windows_of_different_widths() -> None:
    """A message forgotten by a narrow window (10 s) cannot be replayed to a wide one (300 s) sharing the cache."""
    cache = ReplayCache()
    cache.add(_k("m"), NOW, NOW, skew=10.0)
    cache.add(_k("n"), NOW + 20, NOW + 20, skew=10.0)  # "m" is past its 10 s window: purged
    assert len(cache) == 1
    with pytest.raises(ReplayError):
        cache.add(_k("m"), NOW, NOW + 20, skew=SKEW)
    # once a wide window has been used, entries are kept that long
    cache.add(_k("o"), NOW + 20, NOW + 20, skew=SKEW)
    cache.add(_k("p"), NOW + 200, NOW + 200, skew=10.0)
    with pytest.raises(ReplayError, match="already received"):
        cache.add(_k("o"), NOW + 20, NOW + 200, skew=SKEW)


def test_parameters_are_checked() -> None:
    for kw in ({"max_entries": 0}, {"shrink_from": 1.5}, {"min_skew": float("nan")}, {"max_counter_peers": 0}):
        with pytest.raises(ValueError):
            ReplayCache(**kw)  # type: ignore[arg-type]


# --- the Responder with a full cache ----------------------------------------------------------


def _psk_message(when: float, n: int) -> bytes:
    init = PskInitiator(PSK, csb_id=n, id_i=IdPayload.uri("sip:alice@example.com"))
    return init.create_message(when)


def test_full_cache_keeps_an_honest_peer_working() -> None:
    """RFC 3830 §5.4: a filled cache shrinks the skew instead of refusing everyone (old code: 'overflowed'
    for a whole skew interval).  Replays stay refused, whether still cached or evicted."""
    cache = ReplayCache(max_entries=100)
    now = NOW + 5
    flood = [_psk_message(NOW + i * 0.05, i) for i in range(100)]  # authenticated, within 5 s of now
    for m in flood:
        assert PskResponder(PSK, replay_cache=cache).receive(m, now).result.authenticated
    assert len(cache) == 100 and cache.effective_skew(SKEW, now) == 10.0
    honest = _psk_message(now, 1000)
    assert PskResponder(PSK, replay_cache=cache).receive(honest, now).result.authenticated
    with pytest.raises(ReplayError, match="forgotten"):  # flood[0] was evicted to make room
        PskResponder(PSK, replay_cache=cache).receive(flood[0], now + 1)
    with pytest.raises(ReplayError, match="already received"):  # still cached
        PskResponder(PSK, replay_cache=cache).receive(flood[50], now + 1)
    with pytest.raises(ReplayError, match="already received"):
        PskResponder(PSK, replay_cache=cache).receive(honest, now + 1)
    # the shrunk window: a message 60 s old passes an empty cache's 300 s skew but not this one
    stale = _psk_message(now - 60, 2000)
    with pytest.raises(InvalidTimestampError, match="allowed skew is 10 s") as ei:
        PskResponder(PSK, replay_cache=cache).receive(stale, now)
    assert ei.value.err_no == 1
    assert PskResponder(PSK, replay_cache=ReplayCache()).receive(stale, now).result.authenticated


# --- COUNTER timestamps (TS type 2) -----------------------------------------------------------


def test_counter_check_does_not_mutate_and_add_is_compare_and_set() -> None:
    cache = ReplayCache()
    for _ in range(3):
        cache.check_counter(b"alice", MAX_COUNTER)  # only add_counter moves a counter
    cache.add_counter(b"alice", 5)
    cache.check_counter(b"alice", 6)
    for bad in (5, 4):
        with pytest.raises(InvalidTimestampError, match="not larger than the last accepted"):
            cache.check_counter(b"alice", bad)
        with pytest.raises(InvalidTimestampError):
            cache.add_counter(b"alice", bad)
    cache.check_counter(b"bob", 1)  # counters are per peer
    cache.add_counter(b"alice", 6)
    with pytest.raises(InvalidTimestampError):
        cache.add_counter(b"alice", 6)


def test_counter_does_not_wrap_around() -> None:
    """TS type 2 is 32 bits (RFC 3830 §6.6) and no wrap-around is defined: after 2^32-1, the peer must rekey."""
    cache = ReplayCache()
    cache.add_counter(b"alice", MAX_COUNTER)
    for after_wrap in (0, 1, 6):
        with pytest.raises(InvalidTimestampError, match="does not wrap around"):
            cache.check_counter(b"alice", after_wrap)
    with pytest.raises(InvalidTimestampError, match="32 bits"):
        cache.add_counter(b"bob", MAX_COUNTER + 1)
    cache.forget_counter(b"alice")  # after alice's key changed
    cache.add_counter(b"alice", 0)


def test_counter_table_is_bounded() -> None:
    cache = ReplayCache(max_counter_peers=1000)
    for n in range(20_000):  # counters grow, so no new peer falls below an evicted peer's mark
        cache.add_counter(b"peer-%d" % n, n + 1)
    assert cache.counter_peers == 1000


def test_evicted_peer_is_held_to_its_high_water_mark() -> None:
    """An evicted peer's old messages stay refused; a new peer in the same bucket counts past the mark."""
    cache = ReplayCache(max_counter_peers=2, counter_buckets=1)
    cache.add_counter(b"alice", 10)
    cache.add_counter(b"bob", 5)
    cache.add_counter(b"carol", 3)  # alice was least recently advanced: evicted, mark 10
    assert cache.counter_peers == 2
    with pytest.raises(InvalidTimestampError, match="forgotten peers"):
        cache.check_counter(b"alice", 10)  # a replay of her last message
    with pytest.raises(InvalidTimestampError, match="forgotten peers"):
        cache.check_counter(b"dave", 7)
    cache.check_counter(b"dave", 12)
    cache.add_counter(b"bob", 6)  # bob is still tracked: only his own counter matters
    cache.add_counter(b"alice", 11)  # evicts carol
    with pytest.raises(InvalidTimestampError, match="forgotten peers"):
        cache.add_counter(b"carol", 4)


def _counter_message(counter: int, peer: str, *, psk: bytes = PSK) -> bytes:
    """An authenticated PSK I_MESSAGE with a COUNTER timestamp, its MAC recomputed over the new T
    (AES-KW: the key data's encryption does not depend on T)."""
    init = PskInitiator(psk, id_i=IdPayload.uri(peer), csb_id=counter & 0xFFFF, encr_alg=EncrAlg.AES_KW_128)
    msg = Message.decode(init.create_message(NOW)).replace_payload(0, TimestampPayload.counter(counter))
    draft = msg.encode()
    kemac = msg.find(KemacPayload)
    assert kemac is not None
    n = len(draft) - len(kemac.mac)
    keys = init.transport.keys(psk, init.csb_id, init.rand)
    return draft[:n] + kemac_crypto.compute_mac(MacAlg.HMAC_SHA_1_160, keys.auth_key, draft[:n])


def test_responder_counters_are_per_peer_bounded_and_never_wrap() -> None:
    cache = ReplayCache(max_counter_peers=50)
    for n in range(200):  # authenticated peers beyond the table's bound
        assert PskResponder(PSK, replay_cache=cache).receive(_counter_message(n + 1, f"sip:u{n}@x"), NOW).result
    assert cache.counter_peers == 50
    alice = "sip:alice@example.com"
    assert PskResponder(PSK, replay_cache=cache).receive(_counter_message(MAX_COUNTER, alice), NOW).result
    with pytest.raises(InvalidTimestampError, match="does not wrap around") as ei:
        PskResponder(PSK, replay_cache=cache).receive(_counter_message(0, alice), NOW + 1000)
    assert ei.value.err_no == 1 and ei.value.error_message is not None
    # a message with a bad MAC is refused before it could move a counter (1000: above any evicted peer's mark)
    bob = "sip:bob@example.com"
    forged = bytearray(_counter_message(1001, bob))
    forged[-1] ^= 1
    with pytest.raises(AuthenticationError):
        PskResponder(PSK, replay_cache=cache).receive(bytes(forged), NOW)
    assert PskResponder(PSK, replay_cache=cache).receive(_counter_message(1000, bob), NOW).result
