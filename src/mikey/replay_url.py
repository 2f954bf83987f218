"""Pick a replay store by URL (RFC 3830 §5.4): ``memory:`` for one process, ``redis://…`` for a cluster.

Kept apart from :mod:`mikey.replay` so that the in-process cache never imports the Redis one,
which imports it.
"""

from __future__ import annotations

from typing import Any

from .replay import ReplayCache, ReplayStore

__all__ = ["open_replay_store", "REPLAY_STORE_SCHEMES"]

#: The URL schemes :func:`open_replay_store` knows.
REPLAY_STORE_SCHEMES = ("memory", "redis", "rediss", "unix")


def open_replay_store(url: str, **options: Any) -> ReplayStore:
    """The replay store a URL names, ready to use; *options* go to its constructor.

    ``memory:`` is a :class:`~mikey.replay.ReplayCache` of this process.
    ``redis://[user:password@]host:port/db``, ``rediss://…`` (TLS) and ``unix:///path.sock``
    are a :class:`~mikey.replay_redis.RedisReplayStore` shared by every Responder that uses
    the same Redis and key prefix (``?prefix=…``; needs the ``redis`` extra).  It is
    connected here, so an unreachable or unsafe Redis fails now with
    :class:`~mikey.errors.ReplayStoreError`.  Other URLs raise :class:`ValueError`
    (naming the scheme only: a URL may hold a password).
    """
    scheme = url.partition(":")[0].lower()
    if scheme == "memory":
        if url.lower() not in ("memory:", "memory://"):
            raise ValueError("the in-process replay cache's URL is just memory:")
        return ReplayCache(**options)
    if scheme in ("redis", "rediss", "unix"):
        try:
            from .replay_redis import RedisReplayStore
        except ImportError as exc:
            if exc.name != "redis":
                raise
            raise ImportError(
                f"a {scheme}:// replay store needs the redis package: pip install 'mikey[redis]'"
            ) from exc
        store = RedisReplayStore(url, **options)
        store.connect()
        return store
    raise ValueError(
        f"unsupported replay store URL scheme {scheme[:20] + ':'!r}: use memory: or redis://host:port/db"
    )
