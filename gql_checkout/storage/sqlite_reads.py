"""The poll's lookups on SQLite, run by sqlite3 on the event loop itself.

aiosqlite runs every statement in a thread of its own: ~0.5 ms a round trip here, while
the same indexed lookup through sqlite3 takes ~20 µs, less than the hop itself. In WAL
mode a reader never waits for a writer, so a read on the loop does not stall behind
writes. The statements and the row mapping stay the repository's (SQLAlchemy Core,
compiled once per batch size with the engine's own type processors, two of them replaced
by equivalents several times cheaper, see ``_conversion``): only the connection differs.
Each statement is a read transaction of its own, started after its caller asked: no
result is cached, and a write acknowledged before the read is seen by it. What is
memoised is the mapping from a row's stored values to domain objects. The service's
coalescer still batches: under load the polls one loop iteration takes in (~20 at 32
connections) share one statement, ~6.6 µs a session instead of ~12.7 for one alone.

The connection keeps a 64 MiB page cache (SQLite's default is 2 MiB): with 10,000
sessions, 2 in 3 polls made a ``pread`` system call with the default. A file larger than
that cache is also memory-mapped (reads only; SQLite writes with ``write``): a page the
cache lacks is then read from the map, not copied by a system call. Paired A/B, REST,
8 rounds: 1,050,000 sessions read evenly +9.3% req/s (± 1.3%, after 30 s of warm-up: the
first read of each page faults), 10,000 of them polled +0.7% (± 2.3%); on the 15,000-
session file, which the cache holds whole, the map cost 3% (± 1.3%), so a file the cache
can hold is not mapped. The size is read when the connection opens (at the first poll).
An I/O error on a mapped page is a SIGBUS rather than an error for the request: the
process dies, as on any crash, and its supervisor starts it again.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any
from uuid import UUID

from sqlalchemy import Select, Uuid
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeEngine

from gql_checkout.domain.checkout_sessions import CheckoutSession
from gql_checkout.domain.memo import RepeatMemo
from gql_checkout.domain.merchants import Merchant, MerchantProfile
from gql_checkout.domain.uuids import uuid_from_int
from gql_checkout.storage import repository
from gql_checkout.storage.engine import SQLITE_BUSY_TIMEOUT_MS, sqlite_file
from gql_checkout.storage.tables import UTCDateTime

CACHE_KIB = 65_536  # the reader's page cache: a 10k-session database fits whole
MMAP_BYTES = 0x7FFF_0000  # SQLite's own ceiling (SQLITE_MAX_MMAP_SIZE): the rest is read


class CompiledRead:
    """One ``repository`` statement whose ``ids`` (an expanding IN) are bound positionally,
    and the mapping of its rows to domain objects.

    Batch sizes are rounded up to a power of two (the last id repeated), so a handful of
    SQL strings serve every size.
    """

    def __init__(
        self,
        statement: Select[Any],
        dialect: Dialect,
        mapped: Callable[[list[list[Any]]], Mapping[Any, Any]],
    ) -> None:
        self._statement = statement
        self._dialect = dialect
        conversions = [_conversion(column.type, dialect) for column in statement.selected_columns]
        # Only the columns that need one; a NULL (a missing child's columns) stays None.
        self._conversions: list[tuple[int, Callable[[Any], Any]]] = [
            (index, convert) for index, convert in enumerate(conversions) if convert is not None
        ]
        self._mapped = mapped
        id_type = statement.compile(dialect=dialect).binds["ids"].type
        bind = id_type.dialect_impl(dialect).bind_processor(dialect)
        self._bind: Callable[[Any], Any] = bind or (lambda value: value)
        self._sql = lru_cache(maxsize=None)(self._compile)
        self.objects = RepeatMemo(self._objects)  # one per statement

    def rows(self, conn: sqlite3.Connection, ids: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The stored rows, as sqlite3 returns them (no conversion yet)."""
        size = 1 << (len(ids) - 1).bit_length()
        bind = self._bind
        padded = [*ids, *([ids[-1]] * (size - len(ids)))]
        return conn.execute(self._sql(size), [bind(i) for i in padded]).fetchall()

    def _objects(self, raw: tuple[Any, ...]) -> tuple[tuple[Any, Any], ...]:
        """The domain objects of one stored row, by id.

        Memoised on the row's stored values: polls read the same rows over and over, and
        the objects are immutable and a function of those values alone. The row itself is
        read afresh every time; a changed row is a different key.
        """
        row = list(raw)
        for index, convert in self._conversions:
            value = row[index]
            if value is not None:
                row[index] = convert(value)
        return tuple(self._mapped([row]).items())

    def _compile(self, size: int) -> str:
        compiled = self._statement.params(ids=[None] * size).compile(
            dialect=self._dialect, compile_kwargs={"render_postcompile": True}
        )
        assert all(name.startswith("ids_") for name in compiled.positiontup or ())
        return str(compiled)


