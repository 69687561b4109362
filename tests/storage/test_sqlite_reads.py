"""The SQLite reader's own conversions of stored values agree with SQLAlchemy's, and a
file larger than its page cache is read through a memory map, with the same results."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import Uuid
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import TypeEngine
from starlette.applications import Starlette

from gql_checkout.storage import repository
from gql_checkout.storage.engine import sqlite_file
from gql_checkout.storage.sqlite_reads import MMAP_BYTES, SqliteReads, _conversion
from gql_checkout.storage.tables import UTCDateTime
from testkit.documents import create_session
from testkit.merchants import MerchantCredentials

_DIALECT = sqlite.dialect()


def _processor(column_type: TypeEngine[Any]) -> Any:
    """SQLAlchemy's own result processor for the column type."""
    return column_type.dialect_impl(_DIALECT).result_processor(_DIALECT, None)


# One column of each type that has a result processor (UUIDs, timestamps, JSON).
_TYPES = {
    type(column.type): column.type
    for column in repository.SESSIONS_WITH_CHILDREN_BY_IDS.selected_columns
    if _processor(column.type)
}


def _type_of(value: UUID | datetime) -> TypeEngine[Any]:
    return _TYPES[Uuid] if isinstance(value, UUID) else _TYPES[UTCDateTime]


def _written(value: UUID | datetime) -> Any:
    """The value as SQLAlchemy stores it in a column of the value's type."""
    column_type = _type_of(value)
    bind = column_type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
    return bind(value) if bind else value


_moments = st.datetimes(min_value=datetime(1, 1, 2), timezones=st.just(UTC))
_hex = "0123456789abcdefABCDEF"
# What the columns hold (SQLAlchemy's own text), what a hand-written row might hold,
# and what they never should.
_stored = st.one_of(
    st.uuids().map(_written),
    _moments.map(_written),
    st.uuids().map(str),
    st.text(alphabet=_hex, min_size=31, max_size=33),
    st.text(alphabet=_hex + "g_+- xZ\u0663{}:", min_size=32, max_size=32),
    st.builds(
        datetime.isoformat,
        st.datetimes(timezones=st.none() | st.timezones()),
        st.sampled_from([" ", "T"]),
        st.sampled_from(["auto", "hours", "minutes", "seconds", "milliseconds"]),
    ),
    st.text(),
    st.binary(),
    st.integers(),
    st.floats(),
    st.none(),
)


def _outcome(convert: Callable[[Any], Any] | None, value: Any) -> tuple[Any, ...]:
    assert convert is not None
    try:
        result = convert(value)
    except Exception as error:  # the kind of failure is what is compared
        return ("raises", type(error))
    return ("returns", type(result), repr(result), getattr(result, "is_safe", None))


@given(_stored)
@example("2026-11-24 21:29:45.000000")
@example("2026-11-24 21:29:45.000000+01:00")
@example("2026-11-24")
@example("-" + "f" * 31)  # int() reads a sign; UUID() drops the "-" and finds 31 digits
@example("0" * 31 + "\u0663")  # a digit that is not ASCII: both read it
@example(b"0" * 32)
def test_fast_conversions_return_what_sqlalchemy_returns(value: Any) -> None:
    for column_type in _TYPES.values():
        processor = _processor(column_type)
        fast = _conversion(column_type, _DIALECT)
        assert fast is not None
        if value is None:  # the reader passes no NULL to a conversion
            continue
        assert _outcome(fast, value) == _outcome(processor, value), (column_type, value)


def test_the_fast_conversions_are_the_ones_tested() -> None:
    """The test above would pass on SQLAlchemy's processors alone: see that it did not."""
    uuid, moment = UUID(int=7), datetime(2026, 11, 24, 21, 29, 45, tzinfo=UTC)
    for value in (uuid, moment):
        column_type = _type_of(value)
        processor = _processor(column_type)
        fast = _conversion(column_type, _DIALECT)
        assert fast is not None
        assert fast is not processor
        assert fast(_written(value)) == value


@pytest.mark.anyio
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_file_larger_than_the_page_cache_is_read_through_a_map(
    app: Starlette, client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    ids = [UUID((await create_session(client, merchant.api_key))["id"]) for _ in range(3)]
    engine = app.state.container.engine
    path = sqlite_file(engine.url)
    assert path is not None
    with sqlite3.connect(path) as conn:  # the rows into the file itself, out of the WAL
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size_kib = os.path.getsize(path) // 1024  # noqa: ASYNC240 (a test; nothing else waits)
    mapped = SqliteReads(engine, cache_kib=size_kib // 2)
    cached = SqliteReads(engine, cache_kib=size_kib * 2)
    try:
        read = await mapped.sessions(ids)
        assert mapped._connection().execute("PRAGMA mmap_size").fetchone() == (MMAP_BYTES,)
        assert cached._connection().execute("PRAGMA mmap_size").fetchone() == (0,)
        assert sorted(read) == sorted(ids)
        assert read == await cached.sessions(ids)
    finally:
        mapped.close()
        cached.close()
