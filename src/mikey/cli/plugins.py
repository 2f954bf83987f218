"""How each key-exchange mode plugs into the CLI (`initiate`, `respond`, `complete`, `demo`, `speed`).

Every mode has one module ``mikey.cli.mode_<name>`` exposing ``PLUGIN``, an
instance of a :class:`ModePlugin` subclass.  The CLI core owns argument parsing
of the shared options, input decoding (hex / base64 / ``mikey <base64>``), JSON
and text output and exit codes; a plugin only turns parsed arguments into mode
objects and results.

Shared options the core adds to every exchange command (plugins read them from
``args``): ``--json``, ``--now UNIX_SECONDS`` (float or None = real clock).
``initiate`` also gets ``--tgk HEX --csb-id HEX --rand HEX --ssrc HEX... --encr
--mac --prf --verify``; ``respond`` gets ``--imsg MSG --ssrc HEX``; ``complete``
gets ``--imsg MSG --rmsg MSG``.  Plugins add their own credential options
(``--psk``, ``--cert``, ``--key``, ``--keys`` ...) in :meth:`add_arguments`.
Message arguments arrive already decoded to bytes in ``args.imsg`` /
``args.rmsg``.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..modes.base import ExchangeResult, ResponderOutcome

__all__ = [
    "ModePlugin",
    "SpeedCase",
    "DemoInitiator",
    "DemoResponder",
    "InitiateOutput",
    "load_plugins",
    "MODE_NAMES",
    "SECRET_FIELDS",
]

#: CLI mode names, in the order they are listed; the module is mikey.cli.mode_<name with - as _>.
MODE_NAMES = ("psk", "pk", "dh", "dhhmac", "rsa-r", "sakke")


@dataclass(frozen=True)
class SpeedCase:
    """One ``mikey speed`` row: ``name`` (e.g. "PSK responder"), the operation, the baseline it is
    compared with ("hmac-sha1", "rsa2048-sign", "modexp1536", "modexp1024"), and the public-key
    operations it cannot avoid."""

    name: str
    run: Callable[[], object]
    baseline: str = "hmac-sha1"
    #: The public-key operations the row cannot avoid, by primitive name (mikey.cli.speed.PRIMITIVES),
    #: e.g. ("rsa2048-decrypt", "rsa2048-verify"); the row is also reported as a ratio to their sum.
    unavoidable: tuple[str, ...] = ()


#: ``InitiateOutput.extra`` entries that are secrets whatever plugin put them there: they move to ``secrets``.
SECRET_FIELDS = frozenset({"envelope_key", "dh_private", "tgk", "psk", "ssv"})


@dataclass
class InitiateOutput:
    """What ``initiate`` prints: the I_MESSAGE and the Initiator's view of the keys.

    ``extra`` is public detail; ``secrets`` (e.g. the envelope key or DH exponent
    the stateless ``complete`` needs) is printed only with ``--show-keys``.
    """

    i_message: bytes
    result: ExchangeResult
    extra: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in SECRET_FIELDS & self.extra.keys():
            self.secrets[name] = self.extra.pop(name)


class DemoInitiator(Protocol):
    """The Initiator side object the demo drives (every mode's Initiator class fits)."""

    def create_message(self, now: float) -> bytes: ...

    def receive(self, data: bytes, now: float) -> ExchangeResult: ...

    @property
    def result(self) -> ExchangeResult: ...


class DemoResponder(Protocol):
    def receive(self, data: bytes, now: float) -> ResponderOutcome: ...


class ModePlugin:
    """Base class of a mode's CLI plugin."""

    name: str = ""
    help: str = ""
    #: Whether the I_MESSAGE always gets a response (DH, DH-HMAC, RSA-R) or only with V set.
    always_responds: bool = False

    def add_arguments(self, parser: argparse.ArgumentParser, command: str) -> None:
        """Add this mode's own options to *command* ("initiate", "respond" or "complete")."""

    def initiate(self, args: argparse.Namespace, now: float) -> InitiateOutput:
        raise NotImplementedError

    def respond(self, args: argparse.Namespace, i_message: bytes, now: float) -> ResponderOutcome:
        raise NotImplementedError

    def complete(self, args: argparse.Namespace, i_message: bytes, r_message: bytes | None, now: float) -> ExchangeResult:
        """Act as the Initiator that sent *i_message* and now receives *r_message*."""
        raise NotImplementedError

    # -- demo ---------------------------------------------------------------------------------

    def demo_credentials(self, workdir: Path) -> dict[str, Any]:
        """Create throw-away credentials for the demo (files under *workdir*); JSON-serialisable."""
        return {}

    def demo_initiator(self, creds: dict[str, Any], ssrc: int) -> DemoInitiator:
        raise NotImplementedError

    def demo_responder(self, creds: dict[str, Any], ssrc: int) -> DemoResponder:
        raise NotImplementedError

    def demo_description(self, creds: dict[str, Any]) -> str:
        """One line for the demo's report (algorithms, key sizes)."""
        return self.name

    # -- speed ----------------------------------------------------------------------------------

    def speed_cases(self) -> list[SpeedCase]:
        """Rows for ``mikey speed``: named zero-argument callables, each timed by the speed command.

        Set up everything (keys, messages) before returning; the callables do only
        the operation being measured (e.g. "PSK initiator": build one I_MESSAGE).
        """
        return []


def load_plugins() -> dict[str, ModePlugin]:
    """The plugin of every mode (``mikey.cli.mode_<name>``), in :data:`MODE_NAMES` order."""
    out: dict[str, ModePlugin] = {}
    for name in MODE_NAMES:
        mod = importlib.import_module(f"mikey.cli.mode_{name.replace('-', '_')}")
        out[name] = mod.PLUGIN
    return out
