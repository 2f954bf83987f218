"""The ``mikey`` command-line tool (console script ``mikey = mikey.cli:main``)."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
