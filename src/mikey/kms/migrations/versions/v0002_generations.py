"""Community generations (key rotation), per-client integrity keys and an admin audit log (issue 9 §3).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

* ``kms_community`` may hold several rows: each is one generation of the community's master
  keys (KSAK/KPAK, z/Z), ``id`` its generation number; the highest id is the active one.
  The v0001 row (id 1) becomes generation 1.  ``created_by`` names who rotated (audit).
* ``kms_key_sets.generation`` names the generation a key set was issued under (existing rows:
  1); the uniqueness is now per (generation, user, period), so that two processes still never
  store two different key sets for one user and period of one generation.
* ``kms_users.integrity_key_sealed``: the client's integrity key InK (TS 33.180 §D.3.x, signs
  SignedKmsRequest/SignedKmsResponse with HMAC-SHA-256), AES-256-GCM sealed like every secret.
* ``kms_audit``: admin actions (who, when, what).

Batch mode: on SQLite, Alembic rebuilds a table to change its constraints (copy, drop, rename,
all inside the migration's one transaction; never a table other rows reference, whose rebuild
would break their foreign keys); on PostgreSQL it issues plain ALTER statements.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


def upgrade() -> None:
    with op.batch_alter_table("kms_community") as batch:
        batch.drop_constraint("ck_kms_community_single", type_="check")
        batch.add_column(sa.Column("created_by", sa.Text(), nullable=True))
        batch.create_check_constraint("ck_kms_community_generation", "id >= 1")
    with op.batch_alter_table("kms_users", recreate="never") as batch:  # referenced by kms_key_sets: not rebuilt
        batch.add_column(sa.Column("integrity_key_sealed", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("kms_key_sets") as batch:
        batch.add_column(sa.Column("generation", sa.Integer(), nullable=False, server_default="1"))
        batch.drop_constraint("uq_kms_key_sets_user_period", type_="unique")
        batch.create_unique_constraint("uq_kms_key_sets_generation_user_period",
                                       ["generation", "user_uri", "period_no"])
        batch.create_foreign_key("fk_kms_key_sets_generation", "kms_community", ["generation"], ["id"])
    op.create_table(
        "kms_audit",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
    )
    op.create_index("ix_kms_audit_at", "kms_audit", ["at"])


def downgrade() -> None:
    """Back to one community: only possible while generation 1 is the only one."""
    op.drop_index("ix_kms_audit_at", table_name="kms_audit")
    op.drop_table("kms_audit")
    with op.batch_alter_table("kms_key_sets") as batch:
        batch.drop_constraint("fk_kms_key_sets_generation", type_="foreignkey")
        batch.drop_constraint("uq_kms_key_sets_generation_user_period", type_="unique")
        batch.create_unique_constraint("uq_kms_key_sets_user_period", ["user_uri", "period_no"])
        batch.drop_column("generation")
    # kms_users is referenced by kms_key_sets: never rebuilt (SQLite >= 3.35 drops a column in place).
    with op.batch_alter_table("kms_users", recreate="never") as batch:
        batch.drop_column("integrity_key_sealed")
    with op.batch_alter_table("kms_community") as batch:
        batch.drop_constraint("ck_kms_community_generation", type_="check")
        batch.drop_column("created_by")
        batch.create_check_constraint("ck_kms_community_single", "id = 1")
