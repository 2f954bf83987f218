"""The Redis replay store (RFC 3830 §5.4): clustered Responders refuse a replay another node accepted.

Runs against a real Redis: ``MIKEY_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``), each
test in its own key prefix, removed afterwards.  A few tests start a private ``redis-server`` on
a free loopback port, to change its configuration or stop it.  Skipped on a machine without
Redis, but with ``CI`` set they fail instead (``.ci/run`` starts Redis).
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from twoparty import race

from mikey.errors import InvalidTimestampError, MikeyError, ReplayError, StateError
from mikey.modes.base import ResponderOutcome, State
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.replay import MAX_COUNTER, ReplayCache, ReplayStore

try:
    import redis
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("the redis package (extra 'redis') is not installed", allow_module_level=True)

from mikey.replay_redis import (  # noqa: E402
    DEFAULT_PREFIX,
    RedisReplayStore,
    ReplayStoreConfigError,
    ReplayStoreError,
)
from mikey.replay_url import open_replay_store  # noqa: E402

REDIS_URL = os.environ.get("MIKEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PSK = bytes(range(16))


def _reachable(url: str) -> str | None:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except (redis.RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


_DOWN = _reachable(REDIS_URL)
if _DOWN is not None and os.environ.get("CI"):
    raise RuntimeError(f"CI is set but Redis at {REDIS_URL} is not reachable ({_DOWN}); .ci/run starts it")
pytestmark = pytest.mark.skipif(_DOWN is not None, reason=f"no Redis at {REDIS_URL}: {_DOWN}")


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(REDIS_URL)
    yield c
    c.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    p = f"mikey:test:{uuid.uuid4().hex}:"
    yield p
    keys = list(client.scan_iter(match=p + "*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def node(prefix: str) -> Iterator[Callable[..., RedisReplayStore]]:
    """Makes replay stores ("nodes") on the test Redis in this test's prefix, and closes them."""
    made: list[RedisReplayStore] = []

    def make(**options: object) -> RedisReplayStore:
        store = RedisReplayStore(REDIS_URL, prefix=prefix, **options)  # type: ignore[arg-type]
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test's own on a free loopback port, with extra configuration."""

    def __init__(self, tmp: Path, *config: str) -> None:
        server = shutil.which("redis-server")
        if server is None:
            if os.environ.get("CI"):
                raise RuntimeError("CI is set but redis-server is not installed")
            pytest.skip("redis-server is not installed")
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        args = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(tmp), *config]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while _reachable(self.url) is not None:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"private redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[..., PrivateRedis]]:
    started: list[PrivateRedis] = []

    def start(*config: str) -> PrivateRedis:
        server = PrivateRedis(tmp_path, *config)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _psk_message(now: float) -> bytes:
    return PskInitiator(PSK).create_message(now)


# --- two nodes, one Redis --------------------------------------------------------------------------


def test_message_accepted_by_one_node_is_refused_as_replay_by_another(
    node: Callable[..., RedisReplayStore], client: redis.Redis, prefix: str
) -> None:
    """RFC 3830 §5.4 across a cluster: node B drops the replay of what node A accepted, silently.
    Two in-process caches (what each node had before) would both accept it."""
    a, b = node(), node()
    now = time.time()
    msg = _psk_message(now)
    outcome = PskResponder(PSK, replay_cache=a).receive(msg, now)
    assert outcome.result.authenticated
    replayed = PskResponder(PSK, replay_cache=b)
    with pytest.raises(ReplayError, match="already received") as info:
        replayed.receive(msg, now + 1)
    assert info.value.error_message is None  # a replay is discarded without an Error message
    assert replayed.state is State.FAILED
    # the entry: the SHA-256 of the message, kept for the window (300 s) plus the clock margin (5 s)
    key = f"{prefix}m:{ReplayStore.key_for(msg).hex()}"
    assert client.get(key) == b"1"
    assert 304_000 < client.pttl(key) <= 305_000
    # each node accepts other messages, and a message accepted by B is refused by A
    other = _psk_message(now)
    assert PskResponder(PSK, replay_cache=b).receive(other, now).result.authenticated
    with pytest.raises(ReplayError):
        PskResponder(PSK, replay_cache=a).receive(other, now)
    for cache in (ReplayCache(), ReplayCache()):  # the old situation: one cache per node
        assert PskResponder(PSK, replay_cache=cache).receive(msg, now).result.authenticated


