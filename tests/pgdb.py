"""PostgreSQL for the KMS storage tests: the server's URL, whether it answers, and throwaway databases.

The URL is ``MIKEY_TEST_POSTGRES_URL`` (default ``postgresql://127.0.0.1:5432/test``, the
machines' server, trust auth).  Without a reachable server the PostgreSQL tests skip, except
with ``CI`` set, where importing this module fails (``.ci/run`` starts the server).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from mikey.kms.store import database_url

POSTGRES_URL = os.environ.get("MIKEY_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


def admin_url() -> str:
    """The libpq URL of the server's own database (for CREATE/DROP DATABASE)."""
    return database_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(False)


def _postgres_down() -> str | None:
    try:
        import psycopg

        with psycopg.connect(admin_url(), connect_timeout=2):
            return None
    except Exception as exc:  # ImportError (no driver) or any connection failure
        return f"{type(exc).__name__}: {exc}"


PG_DOWN = _postgres_down()
if PG_DOWN is not None and os.environ.get("CI"):
    raise RuntimeError(f"CI is set but PostgreSQL at {POSTGRES_URL} is not reachable ({PG_DOWN}); .ci/run starts it")
needs_postgres = pytest.mark.skipif(PG_DOWN is not None, reason=f"no PostgreSQL at {POSTGRES_URL}: {PG_DOWN}")


def throwaway_database() -> Iterator[sa.URL]:
    """A new PostgreSQL database, yielded as its SQLAlchemy URL and dropped afterwards."""
    import psycopg

    name = f"mikey_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(POSTGRES_URL).set(database=name)
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def schema_url(base: sa.URL) -> sa.URL:
    """A fresh schema in *base*'s database, selected for every connection through ``search_path``."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return base.update_query_dict({"options": f"-csearch_path={schema}"})
