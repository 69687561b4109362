"""Engine creation: one place that knows the differences between SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.util.concurrency import await_, in_greenlet

SQLITE_BUSY_TIMEOUT_MS = 5_000
POOL_SIZE = 20  # PostgreSQL connections per process (and the change bus's listener)


def create_engine(database_url: str | URL) -> AsyncEngine:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        # 20 connections kept, none beyond: an overflow connection is closed when it is
        # checked in, so under load every request past the pool's size paid for a new
        # connection (TLS attempt, authentication: a third of a create's CPU); now it
        # waits for one that is checked in, with the same most of 20.
        engine = create_async_engine(url, pool_size=POOL_SIZE, max_overflow=0)
        _ping_when_idle(engine)
        return engine
    engine = create_async_engine(url)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


class SQLiteOnTheLoop(SQLiteDialect_pysqlite):
    """The standard sqlite3 driver, declared async: an AsyncConnection of it runs each
    statement at once, on the event loop (inside SQLAlchemy's greenlet), with no thread
    hop. Only for statements that never wait: SQLite's writer holds the file's write lock
    (taken in a thread) before it sends any, and sends its COMMIT from a thread."""

    is_async = True
    supports_statement_cache = True


registry.register("sqlite.on_the_loop", __name__, "SQLiteOnTheLoop")


def create_sqlite_writer_engine(database_file: str) -> AsyncEngine:
    """An engine of one connection, no pool, statements on the loop (``SQLiteOnTheLoop``);
    the sqlite3 connection may also be used from one other thread at a time."""
    engine = create_async_engine(
        URL.create("sqlite+on_the_loop", database=database_file),
        poolclass=NullPool,
        connect_args={"check_same_thread": False, "factory": _OnTheLoopConnection},
    )
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    event.listen(engine.sync_engine, "before_cursor_execute", _await_nothing)
    return engine


class _OnTheLoopCursor(sqlite3.Cursor):
    async def _async_soft_close(self) -> None:
        """What SQLAlchemy's asyncio layer calls on a result it hands back: rows of a
        sqlite3 cursor are read on the loop as asked, so there is nothing to prefetch."""


class _OnTheLoopConnection(sqlite3.Connection):
    def cursor(self, factory: Any = _OnTheLoopCursor) -> Any:
        return super().cursor(factory)


async def _nothing() -> None:
    """Completes without suspending."""


def _await_nothing(*_args: Any) -> None:
    # AsyncConnection.execute insists that a statement awaited something, as an async
    # driver always does; this await completes at once, without a trip through the loop.
    # (A statement sent from a thread, outside any greenlet, awaits nothing.)
    if in_greenlet():
        await_(_nothing())


# A pooled connection unused this long is pinged before it is handed out.
IDLE_PING_SECONDS = 10.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """``pool_pre_ping``, only where it pays: a connection back in the pool within the
    last ``IDLE_PING_SECONDS`` has just worked and is handed out as it is; one idle longer
    (the database may have restarted or failed over since) is pinged first, and replaced
    if the ping fails. Under load that saves a round trip per checkout: a create made
    eight round trips to PostgreSQL, two of them pings."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_PING_SECONDS:
            return  # new, or in use a moment ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError("the idle connection did not answer a ping") from error
        if not alive:
            raise DisconnectionError("the idle connection did not answer a ping")

    event.listen(pool, "checkin", checked_in)
    event.listen(pool, "checkout", checkout)


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