def test_check_is_a_non_authoritative_pre_check(node: Callable[..., RedisReplayStore]) -> None:
    a, b = node(), node()
    key = ReplayStore.key_for(b"m")
    now = 1_800_000_000.0
    a.check(key, now, now)
    b.check(key, now, now)  # both pass the pre-check; it changes nothing
    a.add(key, now, now, skew=300)
    with pytest.raises(ReplayError, match="already received"):
        b.add(key, now, now, skew=300)
    with pytest.raises(ReplayError, match="already received"):
        b.check(key, now, now)
    with pytest.raises(StateError):
        a.add(ReplayStore.key_for(b"n"), float("nan"), now, skew=300)


def test_racing_copies_across_two_nodes_accepted_once(
    node: Callable[..., RedisReplayStore], busy_switching: None
) -> None:
    """8 threads over 2 stores hand the same I_MESSAGE to their own Responder at once, round after round:
    exactly one gets keys, the other 7 a silent ReplayError (as with one in-process cache)."""
    stores = [node(), node()]
    now = time.time()
    messages = [_psk_message(now) for _ in range(40)]
    threads = 8
    outcomes = race(messages, lambda k: PskResponder(PSK, replay_cache=stores[k % 2]), threads, now)
    winners = {0: 0, 1: 0}
    for r, round_outcomes in enumerate(outcomes):
        accepted = [k for k, o in enumerate(round_outcomes) if isinstance(o, ResponderOutcome)]
        refused = [o for o in round_outcomes if isinstance(o, ReplayError)]
        assert (len(accepted), len(refused)) == (1, 7), (r, round_outcomes)
        assert all(e.error_message is None for e in refused)
        winners[accepted[0] % 2] += 1
    assert sum(winners.values()) == len(messages)


# --- expiry and the window -------------------------------------------------------------------------


def test_entry_lives_for_the_window_plus_margin_then_expires(
    node: Callable[..., RedisReplayStore], client: redis.Redis, prefix: str
) -> None:
    """With a 0.5 s window and a 0.5 s margin an entry lives ~1 s (Redis's time to live, relative to the
    caller's now), then expires; by then its message is outside every node's window anyway."""
    a = node(max_skew=0.5, clock_margin=0.5)
    b = node()  # joins the namespace and takes its settings
    now = time.time()
    msg = _psk_message(now)
    assert PskResponder(PSK, replay_cache=a, clock_skew=0.5).receive(msg, now).result.authenticated
    key = f"{prefix}m:{ReplayStore.key_for(msg).hex()}"
    assert 900 < client.pttl(key) <= 1000
    with pytest.raises(ReplayError):
        PskResponder(PSK, replay_cache=b, clock_skew=0.5).receive(msg, now + 0.4)
    deadline = time.monotonic() + 5
    while client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not client.exists(key)
    later = now + 1.1  # what a node's clock reads once the entry is gone: the message is too old
    with pytest.raises(InvalidTimestampError, match="allowed skew"):
        PskResponder(PSK, replay_cache=b, clock_skew=0.5).receive(msg, later)
    # an entry is kept for its own timestamp's window: one stamped 0.3 s ahead lives 0.3 s longer
    a.add(ReplayStore.key_for(b"ahead"), now + 0.3, now, skew=0.5)
    assert 1200 < client.pttl(f"{prefix}m:{ReplayStore.key_for(b'ahead').hex()}") <= 1300


def test_no_node_uses_a_wider_window_than_the_namespace_keeps(node: Callable[..., RedisReplayStore]) -> None:
    """A node configured with a 600 s skew on a namespace created for 300 s is held to 300 s: an entry
    lives 305 s, so a node allowed 600 s would accept the replay of a message 400 s old."""
    a = node(max_skew=300)
    now = time.time()
    assert a.effective_skew(600, now) == 300
    assert a.effective_skew(60, now) == 60
    old = _psk_message(now - 400)
    with pytest.raises(InvalidTimestampError, match="allowed skew is 300"):
        PskResponder(PSK, replay_cache=a, clock_skew=600).receive(old, now)
    with pytest.raises(ReplayStoreConfigError, match="max_skew=300, this node asks for 600"):
        node(max_skew=600).connect()
    with pytest.raises(ReplayStoreConfigError, match="counter_buckets=4096, this node asks for 16"):
        node(counter_buckets=16).connect()


