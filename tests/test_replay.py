"""Replay cache (RFC 3830 §5.4): remembered for the skew window, bounded, counters per peer."""

from __future__ import annotations

import pytest

from mikey.errors import InvalidTimestampError, ReplayError
from mikey.replay import ReplayCache


def test_replay_rejected_inside_window_and_forgotten_after() -> None:
    cache = ReplayCache()
    key = cache.check(b"msg-1", now=100.0)
    cache.add(b"msg-1", now=100.0, expires=400.0, key=key)
    with pytest.raises(ReplayError):
        cache.check(b"msg-1", now=399.0)
    cache.check(b"msg-2", now=399.0)  # another message is fine
    assert len(cache) == 1
    cache.check(b"msg-1", now=400.5)  # its window has passed: purged
    assert len(cache) == 0


def test_key_from_check_equals_hash() -> None:
    cache = ReplayCache()
    assert cache.check(b"abc", now=0.0) == ReplayCache.key_for(b"abc")


def test_overflow_refuses_until_forgotten_window_passes() -> None:
    """A full cache forgets its oldest entry and refuses everything until that entry's window ends."""
    cache = ReplayCache(max_entries=2)
    cache.add(b"a", now=0.0, expires=100.0)
    cache.add(b"b", now=0.0, expires=200.0)
    cache.add(b"c", now=0.0, expires=300.0)  # forgets "a", which could now be replayed undetected
    assert len(cache) == 2
    with pytest.raises(ReplayError, match="overflowed"):
        cache.check(b"a", now=50.0)
    with pytest.raises(ReplayError, match="overflowed"):
        cache.check(b"fresh", now=99.0)
    cache.check(b"fresh", now=100.5)  # "a" would be outside its window now anyway
    with pytest.raises(ReplayError, match="already received"):
        cache.check(b"b", now=150.0)


def test_counters_increase_per_peer() -> None:
    cache = ReplayCache()
    cache.check_counter(b"alice", 5)
    cache.add_counter(b"alice", 5)
    with pytest.raises(InvalidTimestampError):
        cache.check_counter(b"alice", 5)
    with pytest.raises(InvalidTimestampError):
        cache.check_counter(b"alice", 4)
    cache.check_counter(b"alice", 6)
    cache.check_counter(b"bob", 1)  # counters are per peer
    cache.add_counter(b"alice", 3)  # never goes backwards
    with pytest.raises(InvalidTimestampError):
        cache.check_counter(b"alice", 5)
