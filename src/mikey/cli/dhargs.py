"""Options and output shared by the Diffie-Hellman plugins (``--mode dh``, RFC 3830 §3.3; ``--mode dhhmac``, RFC 4650).

``--dh-group 0|1|2`` chooses OAKLEY 5/1/2 (RFC 3830 §6.4); only OAKLEY 5 is allowed
unless ``--allow-dh-group 1`` / ``--allow-dh-group 2`` names the weak group, on every
side that sees it.  ``--dh-private HEX`` fixes the own exponent.  Both sides
contribute to the TGK, so the stateless ``complete`` needs the Initiator's exponent:
``initiate --show-keys`` prints it as ``dh_private``.
"""

from __future__ import annotations

import argparse
from typing import Protocol

from ..crypto import dh as dh_crypto
from .common import hex_int
from .plugin_base import InitiateOutput, PendingInitiator, pending_result

__all__ = ["add_dh_arguments", "allowed_groups", "initiate_output"]


def add_dh_arguments(parser: argparse._ActionsContainer, command: str) -> None:
    """``--dh-group`` (initiate), ``--dh-private`` (required by complete) and ``--allow-dh-group``."""
    if command == "initiate":
        parser.add_argument("--dh-group", type=int, choices=(0, 1, 2), default=0,
                            help="DH group: 0 OAKLEY 5 (default), 1 OAKLEY 1, 2 OAKLEY 2 (RFC 3830 §6.4; 1 and 2 "
                                 "need --allow-dh-group)")
    parser.add_argument("--dh-private", type=hex_int, metavar="HEX", required=command == "complete",
                        help="the Initiator's DH exponent ('initiate --show-keys' prints it as dh_private)"
                        if command == "complete" else "own DH exponent (default: random)")
    parser.add_argument("--allow-dh-group", type=int, action="append", choices=sorted(dh_crypto.WEAK_GROUPS),
                        default=[], metavar="N",
                        help="also allow weak DH group N: 1 (768-bit OAKLEY 1) or 2 (1024-bit OAKLEY 2); "
                             "off by default (repeatable)")


def allowed_groups(args: argparse.Namespace) -> frozenset[int]:
    """The DH groups allowed: OAKLEY 5 plus any ``--allow-dh-group``."""
    return dh_crypto.DEFAULT_GROUPS | frozenset(args.allow_dh_group)


class _Group(Protocol):
    @property
    def group_id(self) -> int: ...


class DhPendingInitiator(PendingInitiator, Protocol):
    """A DH or DH-HMAC Initiator that has sent its I_MESSAGE."""

    @property
    def group(self) -> _Group: ...

    def export_dh_private(self) -> int: ...


def initiate_output(initiator: DhPendingInitiator, i_message: bytes) -> InitiateOutput:
    """What ``initiate`` prints for a DH mode: no keys before DHr, the group, and the secret exponent."""
    extra = {"dh_group": initiator.group.group_id, "dh_private": f"{initiator.export_dh_private():x}",
             "note": "the TGK needs the R_MESSAGE: run complete with --dh-private"}
    return InitiateOutput(i_message, pending_result(initiator), extra=extra)
