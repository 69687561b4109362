"""A checkout session stores the hcpToken it was created with.

A poll answers with its session's token. Signed on every read, a token costs a poll of a
session not read lately ~10 µs of CPU in-process (claims, HMAC, base64 and its memo's
bookkeeping), a quarter of what such a poll costs beyond a repeated one (docs/performance.md).
Stored, it comes with the row the poll reads anyway.

Storing it exposes nothing new: a session's id and its merchant's id, both in the same
row, are all a read needs, and a read answers with the token. Rows made before this
revision have none and are signed on read, as before; so are tokens signed by a key that
no longer signs (``service.hcp_token``).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("checkout_sessions", sa.Column("hcp_token", sa.String(512), nullable=True))


def downgrade() -> None:
    op.drop_column("checkout_sessions", "hcp_token")
