"""Applies the Alembic migrations shipped inside the package to the configured database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

_SCRIPT_LOCATION = Path(__file__).with_name("migrations")


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


# Replicas starting together on PostgreSQL take turns: the first migrates, the rest
# find the schema at head. (SQLite serialises writers by itself.)
_MIGRATION_LOCK_ID = 0x67716C63  # "gqlc"


async def migrate(engine: AsyncEngine) -> None:
    """Creates or upgrades the schema; safe to run again (and from several replicas)."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:lock_id)"), {"lock_id": _MIGRATION_LOCK_ID}
            )
        await connection.run_sync(_upgrade)
