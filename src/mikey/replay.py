"""Replay protection for Responders (RFC 3830 §5.4): the replay-cache interface and the in-process cache.

A Responder remembers every successfully authenticated message while its
timestamp is within the allowable clock skew; a message seen again in that
window is a replay and is discarded.  COUNTER timestamps (TS type 2) carry no
time: such a message is remembered from its arrival, and beyond that window the
last counter accepted from its peer keeps it out.  Only authenticated messages
are remembered (RFC 3830 §5.3), so only they can fill the cache or move a counter.

Each message is handled in two steps, so that concurrent copies of one message
are accepted exactly once:

* before authentication, :meth:`ReplayStore.check` / :meth:`ReplayStore.check_counter`
  refuse what is already known, to save a MAC or signature check.  They change
  nothing and are not authoritative: two copies may both pass them.
* after authentication, :meth:`ReplayStore.add` (set-if-absent) /
  :meth:`ReplayStore.add_counter` (compare-and-set) are atomic and are the
  decision: the copy whose ``add`` fails raises :class:`ReplayError` (or
  :class:`InvalidTimestampError` for a counter) and gets no keys.

A store shared by several processes implements the same interface, e.g. on
Redis: ``SET key 1 NX`` with the window as its time to live, and a small script
for the counter compare-and-set.

The in-process :class:`ReplayCache` is bounded; see its docstring for what it
does when full (RFC 3830 §5.4 lets the allowed skew shrink as the cache fills)
and for the COUNTER rules (32 bits, no wrap-around; a bounded per-peer table).
"""

from __future__ import annotations

import hashlib
import heapq
import math
import os
import threading
from abc import ABC, abstractmethod

from .errors import InvalidTimestampError, ReplayError

__all__ = ["ReplayStore", "ReplayCache", "DEFAULT_CLOCK_SKEW", "MAX_COUNTER"]

#: Default allowable clock skew in seconds (RFC 3830 §5.4 leaves it to local policy).
DEFAULT_CLOCK_SKEW = 300.0

#: The largest COUNTER timestamp: TS type 2 is 32 bits (RFC 3830 §6.6) and does not wrap.
MAX_COUNTER = 0xFFFFFFFF

# Entries stay this much longer than the widest window, so that float rounding at the
# window's edge can never let a forgotten message back in.
_FORGET_MARGIN = 1.0
# Timestamps are recomputed in floating point for every copy of a message; a copy is
# compared with the floor with this much slack (far above the rounding error, far below
# any real difference between two messages' times).
_FLOOR_GUARD = 1e-3


class ReplayStore(ABC):
    """The replay-cache interface a Responder uses (RFC 3830 §5.4).

    Message keys come from :meth:`key_for`; ``when`` is the message's timestamp
    (Unix seconds) and ``skew`` the Responder's configured allowable clock skew.
    """

    @staticmethod
    def key_for(data: bytes) -> bytes:
        """The key a message is remembered under: SHA-256 of its bytes as received."""
        return hashlib.sha256(data).digest()

    def effective_skew(self, skew: float, now: float) -> float:
        """The allowable clock skew to apply now, at most *skew* (a store may shrink it as it fills)."""
        return skew

    @abstractmethod
    def check(self, key: bytes, when: float, now: float) -> None:
        """Before authentication: raise :class:`ReplayError` if the message is known. Changes nothing."""

    @abstractmethod
    def add(self, key: bytes, when: float, now: float, *, skew: float) -> None:
        """After authentication, atomically: remember the message, or raise :class:`ReplayError` if known."""

    @abstractmethod
    def check_counter(self, peer: bytes, counter: int) -> None:
        """Before authentication: raise :class:`InvalidTimestampError` unless *counter* is new. Changes nothing."""

    @abstractmethod
    def add_counter(self, peer: bytes, counter: int) -> None:
        """After authentication, atomically: advance *peer*'s counter, or raise :class:`InvalidTimestampError`."""


