"""PostgreSQL's pool: a connection idle past IDLE_PING_SECONDS is pinged before use, so a
database restart (here: every backend terminated) costs no request an error, while
connections in steady use are handed out without a ping's round trip."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

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
