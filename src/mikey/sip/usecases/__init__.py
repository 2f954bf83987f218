"""MIKEY's use cases run end to end through a SIP proxy, one method at a time.

Each use case module registers a function ``run(env, method) -> Observation`` with :func:`use_case`.
The tests call the functions and assert on the observations; ``mikey demo --sip`` runs them all and
prints the use case x method table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Outcome", "Observation", "UseCaseEnv", "UseCase", "USE_CASES", "use_case"]


class Outcome:
    """What a use case observed for one method (the table cell's first word)."""

    KEYED = "keyed"  # the exchange keyed SRTP and media flowed both ways (or as the case requires)
    OWN_KEYS = "own-keys"  # forking: every fork got its own keys
    SAME_KEY = "same-key"  # forking: every fork got the same key (security note in the README)
    REKEYED = "rekeyed"  # divert: the caller re-keyed to the new identity
    REFUSED = "refused"  # the exchange failed cleanly with the MIKEY Error / SIP status in ``detail``
    NOT_SERVED = "not-served"  # the method cannot serve this case; ``detail`` says why
    FAILED = "failed"  # something went wrong that should not have (a bug)


@dataclass(frozen=True)
class Observation:
    """One cell of the use case x method table."""

    case: str
    method: str
    outcome: str
    detail: str
    media_ok: bool = False
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UseCaseEnv:
    """Where a use case runs: a started Kamailio (host, port, SIP domain) and a scratch directory."""

    proxy_host: str
    proxy_port: int
    domain: str
    workdir: Path
    timeout: float = 15.0


UseCase = Callable[[UseCaseEnv, str], Observation]

#: case name -> run function, in the order the table shows them.
USE_CASES: dict[str, UseCase] = {}


def use_case(name: str) -> Callable[[UseCase], UseCase]:
    """Register *name*'s run function (a decorator)."""

    def register(func: UseCase) -> UseCase:
        USE_CASES[name] = func
        return func

    return register
