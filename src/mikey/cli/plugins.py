"""The CLI's mode plugins, in the order ``--help`` lists them (the interface is :mod:`mikey.cli.plugin_base`)."""

from __future__ import annotations

from . import mode_dh, mode_dhhmac, mode_ibake, mode_pk, mode_psk, mode_rsa_r, mode_sakke, mode_ticket
from .plugin_base import ModePlugin

__all__ = ["PLUGINS", "MODE_NAMES", "load_plugins"]

#: Every mode's plugin; its ``name`` is the ``--mode`` value.
PLUGINS: tuple[ModePlugin, ...] = (
    mode_psk.PLUGIN,
    mode_pk.PLUGIN,
    mode_dh.PLUGIN,
    mode_dhhmac.PLUGIN,
    mode_rsa_r.PLUGIN,
    mode_sakke.PLUGIN,
    mode_ticket.PLUGIN,
    mode_ibake.PLUGIN,
)

#: The ``--mode`` names, in listing order.
MODE_NAMES: tuple[str, ...] = tuple(p.name for p in PLUGINS)


def load_plugins() -> dict[str, ModePlugin]:
    """``{--mode name: plugin}`` in :data:`MODE_NAMES` order."""
    return {p.name: p for p in PLUGINS}
