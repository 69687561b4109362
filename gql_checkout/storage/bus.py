"""The change bus: tells subscribers that a session changed, within and across replicas.

On SQLite (one process) the bus is in-process. On PostgreSQL every replica LISTENs on
one channel, and the writer NOTIFYs inside its own transaction, so a change is
announced exactly when it commits, to every replica, and never before.

Messages carry only the session id; subscribers re-read the session, so a late or
duplicated message is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

logger = logging.getLogger(__name__)
CHANNEL = "gql_checkout_session_changed"


class LocalBus:
    """In-process fan-out: one queue per subscriber, keyed by session id."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[UUID, set[asyncio.Queue[None]]] = defaultdict(set)
        # Told of every change, whatever the session (the webhook dispatcher's wake-up).
        self._watchers: list[Callable[[], None]] = []

    def watch_all(self, on_change: Callable[[], None]) -> None:
        """Calls ``on_change`` after every change this bus hears of (a transition here or,
        on PostgreSQL, on any replica)."""
        self._watchers.append(on_change)

    async def start(self) -> None:
        """Nothing to connect in process."""

    async def stop(self) -> None:
        """Nothing to close in process."""

    async def announce(self, conn: AsyncConnection, session_ids: Iterable[UUID]) -> None:
        """Called inside the writing transaction; in process nothing happens before commit."""

    async def committed(self, session_ids: Iterable[UUID]) -> None:
        """Called after the writing transaction committed."""
        self._deliver(session_ids)

    def _deliver(self, session_ids: Iterable[UUID]) -> None:
        for watcher in self._watchers:
            watcher()
        for session_id in session_ids:
            for queue in self._subscribers.get(session_id, ()):
                # A subscriber re-reads the session, so one pending wake-up is enough.
                if queue.empty():
                    queue.put_nowait(None)

    @contextlib.asynccontextmanager
    async def listen(self, session_id: UUID) -> AsyncIterator[asyncio.Queue[None]]:
        queue: asyncio.Queue[None] = asyncio.Queue(maxsize=1)
        self._subscribers[session_id].add(queue)
        try:
            yield queue
        finally:
            subscribers = self._subscribers[session_id]
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[session_id]


class PostgresBus(LocalBus):
    """LISTEN/NOTIFY: one dedicated asyncpg connection per replica, reconnecting on loss."""

    RECONNECT_DELAY_SECONDS = 1.0

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        url = make_url(engine.url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._connection: asyncpg.Connection[Any] | None = None
        self._supervisor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._connect()
        self._supervisor = asyncio.create_task(self._keep_listening())

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._connection is not None:
            await self._connection.close()

    async def announce(self, conn: AsyncConnection, session_ids: Iterable[UUID]) -> None:
        for session_id in session_ids:
            await conn.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANNEL, "payload": str(session_id)},
            )

    async def committed(self, session_ids: Iterable[UUID]) -> None:
        """The NOTIFY reaches this replica too; nothing to do here."""

    async def _connect(self) -> None:
        connection = await asyncpg.connect(self._dsn)
        try:
            await connection.add_listener(CHANNEL, self._on_notification)
        except BaseException:
            # Cancelled (a stop during a reconnect) or refused: never leave it open.
            connection.terminate()
            raise
        self._connection = connection

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self._deliver([UUID(payload)])

    async def _keep_listening(self) -> None:
        while True:
            await asyncio.sleep(self.RECONNECT_DELAY_SECONDS)
            if self._connection is not None and not self._connection.is_closed():
                continue
            try:
                await self._connect()
            except (OSError, asyncpg.PostgresError) as error:
                logger.warning("change bus: reconnecting to PostgreSQL failed: %s", error)
                continue
            # Changes may have been missed while disconnected: wake every subscriber.
            self._deliver(list(self._subscribers))


def create_bus(engine: AsyncEngine) -> LocalBus:
    return PostgresBus(engine) if engine.dialect.name == "postgresql" else LocalBus()
