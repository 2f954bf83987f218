"""Alembic migrations of the KMS database (:mod:`mikey.kms.store` runs them; no alembic.ini needed)."""

from __future__ import annotations

#: Alembic's bookkeeping table, named so that it cannot clash with another application's in a shared database.
VERSION_TABLE = "kms_alembic_version"
