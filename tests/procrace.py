"""Run one function in several forked processes that start together, and collect what each puts in a queue."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any


def race(target: Callable[..., None], args: tuple[Any, ...], n: int, timeout: float = 60) -> list[tuple[Any, ...]]:
    """``target(*args, barrier, queue)`` in *n* forked processes sharing a barrier of *n*; their queued results."""
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, start, out)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [out.get(timeout=timeout) for _ in procs]
    for p in procs:
        p.join(10)
    return results
