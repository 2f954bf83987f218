"""A replay cache shared by clustered Responders, on Redis (RFC 3830 §5.4).

Several Responder processes behind one SIP load balancer must refuse an
I_MESSAGE that another node already accepted.  :class:`RedisReplayStore`
implements :class:`~mikey.replay.ReplayStore` on one Redis server (standalone or
a primary; not Redis Cluster), with the same semantics as the in-process
:class:`~mikey.replay.ReplayCache`:

* **Messages**: ``add`` is one atomic ``SET <prefix>m:<sha256 hex> 1 NX PX ttl``
  (in a script that first checks the namespace is intact, below); ``check`` is
  a non-authoritative ``EXISTS``.  The time to live is relative, so Redis's own
  clock only has to run at the right rate: ``ttl = when + horizon + margin - now``
  with ``now`` the caller's clock.  ``horizon`` is the widest skew the
  namespace allows: it is fixed when the namespace is created (``max_skew``), and
  :meth:`RedisReplayStore.effective_skew` never lets a node use more, so that an
  entry lives as long as any node would accept its message.  ``margin``
  (``clock_margin``) must exceed the difference between any two nodes' clocks:
  a message stays in Redis for ``margin`` seconds past the end of the window of
  the node that stored it, which covers a node whose clock is that much behind.
  **Assumption: the nodes' clocks agree within** ``clock_margin`` (NTP).
* **No floor, no shrinking skew**: every entry lives until its own expiry, so
  the in-process cache's floor (raised by eviction) is not needed, and memory is
  bounded by Redis (``maxmemory``), not by shrinking the skew.  This holds only
  if Redis never drops a key early: it must run with ``maxmemory-policy
  noeviction`` (a full Redis then refuses writes, and the store refuses
  messages).  :meth:`RedisReplayStore.connect` checks the policy with ``CONFIG
  GET`` and refuses any other policy while ``maxmemory`` is set, unless
  ``allow_eviction=True``; where ``CONFIG`` is not permitted it logs a warning.
* **Counters** (TS type 2): the same rules as :class:`~mikey.replay.ReplayCache`:
  32 bits, no wrap-around, at most ``max_counter_peers`` peers in one hash, the
  least recently advanced evicted and folded into one of ``counter_buckets``
  high-water marks (a salted SHA-1 of the peer picks it); a peer the table does
  not know must exceed its bucket's mark.  Compare-and-set and eviction run in
  one Lua script, so they are atomic across nodes.  Counter entries have no
  time to live: a time to live would forget a counter and let the peer's old
  messages back in; the table is bounded by its size instead.
* **Lost state**: the namespace's settings live in ``<prefix>conf`` with a
  random epoch, checked by every ``add``.  If Redis restarts without
  persistence or is flushed, the first node to notice recreates the namespace
  with a floor of ``now + horizon + margin``: messages are refused for one skew
  interval (RFC 3830 §5.4: a host that loses track refuses messages for the
  skew).  A node that first reaches Redis after the loss cannot know, and
  recreates it without a floor (it may accept a replay until a node that knew
  notices, sets the floor and a new epoch, which makes every node rejoin): so
  connect each node when it starts (:func:`~mikey.replay_url.open_replay_store`
  does).  Counters cannot be recovered: a COUNTER peer's old messages would be
  accepted again after that interval (run Redis with AOF persistence where
  COUNTER peers matter).  A cluster whose nodes all restart with Redis is like
  a restarted process: it starts with an empty cache.
* **Failures close**: a connection failure, time-out, refused write (e.g. Redis
  out of memory) or unexpected reply raises :class:`~mikey.errors.ReplayStoreError`, a
  :class:`~mikey.errors.MikeyError`; the Responder refuses the message (no Error
  message: the failure is local) and no redis-py exception escapes.  Connection
  errors are retried twice; a retried ``SET NX`` can only refuse an honest
  message, never accept a replay.

The namespace settings (``max_skew``, ``clock_margin``, ``max_counter_peers``,
``counter_buckets``) are fixed by the first node; a node that asks for other
values gets :class:`ReplayStoreConfigError`.  To change them use a new prefix
(or wait ``max_skew + clock_margin`` after stopping every node, then delete the
keys).  Thread-safe: redis-py clients share a connection pool.

Typical use: ``open_replay_store("redis://127.0.0.1:6379/0")`` (in
:mod:`mikey.replay_url`), or ``RedisReplayStore(url, prefix="mikey:replay:")``;
the URL may carry ``?prefix=…&allow_eviction=yes``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.connection import Connection, parse_url
from redis.retry import Retry

from .errors import InvalidTimestampError, ReplayError, ReplayStoreConfigError, ReplayStoreError, StateError
from .replay import _FLOOR_GUARD, DEFAULT_CLOCK_SKEW, MAX_COUNTER, ReplayStore

__all__ = ["RedisReplayStore", "ReplayStoreError", "ReplayStoreConfigError", "DEFAULT_PREFIX"]

log = logging.getLogger(__name__)

#: Key prefix of the namespace when none is given.
DEFAULT_PREFIX = "mikey:replay:"
#: Default ``clock_margin``: how far apart (seconds) the nodes' clocks may be.
DEFAULT_CLOCK_MARGIN = 5.0
_DEFAULTS: dict[str, float] = {
    "horizon": DEFAULT_CLOCK_SKEW,
    "margin": DEFAULT_CLOCK_MARGIN,
    "max_counter_peers": 10_000,
    "counter_buckets": 4096,
}
_PARAM_NAMES = {"horizon": "max_skew", "margin": "clock_margin"}
_VERSION = "1"
_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off", ""}


# -- Lua scripts (run atomically by Redis) -----------------------------------------------------------

# KEYS[1] conf; ARGV[1] '1' when the caller found the namespace lost, ARGV[2] its floor, ARGV[3] a new
# epoch, then field/value pairs.  Creates the namespace unless it exists.  A caller that found it lost
# and sees it recreated without a floor (by a node that could not know) sets the floor and a new epoch,
# so that every node rejoins.  Returns the namespace.
_INIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
elseif ARGV[1] == '1' and redis.call('HGET', KEYS[1], 'floor') == '-inf' then
  redis.call('HSET', KEYS[1], 'floor', ARGV[2], 'epoch', ARGV[3])
end
return redis.call('HGETALL', KEYS[1])
"""

