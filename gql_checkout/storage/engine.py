"""Engine creation: one place that knows the differences between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

SQLITE_BUSY_TIMEOUT_MS = 5_000


def create_engine(database_url: str | URL, *, pooled: bool = True) -> AsyncEngine:
    """The engine for a database URL; ``pooled=False`` for a holder of one long-lived
    connection (SQLite's writer), which then never counts against the pool."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    engine = create_async_engine(url) if pooled else create_async_engine(url, poolclass=NullPool)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def sqlite_file(url: str | URL) -> str | None:
    """The file of an SQLite database URL; None for PostgreSQL or an in-memory database."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return url.database
    return None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: readers never block the writer. synchronous=FULL: an acknowledged payment
    # state survives power loss too (writes are rare next to polls, so the fsync is cheap
    # overall). busy_timeout: writers queue instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()
