"""On SQLite, checkout sessions are stored in their primary key's B-tree (WITHOUT ROWID).

A rowid table finds a session by id in two B-trees: the id's index, then the table by
rowid. Stored by id, one descent finds the row. With a million sessions few of those
pages are in SQLite's cache, and a poll of a session not read lately spent ~29 µs in
SQLite against ~19 µs so (docs/performance.md). PostgreSQL is unchanged.

The table is rebuilt from its own stored definition, so its columns and constraints
stay exactly what the earlier revisions made; the indexes are made again on the new table.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Callable

from alembic import op
from sqlalchemy import text

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TABLE = "checkout_sessions"
_OLD = "checkout_sessions_rebuilt"


def upgrade() -> None:
    _rebuild(lambda definition: definition + " WITHOUT ROWID")


def downgrade() -> None:
    _rebuild(lambda definition: definition.removesuffix(" WITHOUT ROWID"))


def _rebuild(redefine: Callable[[str], str]) -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return
    definitions: dict[str, str | None] = dict(
        connection.execute(
            text("SELECT type || ' ' || name, sql FROM sqlite_master WHERE tbl_name = :table"),
            {"table": _TABLE},
        ).all()
    )
    table = definitions.pop(f"table {_TABLE}")
    assert table is not None
    indexes = [sql for sql in definitions.values() if sql is not None]  # None: automatic ones
    # gql_checkout.storage.migrate runs this in one transaction, foreign keys checked at its end.
    op.execute(f"ALTER TABLE {_TABLE} RENAME TO {_OLD}")
    op.execute(redefine(table))
    op.execute(f"INSERT INTO {_TABLE} SELECT * FROM {_OLD}")  # noqa: S608 - constant names
    op.execute(f"DROP TABLE {_OLD}")  # and its indexes
    for index in indexes:
        op.execute(index)
