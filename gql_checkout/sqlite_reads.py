"""The poll's lookups on SQLite, run by sqlite3 on the event loop itself.

aiosqlite runs every statement in a thread of its own: ~0.5 ms a round trip here, while
the same indexed lookup through sqlite3 takes ~20 µs, less than the hop itself. In WAL
mode a reader never waits for a writer, so a read on the loop does not stall behind
writes. The statements and the row mapping stay the repository's (SQLAlchemy Core,
compiled once per batch size with the engine's own type processors): only the connection
differs. Each statement is a read transaction of its own, started after its caller asked:
nothing is cached, and a write acknowledged before the read is seen by it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Collection, Sequence
from functools import lru_cache
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import Select, Uuid
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_checkout import repository
from gql_checkout.db import SQLITE_BUSY_TIMEOUT_MS, sqlite_file
from gql_checkout.domain import CheckoutSession, MerchantProfile
from gql_checkout.models import UTCDateTime

T = TypeVar("T")
MAX_IDS_PER_STATEMENT = 512  # well under SQLite's bound-parameter limit


class CompiledRead:
    """One ``repository`` statement whose ``ids`` (an expanding IN) are bound positionally.

    Batch sizes are rounded up to a power of two (the last id repeated), so a handful of
    SQL strings serve every size.
    """

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        self._statement = statement
        self._dialect = dialect
        self._processors = [
            _conversion(column.type, dialect) for column in statement.selected_columns
        ]
        id_type = statement.compile(dialect=dialect).binds["ids"].type
        bind = id_type.dialect_impl(dialect).bind_processor(dialect)
        self._bind: Callable[[Any], Any] = bind or (lambda value: value)
        self._sql = lru_cache(maxsize=None)(self._compile)

    def rows(self, conn: sqlite3.Connection, ids: Sequence[Any]) -> list[list[Any]]:
        size = 1 << (len(ids) - 1).bit_length()
        sql, bind = self._sql(size), self._bind
        padded = [*ids, *([ids[-1]] * (size - len(ids)))]
        processors = self._processors
        return [
            [
                value if process is None else process(value)
                for process, value in zip(processors, raw, strict=True)
            ]
            for raw in conn.execute(sql, [bind(value) for value in padded]).fetchall()
        ]

    def _compile(self, size: int) -> str:
        compiled = self._statement.params(ids=[None] * size).compile(
            dialect=self._dialect, compile_kwargs={"render_postcompile": True}
        )
        assert all(name.startswith("ids_") for name in compiled.positiontup or ())
        return str(compiled)


# Columns whose stored text always converts to the same immutable value (ids, times):
# polls read the same few sessions over and over, so each text is converted once. This
# memoises a conversion, not a row: the row itself is read afresh every time. One cache
# per type, shared by its columns (and bounded: ~16k values each).
_MEMOISED_TYPES = (Uuid, UTCDateTime)
MEMOISED_VALUES = 16_384
_memoised: dict[type, Callable[[Any], Any]] = {}


def _conversion(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    process: Callable[[Any], Any] | None = type_.dialect_impl(dialect).result_processor(
        dialect, None
    )
    if process is None or not isinstance(type_, _MEMOISED_TYPES):
        return process
    return _memoised.setdefault(type(type_), lru_cache(maxsize=MEMOISED_VALUES)(process))


class SqliteReads:
    """Sessions (with their current children) and merchant profiles, by id."""

    def __init__(self, engine: AsyncEngine) -> None:
        database = sqlite_file(engine.url)
        assert database is not None, "an in-memory database has no second reader"
        self._path = database
        self._sessions = CompiledRead(repository.SESSIONS_WITH_CHILDREN_BY_IDS, engine.dialect)
        self._profiles = CompiledRead(repository.PROFILES_BY_IDS, engine.dialect)
        self._conn: sqlite3.Connection | None = None
        self._trace: Callable[[str], None] | None = None
        # The loop thread is the only user in a server; tests may drive the app from
        # another thread's loop too.
        self._lock = threading.Lock()

    async def sessions(self, ids: Collection[UUID]) -> dict[UUID, CheckoutSession]:
        return self._read(self._sessions, ids, repository.sessions_with_children_from_rows)

    async def profiles(self, ids: Collection[UUID]) -> dict[UUID, MerchantProfile]:
        return self._read(self._profiles, ids, repository.profiles_from_rows)

    def _read(
        self,
        read: CompiledRead,
        ids: Collection[UUID],
        mapped: Callable[[list[list[Any]]], dict[UUID, T]],
    ) -> dict[UUID, T]:
        found: dict[UUID, T] = {}
        for batch in _batches(ids):
            with self._lock:
                rows = read.rows(self._connection(), batch)
            found.update(mapped(rows))
        return found

    def trace(self, callback: Callable[[str], None] | None) -> None:
        """Calls ``callback`` with each statement this reader runs (tests count them)."""
        self._trace = callback
        if self._conn is not None:
            self._conn.set_trace_callback(callback)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # Autocommit (isolation_level None): no transaction outlives its statement.
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA query_only=ON")
            conn.set_trace_callback(self._trace)
            self._conn = conn
        return self._conn


def _batches(ids: Collection[UUID]) -> list[list[UUID]]:
    unique = list(dict.fromkeys(ids))
    return [
        unique[start : start + MAX_IDS_PER_STATEMENT]
        for start in range(0, len(unique), MAX_IDS_PER_STATEMENT)
    ]
