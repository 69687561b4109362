"""Write transactions: ``async with writes.begin() as conn`` is one logical write, all or
nothing, acknowledged only once it is durable.

PostgreSQL takes concurrent transactions as they come (``EngineWrites``). SQLite has one
write lock per file: a pool of connections contending for it makes the losers sleep in
SQLite's busy handler, with growing back-offs, which is what gave 16 concurrent creators
second-long tails. ``SqliteWriter`` owns one connection instead and runs the process's
writes on it one after another, in arrival order, their statements on the event loop (no
thread hop: SQLite answers them from memory once the write lock is held). Writes that queue
up while another
runs (or while a commit's fsync runs) join one transaction and commit together (group
commit): one fsync for the lot. Each write after the first of its batch runs inside a
SAVEPOINT, so a write that fails rolls back alone and the others still commit; none is
acknowledged before the COMMIT that makes it durable (``synchronous=FULL``).

Other processes on the same file (``serve --workers N``) still meet at SQLite's lock:
each has its own writer, and ``busy_timeout`` queues them, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gql_checkout.storage.engine import create_sqlite_writer_engine, sqlite_file

# A batch commits after this many writes even if more are queued: bounds how long the
# first write of a long queue waits for its acknowledgement.
MAX_BATCH = 64


class Writes(Protocol):
    def begin(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """One write transaction: committed (and durable) when the block exits normally,
        rolled back when it raises."""

    def one_statement(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A write of exactly one statement, which is its own transaction: durable when
        the statement returns. As ``begin``, less PostgreSQL's BEGIN and COMMIT (two of a
        create's three round trips); SQLite's writer batches it like any other write."""

    async def close(self) -> None:
        """Releases the connection the writer holds, if any."""


class EngineWrites:
    """A transaction on a pooled connection of the engine per write."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def begin(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._engine.begin()

    def one_statement(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._autocommit.connect()

    async def close(self) -> None:
        """The engine's pool is the container's to dispose."""


class SqliteWriter:
    """One connection, writes in arrival order, group commit with a savepoint per write."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = MAX_BATCH) -> None:
        database_file = sqlite_file(engine.url)
        assert database_file is not None, "an in-memory database has no second connection"
        # Its own engine of one connection, statements on the loop: a write's statements
        # cost no thread hop; BEGIN IMMEDIATE (which may wait for another process) and
        # COMMIT (the fsync) run in a thread, once per batch.
        self._engine = create_sqlite_writer_engine(database_file)
        self._max_batch = max_batch
        self._turn = asyncio.Lock()  # FIFO: one write on the connection at a time
        self._queued = 0  # writes waiting for their turn
        self._connection: AsyncConnection | None = None
        # The writes of the open transaction that finished, awaiting its COMMIT; None when
        # no transaction is open.
        self._batch: list[asyncio.Future[None]] | None = None
        # A COMMIT runs as a task of its own, so that a cancelled caller cannot leave the
        # batch's writes unanswered; the next write waits for it.
        self._committing: asyncio.Task[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()  # referenced until done

    @property
    def engine(self) -> AsyncEngine:
        """The writer's own engine (one connection, no pool): where its statements go."""
        return self._engine

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        self._queued += 1
        try:
            await self._turn.acquire()
        except asyncio.CancelledError:
            self._flush_if_abandoned()
            raise
        finally:
            self._queued -= 1
        # Answered once the writes before it in its transaction are durable, whether it
        # committed with them or failed: a failed write's caller may read what they wrote
        # (an idempotency key's winner) and must find it committed.
        durable: asyncio.Future[None] | None = None
        failure: BaseException | None = None
        try:
            if self._committing is not None:
                await asyncio.shield(self._committing)
            conn = await self._open()
            first = self._batch is None
            if first:
                await _off_the_loop(conn, "BEGIN IMMEDIATE")
                self._batch = []
            else:
                await conn.exec_driver_sql("SAVEPOINT write")
            try:
                yield conn
            except BaseException as error:
                failure = error
                if first:
                    # Nothing else in the transaction yet: roll it all back.
                    self._batch = None
                    await conn.exec_driver_sql("ROLLBACK")
                    raise
                await conn.exec_driver_sql("ROLLBACK TO write")
            if not first:
                await conn.exec_driver_sql("RELEASE write")
            assert self._batch is not None
            durable = asyncio.get_running_loop().create_future()
            self._batch.append(durable)
            await self._commit_unless_more_queued()
        finally:
            self._turn.release()
        assert durable is not None
        if failure is None:
            await durable
            return
        with contextlib.suppress(Exception):
            await durable
        raise failure

    def one_statement(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self.begin()

    async def close(self) -> None:
        """Closes the connection; a later write opens a new one (on any event loop)."""
        async with self._turn:
            if self._committing is not None:
                await self._committing
            if self._connection is not None:
                await self._connection.close()
                self._connection = None
            await self._engine.dispose()
        self._turn = asyncio.Lock()

    async def _open(self) -> AsyncConnection:
        if self._connection is None:
            # Driver-level autocommit: the transactions are the ones this class begins.
            connection = await self._engine.connect()
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            self._connection = connection
        return self._connection

    async def _commit_unless_more_queued(self) -> None:
        """Commits the open transaction unless another write is about to join it."""
        batch = self._batch
        if batch is None or (self._queued and len(batch) < self._max_batch):
            return
        self._batch = None
        self._committing = asyncio.create_task(self._commit(batch))
        await asyncio.shield(self._committing)

    async def _commit(self, batch: list[asyncio.Future[None]]) -> None:
        assert self._connection is not None
        try:
            await _off_the_loop(self._connection, "COMMIT")
        except Exception as error:
            with contextlib.suppress(Exception):
                await self._connection.exec_driver_sql("ROLLBACK")
            outcome: Exception | None = error
        else:
            outcome = None
        finally:
            self._committing = None
        for durable in batch:
            if durable.done():
                continue
            if outcome is None:
                durable.set_result(None)
            else:
                durable.set_exception(outcome)

    def _flush_if_abandoned(self) -> None:
        """A write left the queue before its turn: if the writes of the open transaction
        were counting on it to commit them, commit them now."""
        if self._queued == 1 and self._batch is not None and not self._turn.locked():
            flush = asyncio.get_running_loop().create_task(self._flush())
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)

    async def _flush(self) -> None:
        async with self._turn:
            await self._commit_unless_more_queued()


async def _off_the_loop(conn: AsyncConnection, statement: str) -> None:
    """A statement that may wait (for another process's write lock, for the disk) run in
    a thread, while the loop serves other requests."""
    sync = conn.sync_connection
    assert sync is not None
    await asyncio.to_thread(sync.exec_driver_sql, statement)


def create_writes(engine: AsyncEngine) -> Writes:
    """SQLite's single writer for a database file, else the engine's transactions."""
    return SqliteWriter(engine) if sqlite_file(engine.url) else EngineWrites(engine)
