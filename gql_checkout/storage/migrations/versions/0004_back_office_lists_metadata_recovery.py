"""The back office: sessions carry metadata and the session they recover, and lists have
their indexes.

``metadata`` is JSON text on SQLite and jsonb on PostgreSQL, ``{}`` for every existing
row. ``recovered_from_id`` has no foreign key: sessions are never deleted, and SQLite
cannot drop a column a foreign key names, which the downgrade does.

Each list filter reads one index range in list order (merchant first, then the column
compared for equality, then ``created_at, id``); the parent's index gains the same order
and replaces the one on ``parent_id`` alone, which it serves as well.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from gql_checkout.storage.tables import JSON_DOCUMENT

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TABLE = "checkout_sessions"
_INDEXES = {
    "ix_checkout_sessions_merchant_created": ["merchant_id", "created_at", "id"],
    "ix_checkout_sessions_merchant_status_created": ["merchant_id", "status", "created_at", "id"],
    "ix_checkout_sessions_merchant_reference_created": [
        "merchant_id",
        "merchant_reference",
        "created_at",
        "id",
    ],
    "ix_checkout_sessions_parent_created": ["parent_id", "created_at", "id"],
}


def upgrade() -> None:
    op.add_column(
        _TABLE,
        sa.Column("metadata", JSON_DOCUMENT, nullable=False, server_default=sa.text("'{}'")),
    )
    op.add_column(_TABLE, sa.Column("recovered_from_id", sa.Uuid(), nullable=True))
    for name, columns in _INDEXES.items():
        op.create_index(name, _TABLE, columns)
    op.drop_index("ix_checkout_sessions_parent_id", _TABLE)


def downgrade() -> None:
    op.create_index("ix_checkout_sessions_parent_id", _TABLE, ["parent_id"])
    for name in _INDEXES:
        op.drop_index(name, _TABLE)
    op.drop_column(_TABLE, "recovered_from_id")
    op.drop_column(_TABLE, "metadata")