def test_lost_namespace_refuses_messages_for_one_window(
    node: Callable[..., RedisReplayStore], client: redis.Redis, prefix: str
) -> None:
    """Redis restarted without persistence (here: the prefix's keys deleted): the replay of a message
    accepted before would get through, so the nodes refuse everything stamped before now + window +
    margin (RFC 3830 §5.4, the host that loses track), then accept again."""
    a, b = node(), node()
    b.connect()  # (open_replay_store connects: a node that first joins after the loss cannot know)
    now = time.time()
    msg = _psk_message(now)
    assert PskResponder(PSK, replay_cache=a).receive(msg, now).result.authenticated
    client.delete(*client.scan_iter(match=prefix + "*"))
    with pytest.raises(ReplayError, match="lost its entries"):
        PskResponder(PSK, replay_cache=b).receive(msg, now + 1)  # b notices and sets the floor
    with pytest.raises(ReplayError, match="lost its entries"):
        PskResponder(PSK, replay_cache=a).receive(msg, now + 2)  # a rejoins the recreated namespace
    fresh = _psk_message(now + 2)
    with pytest.raises(ReplayError):
        PskResponder(PSK, replay_cache=a).receive(fresh, now + 2)
    after = now + 1 + 300 + 5 + 1  # b's clock when it noticed, plus the window and margin
    with pytest.raises(ReplayError, match="lost its entries"):  # a node that only looked now adopts the floor
        PskResponder(PSK, replay_cache=node()).receive(fresh, now + 2)
    assert PskResponder(PSK, replay_cache=a).receive(_psk_message(after), after).result.authenticated
    assert PskResponder(PSK, replay_cache=node()).receive(_psk_message(after), after).result.authenticated


# --- COUNTER timestamps ----------------------------------------------------------------------------


def test_counter_compare_and_set_across_nodes(node: Callable[..., RedisReplayStore]) -> None:
    a, b = node(), node()
    a.check_counter(b"alice", 0)  # an unknown peer may start anywhere
    a.add_counter(b"alice", 5)
    for bad in (0, 4, 5):
        with pytest.raises(InvalidTimestampError, match=r"not larger than the last accepted \(5\)"):
            b.check_counter(b"alice", bad)
        with pytest.raises(InvalidTimestampError):
            b.add_counter(b"alice", bad)
    b.check_counter(b"alice", 6)
    b.check_counter(b"alice", 6)  # the pre-check changes nothing
    b.add_counter(b"alice", 6)
    with pytest.raises(InvalidTimestampError, match=r"\(6\)"):
        a.add_counter(b"alice", 6)
    a.add_counter(b"bob", 1)  # counters are per peer
    b.add_counter(b"alice", 1_000_000)
    assert a.counter_peers == 2


def test_counter_does_not_wrap_around(node: Callable[..., RedisReplayStore]) -> None:
    a, b = node(), node()
    a.add_counter(b"alice", MAX_COUNTER)
    for after_wrap in (0, 1, MAX_COUNTER):
        with pytest.raises(InvalidTimestampError, match="does not wrap around"):
            b.check_counter(b"alice", after_wrap)
        with pytest.raises(InvalidTimestampError, match="does not wrap around"):
            b.add_counter(b"alice", after_wrap)
    for out_of_range in (MAX_COUNTER + 1, -1):
        with pytest.raises(InvalidTimestampError, match="32 bits"):
            b.add_counter(b"bob", out_of_range)
    b.forget_counter(b"alice")  # after alice's key changed
    a.add_counter(b"alice", 0)


def test_counter_race_across_nodes_has_one_winner(node: Callable[..., RedisReplayStore]) -> None:
    stores = [node(), node()]
    threads = 8
    for counter in range(1, 21):
        barrier = threading.Barrier(threads)
        won: list[int] = []

        def worker(k: int, counter: int = counter, barrier: threading.Barrier = barrier, won: list[int] = won) -> None:
            barrier.wait()
            try:
                stores[k % 2].add_counter(b"peer", counter)
                won.append(k)
            except InvalidTimestampError:
                pass

        pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        assert len(won) == 1, (counter, won)


