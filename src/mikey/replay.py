"""Replay cache and timestamp checks (RFC 3830 §5.4).

The Responder remembers every successfully authenticated message for as long
as its timestamp stays within the allowable clock skew; a message seen again in
that window is a replay and is discarded.  The cache is bounded: when it is
full it drops the entries that expire first and, as RFC 3830 §5.4 suggests for
a host that loses track, refuses new messages until the skew interval has
passed for what it had to forget.
"""

from __future__ import annotations

import hashlib
import heapq
import threading

from .errors import InvalidTimestampError, ReplayError

__all__ = ["ReplayCache", "DEFAULT_CLOCK_SKEW"]

#: Default allowable clock skew in seconds (RFC 3830 §5.4 leaves it to local policy).
DEFAULT_CLOCK_SKEW = 300.0


class ReplayCache:
    """Remembers authenticated messages until their timestamp leaves the skew window.

    Thread-safe; ``max_entries`` bounds memory.  Counter timestamps (TS type 2)
    are checked per peer: each must be larger than the last one accepted.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._seen: dict[bytes, float] = {}
        self._expiry: list[tuple[float, bytes]] = []
        self._counters: dict[bytes, int] = {}
        self._refuse_before = float("-inf")
        self._lock = threading.Lock()

    @staticmethod
    def key_for(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def _purge(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] < now:
            _, k = heapq.heappop(self._expiry)
            exp = self._seen.get(k)
            if exp is not None and exp < now:
                del self._seen[k]

    def check(self, data: bytes, now: float) -> bytes:
        """Raise :class:`ReplayError` if *data* (an authenticated message) was seen in its window.

        Returns the cache key, which :meth:`add` can take to avoid hashing again.
        """
        k = self.key_for(data)
        with self._lock:
            self._purge(now)
            if now < self._refuse_before:
                raise ReplayError("replay cache overflowed; refusing messages until the clock skew interval passes")
            if k in self._seen:
                raise ReplayError("message already received (replay)")
        return k

    def add(self, data: bytes, now: float, expires: float, *, key: bytes | None = None) -> None:
        """Remember *data* (after it authenticated) until *expires*; *key* is what :meth:`check` returned."""
        k = key if key is not None else self.key_for(data)
        with self._lock:
            self._purge(now)
            if len(self._seen) >= self.max_entries:
                exp, old = heapq.heappop(self._expiry)
                self._seen.pop(old, None)
                self._refuse_before = max(self._refuse_before, exp)
            self._seen[k] = expires
            heapq.heappush(self._expiry, (expires, k))

    def check_counter(self, peer: bytes, counter: int) -> None:
        """For COUNTER timestamps: raise unless *counter* is larger than the last accepted one."""
        with self._lock:
            last = self._counters.get(peer)
            if last is not None and counter <= last:
                raise InvalidTimestampError(f"counter {counter} not larger than the last accepted ({last})")

    def add_counter(self, peer: bytes, counter: int) -> None:
        with self._lock:
            self._counters[peer] = max(counter, self._counters.get(peer, counter))

    def __len__(self) -> int:
        return len(self._seen)
