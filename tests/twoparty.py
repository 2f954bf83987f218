"""A two-endpoint helper that runs any mode in memory (DESIGN: one helper, not one per mode test).

``run(initiator, responder, now)`` builds the I_MESSAGE, hands it to the Responder and, when
there is a response, back to the Initiator: the whole exchange without sockets or clocks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mikey.modes.base import Initiator, Responder
from mikey.modes.results import ExchangeResult, ResponderOutcome


@dataclass
class Exchange:
    """What one in-memory exchange produced (``result`` is the Initiator's, None before/without a response)."""

    initiator: Any
    responder: Any
    i_message: bytes
    outcome: ResponderOutcome
    result: ExchangeResult | None

    @property
    def response(self) -> bytes | None:
        return self.outcome.response


def run(
    initiator: Initiator, responder: Responder, now: float, *, respond_at: float | None = None, complete: bool = True
) -> Exchange:
    """I_MESSAGE at *now*, taken by the Responder at *respond_at* (default *now*), and the response
    taken by the Initiator when *complete* and there is one."""
    i_message = initiator.create_message(now)
    at = now if respond_at is None else respond_at
    outcome = responder.receive(i_message, at)
    result = None
    if complete and outcome.response is not None:
        result = initiator.receive(outcome.response, at)
    return Exchange(initiator, responder, i_message, outcome, result)


def fingerprints(result: ExchangeResult) -> list[str]:
    """The non-secret per-crypto-session fingerprints, to compare both ends."""
    return [cs.fingerprint() for cs in result.crypto_sessions]


def race(messages: list[bytes], make: Callable[[int], Responder], threads: int, now: float) -> list[list[object]]:
    """Each round, *threads* threads hand the same I_MESSAGE to their own Responder (``make(thread)``) at once.

    Returns, per round, what each thread got: a ResponderOutcome or the MikeyError raised.
    """
    from mikey.errors import MikeyError

    barrier = threading.Barrier(threads)
    outcomes: list[list[object]] = [[None] * threads for _ in messages]

    def worker(k: int) -> None:
        for r, m in enumerate(messages):
            responder = make(k)
            barrier.wait()
            try:
                outcomes[r][k] = responder.receive(m, now)
            except MikeyError as exc:
                outcomes[r][k] = exc

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return outcomes
