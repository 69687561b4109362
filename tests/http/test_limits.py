"""Abuse limits of the hardening issue: rate limits, request time limit, GET and CSRF."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.http.deadlines import Deadlines, Expired
from gql_checkout.settings import Settings
from gql_checkout.storage.migrate import migrate
from testkit.clock import Clock
from testkit.documents import CANCEL_MUTATION, create_session, error_codes, graphql
from testkit.merchants import MerchantCredentials

pytestmark = pytest.mark.anyio

STATUS_QUERY = "query($id: ID!) { checkoutSession(id: $id) { checkoutSessionStatus } }"


@pytest.fixture
async def limited_client(
    app: Starlette, settings: Settings, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same database, with limits small enough to reach."""
    limits = replace(settings.limits, reads_per_client="3/minute", writes_per_merchant="2/minute")
    limited = create_app(replace(settings, limits=limits), clock=clock)
    transport = httpx.ASGITransport(app=limited)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await limited.state.container.stop()


async def test_rest_reads_are_rate_limited_per_client(
    client: httpx.AsyncClient, limited_client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    path = f"/v1/checkout-sessions/{session['id']}"

    statuses = [(await limited_client.get(path, headers=merchant.read_headers)) for _ in range(4)]

    assert [response.status_code for response in statuses] == [200, 200, 200, 429]
    refused = statuses[-1]
    assert refused.json()["code"] == "RATE_LIMITED"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["content-type"] == "application/problem+json"


async def _post(client: httpx.AsyncClient, body: object, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/graphql", json=body, headers=headers)


def _assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert error_codes(response.json()) == ["RATE_LIMITED"]
    assert "data" not in response.json()  # refused whole, before any of it ran


async def test_graphql_reads_share_the_same_limit(
    client: httpx.AsyncClient, limited_client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    body = {"query": STATUS_QUERY, "variables": {"id": session["id"]}}

    responses = [await _post(limited_client, body, merchant.read_headers) for _ in range(4)]

    assert [error_codes(r.json()) for r in responses[:3]] == [[], [], []]
    _assert_limited(responses[3])


async def test_writes_are_rate_limited_per_merchant(
    client: httpx.AsyncClient,
    limited_client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    other_merchant: MerchantCredentials,
) -> None:
    sessions = [await create_session(client, merchant.api_key) for _ in range(3)]
    other = await create_session(client, other_merchant.api_key)

    responses = [
        await _post(
            limited_client,
            {"query": CANCEL_MUTATION, "variables": {"id": s["id"]}},
            merchant.write_headers,
        )
        for s in sessions
    ]
    others = await graphql(
        limited_client, CANCEL_MUTATION, {"id": other["id"]}, other_merchant.write_headers
    )

    assert [error_codes(r.json()) for r in responses[:2]] == [[], []]
    _assert_limited(responses[2])
    assert error_codes(others) == []
    # The refused write changed nothing.
    third = await client.get(
        f"/v1/checkout-sessions/{sessions[2]['id']}", headers=merchant.read_headers
    )
    assert third.status_code == 200


async def test_every_root_field_of_every_batched_operation_counts(
    client: httpx.AsyncClient, limited_client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    # given: a limit of 2 writes, and one request of 2 operations creating 2 sessions each
    create = (
        'mutation { a: createCheckoutSession(input: {amount: 100, currency: "EUR"}) { id }'
        ' b: createCheckoutSession(input: {amount: 100, currency: "EUR"}) { id } }'
    )
    batch = [{"query": create}, {"query": create}]

    refused = await _post(limited_client, batch, merchant.write_headers)

    _assert_limited(refused)
    # and nothing was created: 2 writes (one operation of 2 fields) still fit the limit
    accepted = await _post(limited_client, {"query": create}, merchant.write_headers)
    assert error_codes(accepted.json()) == []


async def test_aliases_and_fragments_at_the_root_count_as_reads(
    client: httpx.AsyncClient, limited_client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    # 4 root fields (3 aliases, one through a fragment on Query) against a limit of 3
    query = (
        "query($id: ID!) { a: checkoutSession(id: $id) { id } b: checkoutSession(id: $id) { id }"
        " c: checkoutSession(id: $id) { id } ...More __typename }"
        " fragment More on Query { d: checkoutSession(id: $id) { id } }"
    )
    three = query.replace(" ...More", "").replace(
        " fragment More on Query { d: checkoutSession(id: $id) { id } }", ""
    )
    variables = {"id": session["id"]}

    refused = await _post(
        limited_client, {"query": query, "variables": variables}, merchant.read_headers
    )
    accepted = await _post(
        limited_client, {"query": three, "variables": variables}, merchant.read_headers
    )

    _assert_limited(refused)
    assert error_codes(accepted.json()) == []
    _assert_limited(
        await _post(
            limited_client, {"query": STATUS_QUERY, "variables": variables}, merchant.read_headers
        )
    )


# SQLite only: the deadline (1 µs) cancels the request wherever it is, and on PostgreSQL
# that can be inside asyncpg's connect, which then leaves its socket for the garbage
# collector: a ResourceWarning that fails whichever later test is running at the time.
# The middleware under test does not depend on the database.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_request_past_its_time_limit_is_abandoned(
    settings: Settings, clock: Clock, merchant: MerchantCredentials, app: Starlette
) -> None:
    limits = replace(settings.limits, request_timeout_seconds=1e-6)
    hurried = create_app(replace(settings, limits=limits), clock=clock)
    await migrate(hurried.state.container.engine)
    transport = httpx.ASGITransport(app=hurried)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(
                "/graphql",
                json={
                    "query": STATUS_QUERY,
                    "variables": {"id": "0" * 8 + "-0000-4000-8000-" + "0" * 12},
                },
                headers=merchant.read_headers,
            )
    finally:
        await hurried.state.container.stop()

    assert response.status_code == 503
    assert response.json()["code"] == "REQUEST_TIMEOUT"
    assert response.headers["x-request-id"]


async def test_the_time_limit_cancels_only_the_requests_past_it() -> None:
    deadlines = Deadlines(0.05)

    async def request(work: float) -> str:
        try:
            await deadlines.run(asyncio.sleep(work))
        except Expired:
            await asyncio.sleep(0)  # the task was uncancelled: it can still answer
            return "503"
        return "200"

    first = list(await asyncio.gather(request(10), request(0.01), request(10)))
    assert first == ["503", "200", "503"]
    # The timer is set again for later requests.
    assert list(await asyncio.gather(request(0), request(10))) == ["200", "503"]


async def test_a_request_cancelled_by_others_stays_cancelled() -> None:
    deadlines = Deadlines(10)
    task = asyncio.create_task(deadlines.run(asyncio.sleep(10)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_queries_over_get_need_a_header_a_cross_site_form_cannot_send(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    # A plain link or <img> (no such header) is refused; X-Merchant-Id forces a preflight.
    response = await client.get("/graphql", params={"query": "{ __typename }"})

    assert response.status_code == 400
    assert "data" not in response.json()
    assert error_codes(response.json()) == ["VALIDATION_ERROR"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_cross_site_simple_requests_are_refused(
    client: httpx.AsyncClient, content_type: str
) -> None:
    # A browser sends these without a CORS preflight; a mutation must never run from one.
    response = await client.post(
        "/graphql",
        content=b'{"query": "mutation { cancelCheckoutSession(id: \\"x\\") { id } }"}',
        headers={"Content-Type": content_type},
    )

    assert response.status_code in {400, 415}
    assert response.json()["errors"][0]["extensions"]["code"]
