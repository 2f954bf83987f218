"""The MIKEY-TICKET KMS role (RFC 6043; issue 10 §9): users' PSKs and rights, TPKs, resolved tickets.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

* ``kms_ticket_credentials``: a party the KMS shares a PSK with (RFC 6043 §4.2.1.1, §4.2.3.1), one
  row per device; ``key_id`` is the IDRpsk data naming the PSK (the identity when the device sends
  no IDRpsk), ``psk_sealed`` the PSK sealed under the at-rest key; ``groups`` a JSON list of the
  group identities (hex) the party may resolve for (§12.5); the rights to request / resolve; whether
  it is a peer KMS (§10), and then ``url``, where this KMS forwards Resolves of that KMS's tickets.
* ``kms_ticket_tpks``: ticket protection keys (Appendix A), sealed; ``owner`` is who else shares it
  (modes 2 and 3 of §4.1.1); ``default_marker`` = 1 on the KMS's own default TPK (UNIQUE: one).
* ``kms_ticket_uses`` and ``kms_ticket_resolutions``: the resolves of tickets whose policy forbids
  reuse (J = 0, §5.3), shared by every KMS instance on the database: a ticket's first resolve fixes
  its use (Vi of the TRANSFER_INIT, with key forking) under the ticket id PRIMARY KEY, and
  UNIQUE(ticket id, device) lets exactly one of two concurrent resolves by one device succeed.
  Rows are deleted once the ticket has expired (``expires``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


def upgrade() -> None:
    op.create_table(
        "kms_ticket_credentials",
        sa.Column("key_id", sa.LargeBinary(), primary_key=True),
        sa.Column("identity", sa.LargeBinary(), nullable=False),
        sa.Column("psk_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("groups", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("may_request", sa.Boolean(), nullable=False),
        sa.Column("may_resolve", sa.Boolean(), nullable=False),
        sa.Column("peer_kms", sa.Boolean(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_kms_ticket_credentials_identity", "kms_ticket_credentials", ["identity"])
    op.create_table(
        "kms_ticket_tpks",
        sa.Column("key_id", sa.LargeBinary(), primary_key=True),
        sa.Column("key_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("owner", sa.LargeBinary(), nullable=True),
        sa.Column("default_marker", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.UniqueConstraint("default_marker", name="uq_kms_ticket_tpks_default"),
        sa.CheckConstraint("default_marker IS NULL OR default_marker = 1", name="ck_kms_ticket_tpks_default"),
    )
    op.create_index("ix_kms_ticket_tpks_owner", "kms_ticket_tpks", ["owner"])
    op.create_table(
        "kms_ticket_uses",
        sa.Column("ticket_id", sa.LargeBinary(), primary_key=True),
        sa.Column("use_id", sa.LargeBinary(), nullable=False),
        sa.Column("first_at", sa.Double(), nullable=False),
        sa.Column("expires", sa.Double(), nullable=True),
    )
    op.create_index("ix_kms_ticket_uses_expires", "kms_ticket_uses", ["expires"])
    op.create_table(
        "kms_ticket_resolutions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.LargeBinary(), nullable=False),
        sa.Column("device", sa.LargeBinary(), nullable=False),
        sa.Column("resolver", sa.LargeBinary(), nullable=False),
        sa.Column("use_id", sa.LargeBinary(), nullable=False),
        sa.Column("resolved_at", sa.Double(), nullable=False),
        sa.Column("expires", sa.Double(), nullable=True),
        sa.UniqueConstraint("ticket_id", "device", name="uq_kms_ticket_resolutions_ticket_device"),
    )
    op.create_index("ix_kms_ticket_resolutions_expires", "kms_ticket_resolutions", ["expires"])


def downgrade() -> None:
    op.drop_index("ix_kms_ticket_resolutions_expires", table_name="kms_ticket_resolutions")
    op.drop_table("kms_ticket_resolutions")
    op.drop_index("ix_kms_ticket_uses_expires", table_name="kms_ticket_uses")
    op.drop_table("kms_ticket_uses")
    op.drop_index("ix_kms_ticket_tpks_owner", table_name="kms_ticket_tpks")
    op.drop_table("kms_ticket_tpks")
    op.drop_index("ix_kms_ticket_credentials_identity", table_name="kms_ticket_credentials")
    op.drop_table("kms_ticket_credentials")