# KEYS[1] message key, KEYS[2] conf; ARGV[1] epoch, ARGV[2] ttl in ms.
# Returns 1 when remembered, 0 when already there (a replay), -1 when the namespace was lost.
_ADD = """
if redis.call('HGET', KEYS[2], 'epoch') ~= ARGV[1] then return -1 end
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

_BUCKET = """
local function bucket(salt, peer, n)
  return tostring(tonumber(string.sub(redis.sha1hex(salt .. peer), 1, 8), 16) % n)
end
local conf = redis.call('HMGET', KEYS[3], 'epoch', 'salt', 'counter_buckets', 'max_counter_peers')
if conf[1] ~= ARGV[1] then return {-1, 0} end
local salt, nbuckets, maxpeers = conf[2], tonumber(conf[3]), tonumber(conf[4])
local peer, counter = ARGV[2], tonumber(ARGV[3])
local last = redis.call('HGET', KEYS[1], peer)
if last then
  if counter <= tonumber(last) then return {1, last} end
else
  local mark = redis.call('HGET', KEYS[2], bucket(salt, peer, nbuckets))
  if mark and counter <= tonumber(mark) then return {2, mark} end
end
"""

# KEYS[1] counters (hash peer -> last), KEYS[2] marks (hash bucket -> counter), KEYS[3] conf;
# ARGV[1] epoch, ARGV[2] peer, ARGV[3] counter.
# Returns {0, 0} when new, {1, last} when not above the peer's last, {2, mark} when not above its
# bucket's mark, {-1, 0} when the namespace was lost.
_CHECK_COUNTER = _BUCKET + "return {0, 0}\n"

# Also KEYS[4] recency (zset peer -> sequence), KEYS[5] sequence.  Sets the peer's counter, then
# evicts the least recently advanced peers beyond max_counter_peers into their buckets' marks.
_ADD_COUNTER = _BUCKET + """
redis.call('HSET', KEYS[1], peer, ARGV[3])
redis.call('ZADD', KEYS[4], redis.call('INCR', KEYS[5]), peer)
while redis.call('HLEN', KEYS[1]) > maxpeers do
  local old = redis.call('ZPOPMIN', KEYS[4])
  if #old == 0 then break end
  local oldlast = redis.call('HGET', KEYS[1], old[1])
  redis.call('HDEL', KEYS[1], old[1])
  if oldlast then
    local b = bucket(salt, old[1], nbuckets)
    local mark = redis.call('HGET', KEYS[2], b)
    if not mark or tonumber(mark) < tonumber(oldlast) then redis.call('HSET', KEYS[2], b, oldlast) end
  end
