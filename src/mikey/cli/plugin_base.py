"""How a key-exchange mode plugs into the CLI (`initiate`, `respond`, `complete`, `demo`, `speed`).

Every mode has one module ``mikey.cli.mode_<name>`` exposing ``PLUGIN``, an
instance of a concrete :class:`ModePlugin` subclass, listed in
:mod:`mikey.cli.plugins`.  The CLI core owns argument parsing of the shared
options, input decoding (hex / base64 / ``mikey <base64>``), JSON and text
output and exit codes; a plugin only turns parsed arguments into mode objects
and results.

Shared options the core adds to every exchange command (plugins read them from
``args``): ``--json``, ``--show-keys``, ``--now UNIX_SECONDS`` (float or None =
real clock).  ``initiate`` also gets ``--csb-id HEX --rand HEX --ssrc HEX...
--prf --raw``, and those of ``--tgk HEX --encr --mac --verify`` the plugin lists
in :attr:`ModePlugin.initiate_options`; ``respond`` gets ``--imsg MSG --ssrc HEX
--raw --replay-cache URL`` (the store opened is ``args.replay_store``; :func:`responder_keywords`
passes it and the SSRCs on); ``complete`` gets ``--imsg MSG --rmsg MSG``.  Plugins add their own
credential options (``--psk``, ``--cert``, ``--key``, ``--keys`` ...) in
:meth:`ModePlugin.add_arguments`; the certificate modes share
:mod:`mikey.cli.certargs`, the Diffie-Hellman modes :mod:`mikey.cli.dhargs`.
Message arguments arrive already decoded to bytes in ``args.imsg`` / ``args.rmsg``.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..constants import IDType
from ..errors import StateError
from ..modes.base import ResponderKeywords
from ..modes.results import CryptoSessionSpec, ExchangeResult, ResponderOutcome
from ..wire import CommonHeader, IdPayload, SecurityPolicyPayload
from .common import UsageError

__all__ = [
    "ModePlugin",
    "SpeedCase",
    "DemoInitiator",
    "DemoResponder",
    "InitiateOutput",
    "SECRET_FIELDS",
    "SPEED_NOW",
    "crypto_session_specs",
    "uri_id",
    "add_compat_option",
    "pending_result",
    "required_response",
    "responder_keywords",
    "speed_response",
    "receive_if_verified",
]


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


#: The clock of every speed row: messages built once at this time are fresh for every timed receiver.
SPEED_NOW = 1_700_000_000.0

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


class ModePlugin(ABC):
    """A mode's CLI plugin: every hook below except :meth:`demo_description` must be implemented.

    A mode that cannot do something (MIKEY-SAKKE has no response to ``complete``)
    implements the hook by raising :class:`~mikey.cli.common.UsageError` saying why.
    """

    #: The ``--mode`` name, e.g. "rsa-r".
    name: ClassVar[str]
    #: One line for ``--help`` listings.
    help: ClassVar[str]
    #: The core's ``initiate`` options this mode uses, of ``--tgk``, ``--encr``, ``--mac``, ``--verify``
    #: (:data:`mikey.cli.exchange.SHARED_INITIATE_OPTIONS`); the others are not offered.
    initiate_options: ClassVar[frozenset[str]] = frozenset({"tgk", "encr", "mac", "verify"})

    @abstractmethod
    def add_arguments(self, parser: argparse._ActionsContainer, command: str) -> None:
        """Add this mode's own options to *command* ("initiate", "respond" or "complete").

        *parser* is the command's "--mode NAME options" group.
        """

    @abstractmethod
    def initiate(self, args: argparse.Namespace, now: float) -> InitiateOutput:
        """Build the I_MESSAGE from the parsed options."""

    @abstractmethod
    def respond(self, args: argparse.Namespace, i_message: bytes, now: float) -> ResponderOutcome:
        """Act as the Responder receiving *i_message*."""

    @abstractmethod
    def complete(self, args: argparse.Namespace, i_message: bytes, r_message: bytes | None, now: float) -> ExchangeResult:
        """Act as the Initiator that sent *i_message* and now receives *r_message*."""

    # -- demo ---------------------------------------------------------------------------------

    @abstractmethod
    def demo_credentials(self, workdir: Path) -> dict[str, Any]:
        """Create throw-away credentials for the demo (files under *workdir*); JSON-serialisable."""

    @abstractmethod
    def demo_initiator(self, creds: dict[str, Any], ssrc: int) -> DemoInitiator:
        """The demo's Initiator, sending from *ssrc*."""

    @abstractmethod
    def demo_responder(self, creds: dict[str, Any], ssrc: int) -> DemoResponder:
        """The demo's Responder, sending from *ssrc*."""

    def demo_description(self, creds: dict[str, Any]) -> str:
        """One line for the demo's report (algorithms, key sizes)."""
        return self.name

    # -- speed ----------------------------------------------------------------------------------

    @abstractmethod
    def speed_cases(self) -> list[SpeedCase]:
        """Rows for ``mikey speed``: named zero-argument callables, each timed by the speed command.

        Set up everything (keys, messages) before returning; the callables do only
        the operation being measured (e.g. "PSK initiator": build one I_MESSAGE).
        """