def test_counter_table_matches_the_in_process_cache(node: Callable[..., RedisReplayStore]) -> None:
    """Bounded per-peer table with eviction into a high-water mark: the same decisions as ReplayCache
    for a random sequence (one bucket, so that the bucket hash does not matter)."""
    rng = random.Random(3830)
    local = ReplayCache(max_counter_peers=3, counter_buckets=1)
    a, b = node(max_counter_peers=3, counter_buckets=1), node()
    peers = [b"p%d" % i for i in range(6)]
    last: dict[bytes, int] = {}
    decisions = []
    for step in range(300):
        peer = rng.choice(peers)
        counter = max(0, last.get(peer, 0) + rng.randint(-3, 40))
        store = (a, b)[step % 2]
        outcomes = []
        for cache in (local, store):
            try:
                cache.check_counter(peer, counter)
                cache.add_counter(peer, counter)
                outcomes.append("accepted")
            except InvalidTimestampError as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1], (step, peer, counter, outcomes)
        if outcomes[0] == "accepted":
            last[peer] = counter
        decisions.append(outcomes[0])
        assert b.counter_peers == local.counter_peers <= 3
    assert decisions.count("accepted") > 100
    assert any("forgotten peers" in d for d in decisions)  # the marks were used


def test_counter_marks_keep_an_evicted_peer_out(node: Callable[..., RedisReplayStore]) -> None:
    a = node(max_counter_peers=2, counter_buckets=1)
    a.add_counter(b"p1", 10)
    a.add_counter(b"p2", 20)
    a.add_counter(b"p3", 5)  # p1, least recently advanced, is evicted into the mark (10)
    assert a.counter_peers == 2
    with pytest.raises(InvalidTimestampError, match="not larger than 10, the highest counter of forgotten peers"):
        a.add_counter(b"p1", 10)
    a.add_counter(b"p1", 11)  # evicts p2: the mark becomes 20
    with pytest.raises(InvalidTimestampError, match="not larger than 20"):
        a.add_counter(b"p4", 15)


# --- failures close --------------------------------------------------------------------------------


def test_unreachable_redis_fails_closed() -> None:
    """Nothing listens on the port: every operation raises ReplayStoreError (a MikeyError, no redis-py
    exception), in bounded time, never showing the password; a Responder refuses the message."""
    url = f"redis://:s3cret-pw@127.0.0.1:{_free_port()}/0"
    store = RedisReplayStore(url, timeout=0.5)
    assert "s3cret" not in repr(store)
    key = ReplayStore.key_for(b"m")
    now = time.time()
    calls: list[Callable[[], object]] = [
        store.connect,
        lambda: store.effective_skew(300, now),
        lambda: store.check(key, now, now),
        lambda: store.add(key, now, now, skew=300),
        lambda: store.check_counter(b"p", 1),
        lambda: store.add_counter(b"p", 1),
    ]
    for call in calls:
        with pytest.raises(ReplayStoreError, match="127.0.0.1") as info:
            call()
        assert isinstance(info.value, MikeyError)
        assert "s3cret" not in str(info.value)
    responder = PskResponder(PSK, replay_cache=store)
    with pytest.raises(ReplayStoreError) as info:
        responder.receive(_psk_message(now), now)
    assert info.value.error_message is None and responder.state is State.FAILED
    with pytest.raises(ReplayStoreError):
        open_replay_store(url, timeout=0.5)


def test_redis_going_away_mid_use_fails_closed(private_redis: Callable[..., PrivateRedis]) -> None:
    server = private_redis()
    a, b = RedisReplayStore(server.url, timeout=0.5), RedisReplayStore(server.url, timeout=0.5)
    now = time.time()
    msg = _psk_message(now)
    assert PskResponder(PSK, replay_cache=a).receive(msg, now).result.authenticated
    server.stop()
    for store in (a, b):  # a was set up before; b had never reached Redis
        responder = PskResponder(PSK, replay_cache=store)
        with pytest.raises(ReplayStoreError, match="the message is refused|unreachable"):
            responder.receive(msg, now)  # the replay is not accepted unchecked
        with pytest.raises(ReplayStoreError):
            PskResponder(PSK, replay_cache=store).receive(_psk_message(now), now)


