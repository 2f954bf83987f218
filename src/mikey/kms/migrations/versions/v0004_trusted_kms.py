"""Trusted external KMS certificates and the KmsCertCache number (TS 33.180 §D.3.4).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

* ``kms_trusted_certs``: one row per other KMS whose KmsCertificate (§D.3.2.2) this KMS tells its
  clients to trust (``certcache``), keyed by that KMS's URI: its public keys (Z, KPAK, in clear:
  they are public), key-period rules, UserIdFormat, ParameterSet, the KmsCertificate ``Version``
  and ``Role`` it was received with, its KmsDomainList (a JSON list), who added it and when.
* ``kms_cert_cache``: a single row (``id`` = 1) holding the CacheNum, 0 at first; every change to
  ``kms_trusted_certs`` (add, replace, remove) increments it in the same transaction, so clients
  holding the current number know nothing changed.  The UPDATE of that row also serialises
  concurrent changes made by several KMS processes on one database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "kms_trusted_certs",
        sa.Column("kms_uri", sa.Text(), primary_key=True),
        sa.Column("cert_version", sa.Text(), nullable=False),
        sa.Column("cert_role", sa.Text(), nullable=False),
        sa.Column("id_scheme", sa.Integer(), nullable=False),
        sa.Column("key_period", sa.BigInteger(), nullable=False),
        sa.Column("key_period_offset", sa.BigInteger(), nullable=False),
        sa.Column("z_public", sa.LargeBinary(), nullable=False),
        sa.Column("kpak", sa.LargeBinary(), nullable=False),
        sa.Column("sakke_params", sa.Integer(), nullable=False),
        sa.Column("domains", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("added_at", sa.Double(), nullable=False),
        sa.Column("added_by", sa.Text(), nullable=False),
    )
    cache = op.create_table(
        "kms_cert_cache",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("cache_num", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_kms_cert_cache_one_row"),
    )
    op.bulk_insert(cache, [{"id": 1, "cache_num": 0}])


def downgrade() -> None:
    op.drop_table("kms_cert_cache")
    op.drop_table("kms_trusted_certs")
