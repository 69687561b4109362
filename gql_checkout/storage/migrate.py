"""Applies the Alembic migrations shipped inside the package to the configured database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

_SCRIPT_LOCATION = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration for the migrations shipped here, run on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(_SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    return config


# Replicas starting together on PostgreSQL take turns: the first migrates, the rest
# find the schema at head.
_MIGRATION_LOCK_ID = 0x67716C63  # "gqlc"


async def migrate(engine: AsyncEngine) -> None:
    """Creates or upgrades the schema, all or nothing; safe to run again (and from several
    replicas)."""
    await run_alembic(engine, command.upgrade, "head")


Step = Callable[[Config, str], None]


def _apply(connection: Connection, step: Step, revision: str) -> None:
    step(alembic_config(connection), revision)


async def run_alembic(engine: AsyncEngine, step: Step, revision: str) -> None:
    """``step`` (Alembic's upgrade or downgrade) to ``revision``, in one transaction."""
    if engine.dialect.name == "sqlite":
        await _run_on_sqlite(engine, step, revision)
        return
    async with engine.begin() as connection:
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:lock_id)"), {"lock_id": _MIGRATION_LOCK_ID}
        )
        await connection.run_sync(_apply, step, revision)


async def _run_on_sqlite(engine: AsyncEngine, step: Step, revision: str) -> None:
    """SQLite's own procedure for changing a schema (sqlite.org/lang_altertable.html).

    Python's sqlite3 starts a transaction only before a row is written, so without an
    explicit BEGIN a table created or renamed would be committed at once, and a migration
    stopped halfway would leave half a schema. IMMEDIATE takes the write lock up front:
    another process migrating waits for it instead of failing. Foreign keys are off while
    tables are rebuilt and are checked once, before the commit: with them on, every row
    copied was checked against the other rows by an unindexed column (copying 1M sessions
    had not finished after 10 minutes; with them off it takes 22 s).
    """
    async with engine.connect() as connection:
        await connection.exec_driver_sql("PRAGMA foreign_keys = OFF")  # outside a transaction
        try:
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
            await connection.run_sync(_apply, step, revision)
            violations = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
            if violations:
                raise RuntimeError(f"the migration broke foreign keys: {violations[:5]}")
            await connection.commit()
        finally:
            await connection.rollback()  # nothing to roll back after the commit
            # The connection goes back to the pool (an in-memory database has only it).
            await connection.exec_driver_sql("PRAGMA foreign_keys = ON")
            await connection.commit()
