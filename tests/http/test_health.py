from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.settings import Environment, Settings, SettingsError
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
        await app.state.container.stop()

    assert live.status_code == 200
    assert (ready.status_code, ready.json()) == (
        503,
        {"status": "unavailable", "database": "unreachable"},
    )


# --- /metrics behind a bearer token (GQL_CHECKOUT_METRICS_TOKEN) ----------------------------

METRICS_TOKEN = "metrics-token-" + "m" * 20


@pytest.fixture
async def guarded(app: Starlette, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose /metrics needs METRICS_TOKEN (on the fixture app's database)."""
    guarded = create_app(replace(settings, metrics_token=METRICS_TOKEN))
    transport = httpx.ASGITransport(app=guarded)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await guarded.state.container.stop()


async def test_metrics_answer_everyone_without_a_token_setting(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")

    assert response.status_code == 200
    assert "gql_checkout_http_requests_total" in response.text


async def test_metrics_answer_the_configured_bearer_token(guarded: httpx.AsyncClient) -> None:
    response = await guarded.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    assert response.status_code == 200
    assert "gql_checkout_http_requests_total" in response.text


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        f"Bearer {METRICS_TOKEN[:-1]}",
        f"Bearer {METRICS_TOKEN}x",
        f"Bearer {METRICS_TOKEN.upper()}",
        f"Basic {METRICS_TOKEN}",
        "Bearer",
        "Bearer ümlaut-" + "u" * 20,
    ],
    ids=["none", "prefix", "longer", "other-case", "basic", "empty", "non-ascii"],
)
async def test_metrics_refuse_anything_else(
    guarded: httpx.AsyncClient, authorization: str | None
) -> None:
    # As bytes: httpx sends str headers as ASCII only.
    headers = {} if authorization is None else {b"Authorization": authorization.encode("latin-1")}

    response = await guarded.get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "UNAUTHENTICATED"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "gql_checkout_" not in response.text


async def test_the_token_guards_metrics_only(guarded: httpx.AsyncClient) -> None:
    assert (await guarded.get("/healthz")).status_code == 200
    assert (await guarded.get("/readyz")).status_code == 200


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), ("", None), ("  ", None), (f" {METRICS_TOKEN} ", METRICS_TOKEN)],
)
def test_the_metrics_token_is_read_from_the_environment(
    raw: str | None, expected: str | None
) -> None:
    env = {"GQL_CHECKOUT_HCP_SECRET": TEST_SECRET}
    if raw is not None:
        env["GQL_CHECKOUT_METRICS_TOKEN"] = raw

    assert Settings.from_env(env).metrics_token == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("short", "at least 16 characters"),
        ("has a space in the middle", "visible ASCII characters without spaces"),
        ("ümlaut-" + "u" * 20, "visible ASCII characters without spaces"),
    ],
)
def test_a_bad_metrics_token_is_refused(raw: str, message: str) -> None:
    env = {"GQL_CHECKOUT_HCP_SECRET": TEST_SECRET, "GQL_CHECKOUT_METRICS_TOKEN": raw}

    with pytest.raises(SettingsError, match=f"GQL_CHECKOUT_METRICS_TOKEN .*{message}"):
        Settings.from_env(env)
