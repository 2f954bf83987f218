"""Fixtures shared by the test modules."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pgdb
import pytest
import sqlalchemy as sa

from mikey.kms.store import database_url


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads as often as possible, so that check and insert interleave if they can."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.fixture(scope="module")
def pg_database() -> Iterator[sa.URL]:
    """A throwaway PostgreSQL database for the module, dropped afterwards (tests/pgdb.py)."""
    yield from pgdb.throwaway_database()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pgdb.needs_postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> sa.URL:
    """A KMS database URL: an SQLite file, then a fresh schema of the module's PostgreSQL database."""
    if request.param == "sqlite":
        return database_url(f"sqlite:///{tmp_path / 'kms.sqlite3'}")
    return pgdb.schema_url(request.getfixturevalue("pg_database"))
