"""The KMS schema: one community, its users, the key sets issued to them (issue 9 §4).

Revision ID: 0001
Revises:
Create Date: 2026-12-06

Secrets (KSAK, z, each user's SSK and RSK) are stored only as AES-256-GCM
ciphertexts (``*_sealed``); :mod:`mikey.kms.store` seals and opens them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


def upgrade() -> None:
    op.create_table(
        "kms_community",
        # One community per database: the row's id is always 1.
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("kms_uri", sa.Text(), nullable=False),
        sa.Column("kpak", sa.LargeBinary(), nullable=False),
        sa.Column("z_public", sa.LargeBinary(), nullable=False),
        sa.Column("sakke_params", sa.Integer(), nullable=False),
        sa.Column("id_scheme", sa.Integer(), nullable=False),
        sa.Column("key_period", sa.BigInteger(), nullable=False),
        sa.Column("key_period_offset", sa.BigInteger(), nullable=False),
        sa.Column("ksak_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("z_master_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_kms_community_single"),
    )
    op.create_table(
        "kms_users",
        sa.Column("uri", sa.Text(), primary_key=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "kms_key_sets",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("user_uri", sa.Text(), sa.ForeignKey("kms_users.uri"), nullable=False),
        sa.Column("period_no", sa.BigInteger(), nullable=False),
        sa.Column("identifier", sa.LargeBinary(), nullable=False),
        sa.Column("pvt", sa.LargeBinary(), nullable=False),
        sa.Column("ssk_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("rsk_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("issued_at", sa.Double(), nullable=False),
        sa.Column("issued_to", sa.Text(), nullable=True),
        sa.UniqueConstraint("user_uri", "period_no", name="uq_kms_key_sets_user_period"),
    )
    op.create_index("ix_kms_key_sets_issued_at", "kms_key_sets", ["issued_at"])


def downgrade() -> None:
    op.drop_index("ix_kms_key_sets_issued_at", table_name="kms_key_sets")
    op.drop_table("kms_key_sets")
    op.drop_table("kms_users")
    op.drop_table("kms_community")
