"""Alembic environment for the KMS database: runs on the connection :mod:`mikey.kms.store` hands over.

The store builds the :class:`alembic.config.Config` in code and puts its open
connection in ``config.attributes["connection"]``; there is no ini file and no
offline (SQL script) mode.
"""

from __future__ import annotations

from alembic import context

from mikey.kms.migrations import VERSION_TABLE

_connection = context.config.attributes.get("connection")
if _connection is None:
    raise RuntimeError("mikey.kms migrations run only through mikey.kms.store (no connection given)")
context.configure(connection=_connection, target_metadata=None, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
