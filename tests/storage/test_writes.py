"""SQLite's single writer: concurrent writes commit together, a failing write rolls back
alone, and a write is acknowledged only once it is durable (on a real SQLite file)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gql_checkout.storage.engine import create_engine
from gql_checkout.storage.writes import SqliteWriter

pytestmark = pytest.mark.anyio

WRITES = 64


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, Path]]:
    path = tmp_path / "writes.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT UNIQUE)"))
    yield engine, path
    await engine.dispose()


@pytest.fixture
async def writer(database: tuple[AsyncEngine, Path]) -> AsyncIterator[SqliteWriter]:
    engine, _path = database
    writer = SqliteWriter(engine)
    yield writer
    await writer.close()


def _stored(path: Path) -> set[str]:
    """What another connection (another process, after a crash) would find."""
    with sqlite3.connect(path) as other:
        return {body for (body,) in other.execute("SELECT body FROM notes")}


async def _note(conn: AsyncConnection, body: str) -> None:
    await conn.execute(text("INSERT INTO notes (body) VALUES (:body)"), {"body": body})


def _count_commits(writer: SqliteWriter) -> list[str]:
    commits: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement == "COMMIT":
            commits.append(statement)

    event.listen(writer.engine.sync_engine, "before_cursor_execute", seen)
    return commits


async def test_concurrent_writes_commit_together_and_every_one_is_durable_when_answered(
    database: tuple[AsyncEngine, Path], writer: SqliteWriter
) -> None:
    _engine, path = database
    commits = _count_commits(writer)

    async def write(number: int) -> None:
        async with writer.begin() as conn:
            await _note(conn, f"note-{number}")
        # Answered: already visible to another connection, i.e. committed.
        assert f"note-{number}" in _stored(path)

    await asyncio.gather(*(write(number) for number in range(WRITES)))

    assert _stored(path) == {f"note-{number}" for number in range(WRITES)}
    # All arrived together: far fewer commits (fsyncs) than writes.
    assert 1 <= len(commits) <= WRITES // 8, commits


async def test_a_failing_write_rolls_back_alone(
    database: tuple[AsyncEngine, Path], writer: SqliteWriter
) -> None:
    _engine, path = database

    async def write(number: int) -> None:
        async with writer.begin() as conn:
            await _note(conn, f"note-{number}")
            if number % 3 == 0:
                raise LookupError(number)

    results = await asyncio.gather(
        *(write(number) for number in range(WRITES)), return_exceptions=True
    )

    failed = {number for number, result in enumerate(results) if result is not None}
    assert failed == {number for number in range(WRITES) if number % 3 == 0}
    assert all(isinstance(results[number], LookupError) for number in failed)
    assert _stored(path) == {f"note-{number}" for number in range(WRITES) if number % 3}


async def test_a_write_that_loses_a_unique_race_finds_the_winner_committed(
    database: tuple[AsyncEngine, Path], writer: SqliteWriter
) -> None:
    # An idempotency key's losers read the winner's row after their IntegrityError:
    # it must be committed by then, though it shared their transaction.
    _engine, path = database
    found_by_losers: list[set[str]] = []

    async def write() -> None:
        try:
            async with writer.begin() as conn:
                await _note(conn, "the-one")
        except Exception:
            found_by_losers.append(_stored(path))

    await asyncio.gather(*(write() for _ in range(8)))

    assert found_by_losers == [{"the-one"}] * 7


async def test_a_cancelled_queued_write_does_not_strand_the_writes_before_it(
    database: tuple[AsyncEngine, Path], writer: SqliteWriter
) -> None:
    _engine, path = database
    release = asyncio.Event()

    async def slow_first() -> None:
        async with writer.begin() as conn:
            await _note(conn, "first")
            await release.wait()

    async def second() -> None:
        async with writer.begin() as conn:
            await _note(conn, "second")

    first_task = asyncio.create_task(slow_first())
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(second())  # queued behind the first: the first defers
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.sleep(0)  # the first finishes its block while the second is queued
    queued.cancel()

    async with asyncio.timeout(10):  # without a flush, the first would wait for ever
        await first_task
    assert "first" in _stored(path)
