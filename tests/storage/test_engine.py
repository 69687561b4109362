"""PostgreSQL's pool: a connection idle past IDLE_PING_SECONDS is pinged before use, so a
database restart (here: every backend terminated) costs no request an error, while
connections in steady use are handed out without a ping's round trip; the pool keeps
what it opens; a write of one statement sends no BEGIN and COMMIT."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from gql_checkout.storage import engine
from testkit.documents import create_session
from testkit.merchants import MerchantCredentials

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize(
        "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
    ),
]


def _terminate_the_apps_connections(database_url: str) -> int:
    url = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


@pytest.mark.parametrize(("idle_ping_seconds", "status"), [(0.0, 200), (3600.0, 500)])
async def test_an_idle_connection_is_pinged_and_replaced_before_use(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    idle_ping_seconds: float,
    status: int,
) -> None:
    # given: pooled connections, then the database drops them all
    session = await create_session(client, merchant.api_key)
    assert _terminate_the_apps_connections(database_url) > 0
    monkeypatch.setattr(engine, "IDLE_PING_SECONDS", idle_ping_seconds)

    # when
    response = await client.get(
        f"/v1/checkout-sessions/{session['id']}", headers=merchant.read_headers
    )

    # then: pinged (idle long enough), a dead connection is replaced and the read answers;
    # not pinged (used a moment ago), the read meets the dead connection
    assert response.status_code == status


async def test_checkouts_past_the_pool_wait_for_its_connections_and_open_none(
    app: Starlette,
) -> None:
    # given: the connections the pool opens from here on
    sql = app.state.container.engine
    opened: list[object] = []
    event.listen(sql.sync_engine, "connect", lambda *_args: opened.append(_args))

    async def hold() -> None:
        async with sql.connect() as conn:
            await conn.exec_driver_sql("SELECT pg_sleep(0.02)")

    # when: three rounds of twice as many checkouts at once as the pool holds
    for _ in range(3):
        await asyncio.gather(*(hold() for _ in range(2 * engine.POOL_SIZE)))

    # then: the pool's connections were opened once and kept (an overflow connection is
    # closed at checkin: it would be opened again every round)
    assert 0 < len(opened) <= engine.POOL_SIZE


async def test_a_create_alone_is_one_statement_with_no_transaction_around_it(
    app: Starlette, client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    # given: the isolation each INSERT of a session runs under
    inserts: list[object] = []

    def record(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO checkout_sessions"):
            inserts.append(conn.get_execution_options().get("isolation_level"))

    event.listen(app.state.container.engine.sync_engine, "before_cursor_execute", record)

    # when: a session, then a child of it (an INSERT and the parent's UPDATE)
    parent = await create_session(client, merchant.api_key)
    await create_session(client, merchant.api_key, parentSessionId=parent["id"])

    # then: the session alone is its own transaction (no BEGIN and COMMIT round trips);
    # the child's two statements share one
    assert inserts == ["AUTOCOMMIT", None]