def test_full_redis_refuses_messages(private_redis: Callable[..., PrivateRedis]) -> None:
    """With noeviction a full Redis refuses writes (OOM): the store refuses the message."""
    server = private_redis("--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
    raw = redis.Redis.from_url(server.url)
    store = RedisReplayStore(server.url, timeout=2)
    now = time.time()
    assert PskResponder(PSK, replay_cache=store).receive(_psk_message(now), now).result.authenticated
    for size in (65536, 1024, 16):  # fill it up to the last few bytes
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            for i in range(100_000):
                raw.set(f"filler:{size}:{i}", b"x" * size)
    with pytest.raises(ReplayStoreError, match="OutOfMemoryError.*maxmemory.*the message is refused"):
        PskResponder(PSK, replay_cache=store).receive(_psk_message(now), now)
    raw.close()


def test_evicting_redis_is_refused_unless_allowed(
    private_redis: Callable[..., PrivateRedis], caplog: pytest.LogCaptureFixture
) -> None:
    server = private_redis("--maxmemory", "100mb", "--maxmemory-policy", "volatile-lru")
    with pytest.raises(ReplayStoreConfigError, match="volatile-lru.*allow_eviction=True"):
        RedisReplayStore(server.url).connect()
    with pytest.raises(ReplayStoreConfigError):
        PskResponder(PSK, replay_cache=RedisReplayStore(server.url)).receive(_psk_message(0), 0)
    with caplog.at_level(logging.WARNING, logger="mikey.replay_redis"):
        open_replay_store(server.url + "?allow_eviction=yes").close()
    assert "allowed by allow_eviction" in caplog.text


def test_eviction_policy_without_memory_limit_or_unreadable_only_warns(
    private_redis: Callable[..., PrivateRedis], caplog: pytest.LogCaptureFixture
) -> None:
    unlimited = private_redis("--maxmemory-policy", "allkeys-lru")
    no_config = private_redis("--rename-command", "CONFIG", "")
    with caplog.at_level(logging.WARNING, logger="mikey.replay_redis"):
        for server in (unlimited, no_config):
            store = open_replay_store(server.url)
            now = time.time()
            assert PskResponder(PSK, replay_cache=store).receive(_psk_message(now), now).result.authenticated
            store.close()
    assert "harmless while maxmemory is 0" in caplog.text
    assert "cannot read maxmemory-policy" in caplog.text


# --- by URL ----------------------------------------------------------------------------------------


def test_open_replay_store_by_url(client: redis.Redis, prefix: str) -> None:
    for url in ("memory:", "MEMORY://"):
        assert type(open_replay_store(url)) is ReplayCache
    assert open_replay_store("memory:", max_entries=7).max_entries == 7  # type: ignore[attr-defined]
    store = open_replay_store(f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}prefix={prefix}")
    assert isinstance(store, RedisReplayStore) and store.prefix == prefix
    assert client.exists(f"{prefix}conf")  # connected and joined
    assert RedisReplayStore(REDIS_URL).prefix == DEFAULT_PREFIX
    assert RedisReplayStore(REDIS_URL + "?prefix=x:", prefix="y:").prefix == "y:"
    store.close()
    for bad in ("memory:big", "ftp://host/x", "127.0.0.1:6379", "redis://h?allow_eviction=maybe",
                "redis://h?prefix="):
        with pytest.raises(ValueError):
            open_replay_store(bad)
    with pytest.raises(ValueError, match="usable Redis URL"):
        RedisReplayStore("redis://:pw@h?no_such_option=1")


def test_namespace_recreated_by_a_node_that_could_not_know_gets_the_floor(
    node: Callable[..., RedisReplayStore], client: redis.Redis, prefix: str
) -> None:
    """After the loss a new node recreates the namespace without a floor and accepts the replay (it
    cannot know); the first node that knew sets the floor and a new epoch, and from then on every
    node, the new one included, refuses what is stamped before it."""
    a = node()
    now = time.time()
    msg = _psk_message(now)
    assert PskResponder(PSK, replay_cache=a).receive(msg, now).result.authenticated
    client.delete(*client.scan_iter(match=prefix + "*"))
    c = node()
    assert PskResponder(PSK, replay_cache=c).receive(msg, now + 1).result.authenticated  # the gap
    assert float(client.hget(f"{prefix}conf", "floor") or b"nan") == float("-inf")
    with pytest.raises(ReplayError, match="lost its entries"):  # a knew: its next message finds out
        PskResponder(PSK, replay_cache=a).receive(_psk_message(now + 2), now + 2)
    assert float(client.hget(f"{prefix}conf", "floor") or b"nan") == pytest.approx(now + 2 + 305)
    with pytest.raises(ReplayError, match="lost its entries"):
        PskResponder(PSK, replay_cache=c).receive(_psk_message(now + 3), now + 3)
    with pytest.raises(ReplayError, match="not newer than the time"):
        PskResponder(PSK, replay_cache=c).receive(_psk_message(now + 3), now + 3)
