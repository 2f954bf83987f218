"""The KMS's MIKEY-IBAKE master secret (RFC 6267 §4.2.1; RFC 5091 §5.1.2).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

* ``kms_ibake_master``: a single row (``id`` = 1) made on first use: the Boneh-Franklin public
  parameters (in clear: they are public), the master secret s sealed with the AtRestKey (bound to
  the row), the key period granularity (``YYYY-MM`` ...) and when it was made.  The primary key
  makes creation race-safe: of several KMS processes storing one at once, one row is kept and all
  re-read it.  The users' PSKs are those of ``kms_ticket_credentials`` (one PSK per party).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "kms_ibake_master",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("params", sa.LargeBinary(), nullable=False),
        sa.Column("master_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("key_period", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_kms_ibake_master_one_row"),
    )


def downgrade() -> None:
    op.drop_table("kms_ibake_master")
