"""Long polling on GET /v1/checkout-sessions/{id}: If-None-Match + Prefer: wait=N.

Each test holds a request in a task, waits until the app reports it held, then acts:
no sleeps decide an outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from http import HTTPStatus
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.settings import Settings
from testkit.clock import Clock
from testkit.documents import CANCEL_MUTATION, CARD, COMPLETE_MUTATION, create_session, graphql
from testkit.merchants import MerchantCredentials
from tests.conftest import StatementCounter

pytestmark = pytest.mark.anyio

HOLD_LIMIT_SECONDS = 10  # generous: a held request is released in milliseconds


@pytest.fixture(autouse=True)
async def bus(app: Starlette) -> AsyncIterator[None]:
    """The change bus as the lifespan starts it: on PostgreSQL, LISTEN on its channel."""
    await app.state.container.bus.start()
    yield
    await app.state.container.bus.stop()


def _path(session_id: str) -> str:
    return f"/v1/checkout-sessions/{session_id}"


async def _etag(client: httpx.AsyncClient, merchant: MerchantCredentials, session_id: str) -> str:
    response = await client.get(_path(session_id), headers=merchant.read_headers)
    assert response.status_code == HTTPStatus.OK
    return response.headers["etag"]


def _long_poll(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    session_id: str,
    etag: str,
    prefer: str = "wait=5",
) -> asyncio.Task[httpx.Response]:
    headers = {**merchant.read_headers, "If-None-Match": etag, "Prefer": prefer}
    return asyncio.create_task(client.get(_path(session_id), headers=headers))


async def _until_held(app: Starlette, count: int = 1) -> None:
    async with asyncio.timeout(HOLD_LIMIT_SECONDS):
        # The count is the app's and comes with no event to wait on.
        while app.state.shutdown.waiting < count:  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def _released(task: asyncio.Task[httpx.Response]) -> httpx.Response:
    async with asyncio.timeout(HOLD_LIMIT_SECONDS):
        return await task


async def test_a_change_answers_a_held_request_with_the_new_body(
    app: Starlette, client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    etag = await _etag(client, merchant, session["id"])

    held = _long_poll(client, merchant, session["id"], etag)
    await _until_held(app)
    await graphql(
        client,
        COMPLETE_MUTATION,
        {"id": session["id"], "paymentMethod": CARD},
        merchant.write_headers,
    )
    response = await _released(held)
    plain = await client.get(_path(session["id"]), headers=merchant.read_headers)

    assert response.status_code == HTTPStatus.OK
    assert response.headers["preference-applied"] == "wait=5"
    assert response.json() == plain.json()
    assert response.json()["data"]["checkoutSession"]["checkoutSessionStatus"] == "COMPLETED"
    assert response.headers["etag"] == plain.headers["etag"] != etag


async def test_many_held_requests_of_one_session_are_all_answered(
    app: Starlette, client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    etag = await _etag(client, merchant, session["id"])

    held = [_long_poll(client, merchant, session["id"], etag) for _ in range(20)]
    await _until_held(app, 20)
    await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, merchant.write_headers)
    responses = [await _released(task) for task in held]

    assert {response.status_code for response in responses} == {HTTPStatus.GONE}


async def test_the_end_of_the_wait_is_304_and_reads_nothing_while_held(
    app: Starlette,
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    statements: StatementCounter,
) -> None:
    session = await create_session(client, merchant.api_key)
    etag = await _etag(client, merchant, session["id"])
    statements.reset()
    await client.get(_path(session["id"]), headers=merchant.read_headers)
    plain_read = statements.count
    statements.reset()

    response = await _released(_long_poll(client, merchant, session["id"], etag, "wait=2"))

    assert response.status_code == HTTPStatus.NOT_MODIFIED
    assert response.headers["preference-applied"] == "wait=2"
    assert response.headers["etag"] == etag
    assert response.content == b""
    # Two seconds held (less than the watcher's resync), and no more statements than one
    # plain read: the hold itself read nothing.
    assert statements.count == plain_read, statements.statements


async def test_cancel_while_held_is_410(
    app: Starlette, client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    etag = await _etag(client, merchant, session["id"])

    held = _long_poll(client, merchant, session["id"], etag)
    await _until_held(app)
    await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, merchant.write_headers)
    response = await _released(held)

    assert response.status_code == HTTPStatus.GONE
    assert response.json()["code"] == "SESSION_CANCELED"
    assert response.headers["preference-applied"] == "wait=5"


async def test_expiry_while_held_is_401(
    app: Starlette, client: httpx.AsyncClient, merchant: MerchantCredentials, clock: Clock
) -> None:
    session = await create_session(client, merchant.api_key, expiresInSeconds=60)
    clock.advance(seconds=59.5)  # the watcher's expiry timer: half a second of real time
    etag = await _etag(client, merchant, session["id"])

    held = _long_poll(client, merchant, session["id"], etag)
    await _until_held(app)
    clock.advance(seconds=1)
    response = await _released(held)

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["code"] == "SESSION_EXPIRED"
    assert response.headers["preference-applied"] == "wait=5"


async def test_a_shutdown_answers_held_requests_with_304(
    app: Starlette, client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    etag = await _etag(client, merchant, session["id"])

    held = _long_poll(client, merchant, session["id"], etag, "wait=30")
    await _until_held(app)
    app.state.shutdown.begin()
    response = await _released(held)
    after = await _released(_long_poll(client, merchant, session["id"], etag))

    assert response.status_code == HTTPStatus.NOT_MODIFIED
    # The request time limit (10 s by default) caps the wait: never answered 503.
    assert response.headers["preference-applied"] == "wait=30"
    assert after.status_code == HTTPStatus.NOT_MODIFIED  # once shutting down, nothing is held
    assert "preference-applied" not in after.headers


@pytest.mark.parametrize(
    ("prefer", "if_none_match"),
    [
        pytest.param("wait=soon", True, id="not-a-number"),
        pytest.param("wait=-1", True, id="negative"),
        pytest.param("wait=0", True, id="zero"),
        pytest.param("respond-async, handling=lenient", True, id="no-wait"),
        pytest.param("wait=5", False, id="no-if-none-match"),
    ],
)
async def test_without_a_usable_wait_the_read_answers_at_once(
    app: Starlette,
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    prefer: str,
    if_none_match: bool,
) -> None:
    session = await create_session(client, merchant.api_key)
    etag = await _etag(client, merchant, session["id"])
    headers: dict[str, Any] = {**merchant.read_headers, "Prefer": prefer}
    if if_none_match:
        headers["If-None-Match"] = etag

    response = await _released(
        asyncio.create_task(client.get(_path(session["id"]), headers=headers))
    )

    expected = HTTPStatus.NOT_MODIFIED if if_none_match else HTTPStatus.OK
    assert response.status_code == expected
    assert "preference-applied" not in response.headers


async def test_a_stale_etag_is_answered_at_once_without_holding(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    etag = await _etag(client, merchant, session["id"])

    response = await _released(_long_poll(client, merchant, session["id"], '"stale"'))

    assert response.status_code == HTTPStatus.OK
    assert response.headers["etag"] == etag
    assert "preference-applied" not in response.headers


async def test_the_wait_is_capped_and_the_first_wait_preference_counts(
    app: Starlette, client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    etag = await _etag(client, merchant, session["id"])

    capped = _long_poll(client, merchant, session["id"], etag, 'wait="99999999999", wait=1')
    await _until_held(app)
    app.state.shutdown.begin()
    response = await _released(capped)

    assert response.status_code == HTTPStatus.NOT_MODIFIED
    assert response.headers["preference-applied"] == "wait=30"


async def test_access_is_checked_before_holding(
    client: httpx.AsyncClient, merchant: MerchantCredentials, other_merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    etag = await _etag(client, merchant, session["id"])

    response = await _released(_long_poll(client, other_merchant, session["id"], etag))

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert "preference-applied" not in response.headers


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_hold_longer_than_the_request_time_limit_ends_with_304_not_503(
    settings: Settings, clock: Clock, merchant: MerchantCredentials, client: httpx.AsyncClient
) -> None:
    # given: a time limit of one second, and a session created through the default app
    session = await create_session(client, merchant.api_key)
    etag = await _etag(client, merchant, session["id"])
    limits = replace(settings.limits, request_timeout_seconds=1.0)
    hurried = create_app(replace(settings, limits=limits), clock=clock)
    headers = {**merchant.read_headers, "If-None-Match": etag, "Prefer": "wait=2"}

    # when: held for two seconds, twice the limit (waiting is not work)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=hurried), base_url="http://t"
        ) as held:
            response = await held.get(_path(session["id"]), headers=headers)
    finally:
        await hurried.state.container.stop()

    # then
    assert response.status_code == HTTPStatus.NOT_MODIFIED
    assert response.headers["preference-applied"] == "wait=2"