end
return {0, 0}
"""

# KEYS[1] counters, KEYS[2] recency; ARGV[1] peer.
_FORGET_COUNTER = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


@dataclass(frozen=True)
class _Namespace:
    """The settings every node shares, as stored in ``<prefix>conf``."""

    epoch: str
    horizon: float
    margin: float
    floor: float
    max_counter_peers: int
    counter_buckets: int


def _split_url(url: str) -> tuple[str, str | None, bool | None]:
    """The redis-py URL without our own query parameters, and those (``prefix``, ``allow_eviction``)."""
    parts = urlsplit(url)
    prefix: str | None = None
    allow: bool | None = None
    rest: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "prefix":
            prefix = value
        elif name == "allow_eviction":
            if value.lower() not in _TRUE | _FALSE:
                raise ValueError(f"allow_eviction={value!r} in the replay store URL: use yes or no")
            allow = value.lower() in _TRUE
        else:
            rest.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix, allow


def _config(client: redis.Redis, name: str) -> str:
    """One ``CONFIG GET`` value as text (redis-py versions differ in what they decode)."""
    found = {
        (k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else str(v))
        for k, v in client.config_get(name).items()
    }
    return found.get(name, "")


class RedisReplayStore(ReplayStore):
    """A :class:`~mikey.replay.ReplayStore` on Redis, shared by every Responder that uses the same URL and prefix.

    ``url`` is a redis-py URL (``redis://[user:password@]host:port/db``, ``rediss://`` for TLS,
    ``unix:///path.sock``), optionally with ``prefix=`` and ``allow_eviction=`` query
    parameters; the keyword arguments win over them.  ``max_skew``, ``clock_margin``,
    ``max_counter_peers`` and ``counter_buckets`` are the namespace settings (see the module
    docstring); left as ``None`` a node takes what the namespace holds, or the defaults (300 s,
    5 s, 10,000, 4096) when it creates it.  ``timeout`` bounds each socket connect, read and
    write (seconds) unless the URL sets ``socket_timeout`` / ``socket_connect_timeout``.

    Nothing is sent until :meth:`connect` or the first use; a failure raises
    :class:`ReplayStoreError` there.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        max_skew: float | None = None,
        clock_margin: float | None = None,
        max_counter_peers: int | None = None,
        counter_buckets: int | None = None,
        allow_eviction: bool | None = None,
        timeout: float = 2.0,
    ) -> None:
        self._password = unquote(urlsplit(url).password or "")  # scrubbed from every message
        redis_url, url_prefix, url_allow = _split_url(url)
        self.prefix = prefix if prefix is not None else url_prefix if url_prefix is not None else DEFAULT_PREFIX
        if not self.prefix:
            raise ValueError("the replay store's key prefix must not be empty")
        self.allow_eviction = bool(allow_eviction if allow_eviction is not None else url_allow)
        wanted: dict[str, float] = {}
        for name, value, least in (
            ("horizon", max_skew, 0.0),
            ("margin", clock_margin, 0.0),
            ("max_counter_peers", max_counter_peers, 1),
            ("counter_buckets", counter_buckets, 1),
        ):
            if value is None:
                continue
            if not (math.isfinite(value) and value >= least) or (least == 1 and value != int(value)):
                raise ValueError(f"{_PARAM_NAMES.get(name, name)} must be a finite number of at least {least}")
            wanted[name] = float(value)
        if not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        self._wanted = wanted
        try:
            # a connection object of the URL's own options, made but not opened: redis-py would
            # otherwise report an unknown option only when it first connects
            url_options: dict[str, Any] = parse_url(redis_url)  # type: ignore[no-untyped-call]
            url_options.pop("connection_class", Connection)(**url_options)
            self._redis: redis.Redis = redis.Redis.from_url(
                redis_url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2, supported_errors=(redis.ConnectionError,)),
                decode_responses=False,
            )
        except (ValueError, TypeError) as exc:  # malformed URL or unknown query parameter
            raise ValueError(f"not a usable Redis URL: {self._scrub(str(exc))}") from None
        kw = self._redis.connection_pool.connection_kwargs
        self._where = str(kw["path"]) if "path" in kw else f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
        self._where += f"/{kw.get('db', 0)}"
        p = self.prefix
        self._conf_key = f"{p}conf"
        self._counter_keys = [f"{p}counters", f"{p}counter-marks", self._conf_key, f"{p}counter-recency", f"{p}counter-seq"]
        self._init_script = self._redis.register_script(_INIT)
        self._add_script = self._redis.register_script(_ADD)
        self._check_counter_script = self._redis.register_script(_CHECK_COUNTER)
        self._add_counter_script = self._redis.register_script(_ADD_COUNTER)
        self._forget_counter_script = self._redis.register_script(_FORGET_COUNTER)
        self._ns: _Namespace | None = None
        self._last_now = float("-inf")
        self._setup_lock = threading.Lock()

    def __repr__(self) -> str:  # never the URL itself: it may hold a password
        return f"{type(self).__name__}({self._where!r}, prefix={self.prefix!r})"

    # -- plumbing -----------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one Redis command or script; any failure becomes :class:`ReplayStoreError` (fail closed)."""
        try:
            return fn(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            raise ReplayStoreError(
                f"shared replay store at {self._where} failed ({what}): {type(exc).__name__}: "
                f"{self._scrub(str(exc))}; the message is refused"
            ) from None

    def _script(self, what: str, script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return self._call(what, script, keys=list(keys), args=list(args))

    def connect(self) -> None:
        """Reach Redis, check its eviction policy, and join (or create) the namespace.

        Raises :class:`ReplayStoreError` if Redis cannot be reached, and
        :class:`ReplayStoreConfigError` if it may evict keys or the namespace's settings differ.
        """
        self._namespace()

    def close(self) -> None:
        """Close the connections (the store reconnects if used again)."""
        self._redis.close()

    def __enter__(self) -> RedisReplayStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _namespace(self) -> _Namespace:
        ns = self._ns
        if ns is not None:
            return ns
        with self._setup_lock:
            if self._ns is None:
                self._check_eviction_policy()
                self._ns = self._join(float("-inf"))
            return self._ns

    def _check_eviction_policy(self) -> None:
        """Entries must live until they expire: refuse a Redis that may evict them (RFC 3830 §5.4)."""
        try:
            policy = _config(self._redis, "maxmemory-policy")
            maxmemory = int(_config(self._redis, "maxmemory") or "0")
        except redis.ResponseError as exc:  # CONFIG renamed, disabled or not permitted (managed Redis, ACLs)
            log.warning(
                "replay store at %s: cannot read maxmemory-policy (%s); it must be noeviction, or "
                "evicted entries let replays in", self._where, self._scrub(str(exc)),
            )
            return
        except (redis.RedisError, OSError, ValueError) as exc:
            raise ReplayStoreError(
                f"shared replay store at {self._where} is unreachable: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from None
        if policy == "noeviction":
            return
        if maxmemory == 0:
            log.warning(
                "replay store at %s: maxmemory-policy is %s; harmless while maxmemory is 0, but set it to "
                "noeviction before setting a memory limit", self._where, policy,
            )
            return
        message = (
            f"Redis at {self._where} evicts keys when full (maxmemory-policy {policy}, maxmemory {maxmemory}): "
            "an evicted replay-cache entry lets its replay in (RFC 3830 §5.4)"
        )
        if not self.allow_eviction:
            raise ReplayStoreConfigError(
                message + "; set maxmemory-policy noeviction, or pass allow_eviction=True "
                "(URL: ?allow_eviction=yes) to accept that risk"
            )
        log.warning("%s; allowed by allow_eviction", message)

    def _join(self, floor: float) -> _Namespace:
        """Create the namespace with these settings unless it exists, then adopt what it holds.

        A finite *floor* says this node found the namespace lost (see :meth:`_lost`).
        """
        epoch = os.urandom(16).hex()
        fields: dict[str, str] = {
            "version": _VERSION,
            "epoch": epoch,
            "salt": os.urandom(16).hex(),
            "floor": repr(floor),
        }
        for name, default in _DEFAULTS.items():
            value = self._wanted.get(name, default)
            fields[name] = repr(value) if name in ("horizon", "margin") else str(int(value))
        lost = "1" if floor > float("-inf") else "0"
        args = [lost, repr(floor), epoch, *(x for kv in fields.items() for x in kv)]
        reply = self._script("joining the namespace", self._init_script, [self._conf_key], args)
        try:
            got = {reply[i].decode(): reply[i + 1].decode() for i in range(0, len(reply), 2)}
            if got.get("version") != _VERSION:
                raise ReplayStoreConfigError(
                    f"{self._conf_key!r} at {self._where} holds version {got.get('version')!r} of the replay "
                    f"store layout, not {_VERSION}: use another prefix"
                )
            ns = _Namespace(
                epoch=got["epoch"],
                horizon=float(got["horizon"]),
                margin=float(got["margin"]),
                floor=float(got["floor"]),
                max_counter_peers=int(got["max_counter_peers"]),
                counter_buckets=int(got["counter_buckets"]),
            )
        except (KeyError, ValueError, TypeError, AttributeError, IndexError):
            raise ReplayStoreConfigError(
                f"{self._conf_key!r} at {self._where} is not a replay store namespace: use another prefix"
            ) from None
        for name, value in self._wanted.items():
            have = float(getattr(ns, name))
            if have != value:
                raise ReplayStoreConfigError(
                    f"the replay store {self.prefix!r} at {self._where} was set up with "
                    f"{_PARAM_NAMES.get(name, name)}={have:g}, this node asks for {value:g}: use the same "
                    "settings on every node, or another prefix"
                )
        return ns

    def _seen_now(self, now: float) -> None:
        if now > self._last_now and math.isfinite(now):
            self._last_now = now

    def _lost(self, old: _Namespace) -> ReplayError:
        """The namespace vanished (Redis restarted or flushed): recreate it with a floor one skew ahead.

        The floor is counted from the latest ``now`` this node was given (counter calls carry none).
        """
        with self._setup_lock:
            if self._ns is old:
                self._ns = self._join(self._last_now + old.horizon + old.margin)
                log.error(
                    "replay store %r at %s lost its entries (Redis restarted without persistence, or "
                    "flushed?): refusing messages stamped up to %.0f (RFC 3830 §5.4)",
                    self.prefix, self._where, self._ns.floor,
                )
        return ReplayError(
            "the shared replay cache lost its entries: messages are refused for one clock-skew interval "
            "(RFC 3830 §5.4)"
        )

    # -- messages -----------------------------------------------------------------------------------

    def _message_key(self, key: bytes) -> str:
        return f"{self.prefix}m:{key.hex()}"

    def effective_skew(self, skew: float, now: float) -> float:
        """*skew*, but at most the namespace's ``max_skew``: no entry outlives a wider window."""
        if not math.isfinite(skew):
            return skew  # (refused by the timestamp check)
        self._seen_now(now)
        return min(skew, self._namespace().horizon)

    @staticmethod
    def _below_floor(ns: _Namespace, when: float) -> None:
        if when <= ns.floor + _FLOOR_GUARD:
            raise ReplayError(
                "message is not newer than the time the shared replay cache lost its entries "
                "(RFC 3830 §5.4)"
            )

    def check(self, key: bytes, when: float, now: float) -> None:
        ns = self._namespace()
        self._seen_now(now)
        self._below_floor(ns, when)
        if self._call("EXISTS", self._redis.exists, self._message_key(key)):
            raise ReplayError("message already received (replay)")

    def add(self, key: bytes, when: float, now: float, *, skew: float) -> None:
        if not (math.isfinite(when) and math.isfinite(now) and math.isfinite(skew)):
            raise StateError("when, now and skew must be finite numbers of seconds")
        ns = self._namespace()
        self._seen_now(now)
        self._below_floor(ns, when)
        keep = when + max(skew, ns.horizon) + ns.margin - now
        ttl_ms = max(math.ceil(keep * 1000), math.ceil(ns.margin * 1000), 1)
        done = self._script("SET NX", self._add_script, [self._message_key(key), self._conf_key], [ns.epoch, ttl_ms])
        if done == 1:
            return
        if done == 0:
            raise ReplayError("message already received (replay)")
        if done == -1:
            raise self._lost(ns)
        raise ReplayStoreError(f"shared replay store at {self._where} gave an unexpected reply to SET NX")

    # -- counters -----------------------------------------------------------------------------------

    def _counter(self, what: str, script: Any, keys: list[str], peer: bytes, counter: int) -> None:
        if not 0 <= counter <= MAX_COUNTER:
            raise InvalidTimestampError(f"COUNTER {counter} does not fit in 32 bits (RFC 3830 §6.6)")
        ns = self._namespace()
        reply = self._script(what, script, keys, [ns.epoch, peer, counter])
        try:
            code, value = int(reply[0]), int(reply[1])
        except (TypeError, ValueError, IndexError):
            raise ReplayStoreError(f"shared replay store at {self._where} gave an unexpected reply ({what})") from None
        if code == 0:
            return
        if code == 1:
            if value == MAX_COUNTER:
                raise InvalidTimestampError(
                    "this peer's counter reached 2^32-1 and does not wrap around (RFC 3830 §6.6): change keys"
                )
            raise InvalidTimestampError(f"counter {counter} not larger than the last accepted ({value})")
        if code == 2:
            raise InvalidTimestampError(
                f"counter {counter} not larger than {value}, the highest counter of forgotten peers "
                "sharing this peer's slot"
            )
        if code == -1:
            raise self._lost(ns)
        raise ReplayStoreError(f"shared replay store at {self._where} gave an unexpected reply ({what})")

    def check_counter(self, peer: bytes, counter: int) -> None:
        self._counter("counter check", self._check_counter_script, self._counter_keys[:3], peer, counter)

    def add_counter(self, peer: bytes, counter: int) -> None:
        self._counter("counter compare-and-set", self._add_counter_script, self._counter_keys, peer, counter)

    def forget_counter(self, peer: bytes) -> None:
        """Drop *peer*'s counter, e.g. after its key changed.  A high-water mark it was folded into stays."""
        keys = [self._counter_keys[0], self._counter_keys[3]]
        self._script("forgetting a counter", self._forget_counter_script, keys, [peer])

    @property
    def counter_peers(self) -> int:
        """How many peers' counters are tracked (at most ``max_counter_peers``)."""
        return int(self._call("HLEN", self._redis.hlen, self._counter_keys[0]))
