from __future__ import annotations

import httpx
import pytest

from gql_checkout.app import create_app
from gql_checkout.settings import Environment, Settings
from testkit.merchants import TEST_SECRET

pytestmark = pytest.mark.anyio


async def test_live_and_ready(client: httpx.AsyncClient) -> None:
    live = await client.get("/healthz")
    ready = await client.get("/readyz")

    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "database": "ok"})


async def test_not_ready_without_a_database() -> None:
    # Nothing listens on port 1. (Not a SQLite file that cannot be opened: aiosqlite's
    # worker thread then reports its failure to an event loop the test has closed.)
    url = "postgresql+asyncpg://gql@127.0.0.1:1/gql_checkout"
    app = create_app(
        Settings(database_url=url, environment=Environment.DEVELOPMENT, hcp_secrets=(TEST_SECRET,))
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            live = await client.get("/healthz")
            ready = await client.get("/readyz")
    finally:
        await app.state.container.engine.dispose()

    assert live.status_code == 200
    assert (ready.status_code, ready.json()) == (
        503,
        {"status": "unavailable", "database": "unreachable"},
    )
