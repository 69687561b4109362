"""Migrations keep every row: the sessions table rebuilt on SQLite (0002), the stored
hcpToken added (0003), down and up again."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from alembic import command
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from gql_checkout.storage.engine import create_engine
from gql_checkout.storage.migrate import migrate, run_alembic
from testkit.documents import create_session
from testkit.merchants import MerchantCredentials

pytestmark = pytest.mark.anyio


async def _stored(engine: AsyncEngine, *, check_foreign_keys: bool = True) -> dict[str, Any]:
    """The sessions' rows, and on SQLite how the table and its indexes are defined."""
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT * FROM checkout_sessions ORDER BY id"))).all()
        definitions: Sequence[Any] = []
        if connection.dialect.name == "sqlite":
            definitions = (
                await connection.execute(
                    text(
                        "SELECT type, name, sql FROM sqlite_master"
                        " WHERE tbl_name = 'checkout_sessions' ORDER BY name"
                    )
                )
            ).all()
            if check_foreign_keys:
                violations = await connection.execute(text("PRAGMA foreign_key_check"))
                assert violations.all() == []
    return {"rows": rows, "definitions": definitions}


def _table_definition(stored: dict[str, Any]) -> str:
    (table,) = [sql for kind, _, sql in stored["definitions"] if kind == "table"]
    return str(table)


async def test_sessions_survive_the_table_rebuild_both_ways(
    app: Starlette, client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    parent = await create_session(client, merchant.api_key, merchantReference="parent")
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])
    await create_session(client, merchant.api_key, idempotencyKey="k-1")
    engine: AsyncEngine = app.state.container.engine
    at_head = await _stored(engine)
    assert len(at_head["rows"]) == 3

    await run_alembic(engine, command.downgrade, "0001")
    at_0001 = await _stored(engine)
    await run_alembic(engine, command.upgrade, "head")
    again = await _stored(engine)

    # 0003 added the stored hcpToken, 0004 metadata and recovered_from_id, as the last
    # columns; down and up again, the token is empty (reads sign it again, below), these
    # sessions' metadata ({}) and recovered_from_id (NULL) are the defaults, and everything
    # else is as it was.
    assert [(*row[:-3],) for row in at_head["rows"]] == at_0001["rows"]
    assert all(row[-3] is not None for row in at_head["rows"])
    assert again["rows"] == [(*row[:-3], None, *row[-2:]) for row in at_head["rows"]]
    assert again["definitions"] == at_head["definitions"]
    if engine.dialect.name == "sqlite":
        assert _table_definition(at_head).endswith(" WITHOUT ROWID")
        assert at_0001["definitions"] != at_head["definitions"]
        index_names = {name for kind, name, _ in at_head["definitions"] if kind == "index"}
        assert {"ix_checkout_sessions_parent_created"} < index_names
    response = await client.get(
        f"/v1/checkout-sessions/{parent['id']}", headers=merchant.read_headers
    )
    assert response.json()["data"]["checkoutSession"]["childSession"]["id"] == child["id"]
    assert response.json()["data"]["hcpToken"] == parent["hcpToken"]


async def test_a_failed_sqlite_migration_changes_nothing(tmp_path: Path) -> None:
    """0002 finds a session whose parent is missing (a damaged file): nothing is changed."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'damaged.db'}")
    await run_alembic(engine, command.upgrade, "0001")
    with sqlite3.connect(tmp_path / "damaged.db") as damaged:  # foreign keys off by default
        damaged.execute(
            "INSERT INTO checkout_sessions (id, merchant_id, status, amount, currency,"
            " created_at, expires_at, updated_at, version, parent_id) VALUES (?, ?,"
            " 'INITIATED', 100, 'EUR', '2026-01-01 00:00:00', '2026-01-02 00:00:00',"
            " '2026-01-01 00:00:00', 1, ?)",
            (uuid4().hex, uuid4().hex, uuid4().hex),
        )
    before = await _stored(engine, check_foreign_keys=False)

    with pytest.raises(RuntimeError, match="broke foreign keys"):
        await migrate(engine)

    assert await _stored(engine, check_foreign_keys=False) == before
    assert not _table_definition(before).endswith(" WITHOUT ROWID")
    async with engine.connect() as connection:
        version = await connection.execute(text("SELECT version_num FROM alembic_version"))
        assert version.scalar_one() == "0001"
    await engine.dispose()


async def test_0005_adds_the_webhook_tables_and_keeps_the_sessions(
    app: Starlette, client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    # given: sessions, one canceled (an event), at head
    session = await create_session(client, merchant.api_key)
    await create_session(client, merchant.api_key)
    cancel = "mutation($id: ID!) { cancelCheckoutSession(id: $id) { id } }"
    await client.post(
        "/graphql",
        json={"query": cancel, "variables": {"id": session["id"]}},
        headers=merchant.write_headers,
    )
    engine: AsyncEngine = app.state.container.engine
    at_head = await _stored(engine)

    # when: down to 0004 and up again
    await run_alembic(engine, command.downgrade, "0004")
    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: sa_inspect(sync).get_table_names())
    at_0004 = await _stored(engine)
    await run_alembic(engine, command.upgrade, "head")

    # then: the webhook tables come and go; the sessions stay as they were
    assert not {name for name in tables if name.startswith("webhook_")}
    assert at_0004["rows"] == at_head["rows"]
    assert (await _stored(engine))["rows"] == at_head["rows"]
    async with engine.connect() as connection:
        count = await connection.scalar(text("SELECT count(*) FROM webhook_events"))
    assert count == 0  # the events of 0005 went with its tables
    # and the app writes events again
    other = await create_session(client, merchant.api_key)
    await client.post(
        "/graphql",
        json={"query": cancel, "variables": {"id": other["id"]}},
        headers=merchant.write_headers,
    )
    async with engine.connect() as connection:
        count = await connection.scalar(text("SELECT count(*) FROM webhook_events"))
    assert count == 1