class ReplayCache(ReplayStore):
    """The in-process replay cache: bounded, thread-safe.

    **Messages.**  At most ``max_entries`` are kept, each until its timestamp is
    older than the widest skew any Responder used with this cache.  Whatever the
    cache forgets -- expired or evicted -- raises a *floor*: messages whose
    timestamp is not newer than the floor are refused.  Invariant: every
    remembered message newer than the floor is in the cache, so **a replay is
    never accepted** (same bytes, same key and same timestamp: either the key is
    present or the timestamp is at or below the floor).

    As the cache fills past ``shrink_from`` (a fraction of ``max_entries``),
    :meth:`effective_skew` shrinks the allowed clock skew linearly, down to
    ``min_skew`` when full (RFC 3830 §5.4), so that a flood cannot place its
    messages far from the present.  When the cache is full, adding a message
    evicts the one with the oldest timestamp, and only a message newer than
    that one is admitted.  Hence **an honest fresh message is accepted** as
    long as its timestamp is within the (shrunk) window and newer than the
    oldest message in the cache; expired entries never raise the floor above
    ``now - skew``.  Evictions never refuse anything else: unlike the RFC's
    fallback for a host that loses track, the cache does not refuse all
    messages for a skew interval.

    **Counters** (TS type 2, 32 bits, RFC 3830 §6.6): each peer's counter must
    grow; it does not wrap around (the RFC defines no wrap, and comparing
    serial numbers modulo 2^32 would let old messages back in), so a peer that
    reaches ``MAX_COUNTER`` must change keys, after which
    :meth:`forget_counter` may clear its entry.  At most ``max_counter_peers``
    peers are tracked; the least recently advanced is evicted, and its last
    counter is folded into a high-water mark of one of ``counter_buckets``
    buckets (chosen by a keyed hash of the peer).  A peer the table does not
    know must exceed its bucket's mark, so an evicted peer's old messages stay
    refused; the price is that a new or returning peer may have to count past
    the marks of peers evicted into its bucket.
    """

    # Rarely changed state starts as class attributes: a Responder made per exchange makes a cache too.
    _floor = float("-inf")  # the newest timestamp forgotten
    _horizon = 0.0  # the widest skew used with this cache
    _bucket_key: bytes | None = None

    def __init__(
        self,
        max_entries: int = 100_000,
        *,
        shrink_from: float = 0.5,
        min_skew: float = 10.0,
        max_counter_peers: int = 10_000,
        counter_buckets: int = 4096,
    ) -> None:
        if max_entries < 1 or max_counter_peers < 1 or counter_buckets < 1:
            raise ValueError("max_entries, max_counter_peers and counter_buckets must be at least 1")
        if not 0.0 <= shrink_from <= 1.0:
            raise ValueError("shrink_from is a fraction of max_entries, from 0 to 1")
        if not min_skew >= 0.0:
            raise ValueError("min_skew must be a non-negative number of seconds")
        self.max_entries = max_entries
        self.shrink_from = shrink_from
        self.min_skew = min_skew
        self.max_counter_peers = max_counter_peers
        self.counter_buckets = counter_buckets
        self._seen: dict[bytes, float] = {}  # key -> timestamp
        self._by_time: list[tuple[float, bytes]] = []  # heap of (timestamp, key), the same entries
        self._counters: dict[bytes, int] = {}  # peer -> last counter; insertion order = recency
        self._counter_marks: dict[int, int] = {}  # bucket -> highest counter of an evicted peer
        self._lock = threading.Lock()

    # -- messages ---------------------------------------------------------------------------------

    def _forget_expired(self, now: float) -> None:
        limit = now - self._horizon - _FORGET_MARGIN
        heap = self._by_time
        while heap and heap[0][0] < limit:
            when, key = heapq.heappop(heap)
            del self._seen[key]
            if when > self._floor:
                self._floor = when

    def effective_skew(self, skew: float, now: float) -> float:
        """*skew* while the cache is at most ``shrink_from`` full, then linearly less, ``min_skew`` when full."""
        start = self.shrink_from * self.max_entries
        if len(self._seen) <= start or not math.isfinite(skew):
            return skew  # (a skew that is not finite is refused by the timestamp check)
        with self._lock:
            self._forget_expired(now)
            n = len(self._seen)
        if n <= start:
            return skew
        return max(min(self.min_skew, skew), skew * (self.max_entries - n) / (self.max_entries - start))

    def _refuse(self, key: bytes, when: float) -> None:
        if key in self._seen:
            raise ReplayError("message already received (replay)")
        if when <= self._floor + _FLOOR_GUARD:
            raise ReplayError("message is not newer than what the replay cache has forgotten (RFC 3830 §5.4)")
        if len(self._seen) >= self.max_entries and when <= self._by_time[0][0] + _FLOOR_GUARD:
            raise ReplayError("replay cache is full of newer messages (RFC 3830 §5.4)")

    def check(self, key: bytes, when: float, now: float) -> None:
        with self._lock:
            if len(self._seen) >= self.max_entries:
                self._forget_expired(now)
            self._refuse(key, when)

    def add(self, key: bytes, when: float, now: float, *, skew: float) -> None:
        with self._lock:
            if skew > self._horizon:
                self._horizon = skew
            if self._by_time and self._by_time[0][0] < now - self._horizon - _FORGET_MARGIN:
                self._forget_expired(now)
            self._refuse(key, when)
            if len(self._seen) >= self.max_entries:
                oldest, old_key = heapq.heappop(self._by_time)
                del self._seen[old_key]
                if oldest > self._floor:
                    self._floor = oldest
            self._seen[key] = when
            heapq.heappush(self._by_time, (when, key))

    def __len__(self) -> int:
        return len(self._seen)

    # -- counters ---------------------------------------------------------------------------------

    def _bucket(self, peer: bytes) -> int:
        if self._bucket_key is None:
            self._bucket_key = os.urandom(16)
        digest = hashlib.blake2b(peer, key=self._bucket_key, digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.counter_buckets

    def _counter_refused(self, peer: bytes, counter: int) -> None:
        if not 0 <= counter <= MAX_COUNTER:
            raise InvalidTimestampError(f"COUNTER {counter} does not fit in 32 bits (RFC 3830 §6.6)")
        last = self._counters.get(peer)
        if last is None:
            if not self._counter_marks:
                return
            mark = self._counter_marks.get(self._bucket(peer))
            if mark is not None and counter <= mark:
                raise InvalidTimestampError(
                    f"counter {counter} not larger than {mark}, the highest counter of forgotten peers "
                    "sharing this peer's slot"
                )
            return
        if counter <= last:
            if last == MAX_COUNTER:
                raise InvalidTimestampError(
                    "this peer's counter reached 2^32-1 and does not wrap around (RFC 3830 §6.6): change keys"
                )
            raise InvalidTimestampError(f"counter {counter} not larger than the last accepted ({last})")

    def check_counter(self, peer: bytes, counter: int) -> None:
        with self._lock:
            self._counter_refused(peer, counter)

    def add_counter(self, peer: bytes, counter: int) -> None:
        with self._lock:
            self._counter_refused(peer, counter)
            counters = self._counters
            counters.pop(peer, None)
            counters[peer] = counter  # most recent last
            if len(counters) > self.max_counter_peers:
                old = next(iter(counters))
                last = counters.pop(old)
                bucket = self._bucket(old)
                self._counter_marks[bucket] = max(last, self._counter_marks.get(bucket, -1))

    def forget_counter(self, peer: bytes) -> None:
        """Drop *peer*'s counter, e.g. after its key changed: messages under the old key no longer verify.

        A high-water mark its entry was folded into (after eviction) stays.
        """
        with self._lock:
            self._counters.pop(peer, None)

    @property
    def counter_peers(self) -> int:
        """How many peers' counters are tracked (at most ``max_counter_peers``)."""
        return len(self._counters)