# --- helpers several plugins share -------------------------------------------------------------


def crypto_session_specs(ssrcs: Iterable[int] | None) -> list[CryptoSessionSpec] | None:
    """One crypto session per ``--ssrc`` (RFC 3830 §6.1.1), or None for the mode's default."""
    return [CryptoSessionSpec(ssrc=s) for s in ssrcs or ()] or None


def uri_id(uri: str | None) -> IdPayload | None:
    """``--id-i`` / ``--id-r`` of the PSK and DH modes: a URI ID payload (RFC 3830 §6.7), or None."""
    return IdPayload(IDType.URI, uri.encode("utf-8")) if uri else None


def add_compat_option(parser: argparse._ActionsContainer, registry: Collection[str], where: str) -> None:
    """``--compat NAME`` (repeatable): accept the deployed variants in the mode's *registry* (documented in *where*)."""
    names = sorted(registry)
    parser.add_argument("--compat", action="append", choices=names, default=[], metavar="NAME",
                        help=f"accept a known deployed variant, refused by default (repeatable; see {where}): "
                        + ", ".join(names))


class PendingInitiator(Protocol):
    """What :func:`pending_result` reads from an Initiator that has sent its I_MESSAGE."""

    MODE: ClassVar[str]

    @property
    def csb_id(self) -> int: ...
    @property
    def rand(self) -> bytes: ...
    @property
    def prf(self) -> int: ...
    @property
    def header(self) -> CommonHeader | None: ...
    @property
    def policies(self) -> Sequence[SecurityPolicyPayload]: ...
    @property
    def id_i(self) -> IdPayload | None: ...
    @property
    def id_r(self) -> IdPayload | None: ...


def pending_result(initiator: PendingInitiator) -> ExchangeResult:
    """The Initiator's view while the keys wait for the response (DH, DH-HMAC, RSA-R): no TGK yet."""
    if initiator.header is None:
        raise ValueError("the Initiator has not built its I_MESSAGE yet")
    return ExchangeResult(
        mode=initiator.MODE,
        csb_id=initiator.csb_id,
        tgk=b"",
        rand=initiator.rand,
        prf=initiator.prf,
        crypto_sessions=(),
        authenticated=False,
        header=initiator.header,
        policies=tuple(initiator.policies),
        initiator_id=initiator.id_i.data if initiator.id_i else None,
        responder_id=initiator.id_r.data if initiator.id_r else None,
    )


def required_response(mode: str, r_message: bytes | None) -> bytes:
    """The response ``complete`` needs in a mode whose Responder always answers (DH, DH-HMAC, RSA-R)."""
    if r_message is None:
        raise UsageError(f"--mode {mode}: the Responder always answers and the keys need its message: pass --rmsg")
    return r_message


def responder_keywords(args: argparse.Namespace) -> ResponderKeywords:
    """What every mode's Responder takes from ``respond``: ``--ssrc`` (own SSRCs for the Initiator's
    SSRC-0 placeholders, RFC 3830 §6.1.1) and the replay store ``--replay-cache`` opened (RFC 3830 §5.4)."""
    return {"own_ssrcs": list(args.ssrc or []), "replay_cache": args.replay_store}


def speed_response(outcome: ResponderOutcome) -> bytes:
    """The response a speed row's set-up exchange got, in a mode whose Responder always answers."""
    if outcome.response is None:
        raise StateError("the Responder sent no response to the speed row's I_MESSAGE")
    return outcome.response


class ResumedInitiator(Protocol):
    """A PSK or PK Initiator rebuilt from its own I_MESSAGE."""

    @property
    def v(self) -> bool: ...
    @property
    def result(self) -> ExchangeResult: ...

    def receive(self, data: bytes, now: float) -> ExchangeResult: ...


def receive_if_verified(initiator: ResumedInitiator, r_message: bytes | None, now: float) -> ExchangeResult:
    """``complete`` where the response is optional (PSK, PK): the verification message the I_MESSAGE asked for
    with V (RFC 3830 §5.2), or the keys as sent when V is not set."""
    if r_message is not None:
        return initiator.receive(r_message, now)
    if initiator.v:
        raise UsageError("the I_MESSAGE set V: pass the verification message (--rmsg)")
    return initiator.result
