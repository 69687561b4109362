"""Merchants and checkout sessions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from gql_checkout.storage.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merchants",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("api_key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("appearance", sa.JSON(), nullable=False),
        sa.Column("card_categories", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_merchants_name", "merchants", ["name"])
    op.create_table(
        "checkout_sessions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("merchant_id", sa.Uuid(), sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("merchant_reference", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("failed_at", UTCDateTime(), nullable=True),
        sa.Column("canceled_at", UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("payment_method", sa.JSON(), nullable=True),
        sa.Column("failure_reason", sa.String(500), nullable=True),
        sa.Column("parent_id", sa.Uuid(), sa.ForeignKey("checkout_sessions.id"), nullable=True),
        sa.Column(
            "current_child_id", sa.Uuid(), sa.ForeignKey("checkout_sessions.id"), nullable=True
        ),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("idempotency_fingerprint", sa.String(64), nullable=True),
    )
    op.create_index("ix_checkout_sessions_parent_id", "checkout_sessions", ["parent_id"])
    op.create_index(
        "uq_checkout_sessions_merchant_idempotency_key",
        "checkout_sessions",
        ["merchant_id", "idempotency_key"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("checkout_sessions")
    op.drop_table("merchants")