def _conversion(column_type: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """The column's result processor, or a cheaper one that returns the same values.

    A poll of a session not read lately maps its row afresh, and SQLAlchemy's processors
    for its UUID and timestamp columns took 1.0 and 1.6 µs a value here (a UUID parses
    its text in Python; a timestamp is parsed, then given its zone by ``replace``, which
    alone costs 0.9 µs): ~13 µs of a cold poll. For the forms SQLite holds here (32 hex
    digits; ISO 8601 text without a zone, which ``UTCDateTime`` reads as UTC) a few C
    calls make the same values, 0.7 and 0.4 µs; any other value takes SQLAlchemy's path
    (for a UUID that is ``UUID(value)``, all its processor does).
    tests/storage/test_sqlite_reads.py checks that both agree on every value Hypothesis finds.
    """
    processor = column_type.dialect_impl(dialect).result_processor(dialect, None)
    if processor is None:
        return None
    if isinstance(column_type, Uuid) and column_type.as_uuid:
        return _uuid_from_hex
    if isinstance(column_type, UTCDateTime):
        return partial(_utc_from_naive_iso, otherwise=processor)
    return processor


# A row with a child holds both ids twice (the parent's current child, the child's parent)
# and the merchant's id recurs from row to row: a few recent conversions are kept.
@lru_cache(maxsize=1_024)
def _uuid_from_hex(value: Any) -> UUID:
    if type(value) is str and len(value) == 32 and value.isalnum():
        # A letter past f raises ValueError, as UUID(value) does; 32 hex digits are < 2**128.
        return uuid_from_int(int(value, 16))
    return UUID(value)  # what SQLAlchemy's processor does (or raises)


def _utc_from_naive_iso(value: Any, otherwise: Callable[[Any], Any]) -> Any:
    if type(value) is str:
        try:
            # With the zone in its text, the parser itself returns an aware UTC time.
            moment = _from_iso(value + "+00:00")
        except ValueError:  # not a naive ISO 8601 time: SQLAlchemy says what it is
            pass
        else:
            if moment.tzinfo is UTC:  # not so for a date alone ("2026-11-24+00:00")
                return moment
    return otherwise(value)


_from_iso = datetime.fromisoformat


class SqliteReads:
    """Sessions (with their current children) and merchant profiles, by id."""

    def __init__(self, engine: AsyncEngine, *, cache_kib: int = CACHE_KIB) -> None:
        database = sqlite_file(engine.url)
        assert database is not None, "an in-memory database has no second reader"
        self._path = database
        self._cache_kib = cache_kib
        self._sessions = CompiledRead(
            repository.SESSIONS_WITH_CHILDREN_BY_IDS,
            engine.dialect,
            repository.sessions_with_children_from_rows,
        )
        self._profiles = CompiledRead(
            repository.PROFILES_BY_IDS, engine.dialect, repository.profiles_from_rows
        )
        self._merchants = CompiledRead(
            repository.MERCHANTS_BY_API_KEY_HASHES,
            engine.dialect,
            repository.merchants_by_api_key_hash_from_rows,
        )
        self._conn: sqlite3.Connection | None = None
        self._trace: Callable[[str], None] | None = None
        # The loop thread is the only user in a server; tests may drive the app from
        # another thread's loop too.
        self._lock = threading.Lock()

    async def sessions(self, ids: Sequence[UUID]) -> dict[UUID, CheckoutSession]:
        return self._read(self._sessions, ids)

    async def profiles(self, ids: Sequence[UUID]) -> dict[UUID, MerchantProfile]:
        return self._read(self._profiles, ids)

    async def merchants_by_api_key_hash(self, hashes: Sequence[str]) -> dict[str, Merchant]:
        return self._read(self._merchants, hashes)

    def _read(self, read: CompiledRead, ids: Sequence[Any]) -> dict[Any, Any]:
        """``ids`` distinct, at most ``coalesce.MAX_KEYS_PER_QUERY`` (the coalescer's batch)."""
        with self._lock:
            rows = read.rows(self._connection(), ids)
        found: dict[UUID, Any] = {}
        for raw in rows:
            found.update(read.objects(raw))
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
            conn.execute(f"PRAGMA cache_size=-{self._cache_kib}")
            if os.path.getsize(self._path) > self._cache_kib * 1024:
                conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            conn.set_trace_callback(self._trace)
            self._conn = conn
        return self._conn
