"""Fixtures shared by the test modules."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads as often as possible, so that check and insert interleave if they can."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)
