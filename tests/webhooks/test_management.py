"""Endpoint management and the event log: API key, merchant isolation, validation, pages."""

from __future__ import annotations

import base64
from dataclasses import replace

import httpx
import pytest
from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.settings import Environment, Settings
from gql_checkout.storage.migrate import migrate
from testkit.clock import Clock
from testkit.documents import CANCEL_MUTATION, create_session, error_codes, graphql
from testkit.merchants import MerchantCredentials
from testkit.webhooks import (
    ALL_EVENTS,
    CREATE_ENDPOINT,
    DELETE_ENDPOINT,
    ENDPOINTS,
    EVENTS,
    REDELIVER,
    ROTATE_SECRET,
    UPDATE_ENDPOINT,
    create_endpoint,
    events_of,
)

pytestmark = pytest.mark.anyio
URL = "https://hooks.example.com/gql-checkout"


async def test_an_endpoint_is_created_listed_updated_and_deleted(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    # when
    created = await graphql(
        client,
        CREATE_ENDPOINT,
        {"input": {"url": URL, "events": ["CHECKOUT_SESSION_COMPLETED"], "description": "shop"}},
        merchant.write_headers,
    )

    # then: the secret once, in Standard Webhooks' form; never again
    answer = created["data"]["createWebhookEndpoint"]
    assert answer["secret"].startswith("whsec_")
    assert len(base64.b64decode(answer["secret"].removeprefix("whsec_"))) == 32
    endpoint = answer["endpoint"]
    assert endpoint | {"id": None, "createdAt": None} == {
        "id": None,
        "url": URL,
        "events": ["CHECKOUT_SESSION_COMPLETED"],
        "description": "shop",
        "enabled": True,
        "createdAt": None,
    }
    listed = await graphql(client, ENDPOINTS, headers=merchant.write_headers)
    assert listed == {
        "data": {
            "webhookEndpoints": [
                {
                    "id": endpoint["id"],
                    "url": URL,
                    "events": ["CHECKOUT_SESSION_COMPLETED"],
                    "description": "shop",
                    "enabled": True,
                }
            ]
        }
    }
    updated = await graphql(
        client,
        UPDATE_ENDPOINT,
        {"id": endpoint["id"], "input": {"enabled": False, "events": ALL_EVENTS}},
        merchant.write_headers,
    )
    assert updated["data"]["updateWebhookEndpoint"] == {
        "id": endpoint["id"],
        "url": URL,
        "events": ALL_EVENTS,
        "description": "shop",
        "enabled": False,
    }
    deleted = await graphql(client, DELETE_ENDPOINT, {"id": endpoint["id"]}, merchant.write_headers)
    assert deleted == {"data": {"deleteWebhookEndpoint": True}}
    listed = await graphql(client, ENDPOINTS, headers=merchant.write_headers)
    assert listed == {"data": {"webhookEndpoints": []}}


@pytest.mark.parametrize(
    ("url", "events"),
    [
        ("not a url", ALL_EVENTS),
        ("ftp://hooks.example.com/", ALL_EVENTS),
        ("https://user:pass@hooks.example.com/", ALL_EVENTS),
        ("https:///no-host", ALL_EVENTS),
        ("https://hooks.example.com:99999/", ALL_EVENTS),
        ("https://hooks.example.com/" + "x" * 2000, ALL_EVENTS),
        (URL, []),
    ],
)
async def test_bad_endpoints_are_validation_errors(
    client: httpx.AsyncClient, merchant: MerchantCredentials, url: str, events: list[str]
) -> None:
    body = await graphql(
        client, CREATE_ENDPOINT, {"input": {"url": url, "events": events}}, merchant.write_headers
    )
    assert error_codes(body) == ["VALIDATION_ERROR"]
    assert body["data"] is None


async def test_webhooks_need_the_api_key(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    token_headers = {"Authorization": f"Bearer {session['hcpToken']}"}
    for headers in (merchant.read_headers, token_headers, {}):
        for document in (ENDPOINTS, EVENTS):
            body = await graphql(client, document, headers=headers)
            assert error_codes(body) == ["UNAUTHENTICATED"], (document, headers)
        created = await graphql(
            client, CREATE_ENDPOINT, {"input": {"url": URL, "events": ALL_EVENTS}}, headers
        )
        assert error_codes(created) == ["UNAUTHENTICATED"]


async def test_merchants_see_and_touch_only_their_own(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    other_merchant: MerchantCredentials,
) -> None:
    # given: an endpoint and an event of one merchant
    endpoint_id, _secret = await create_endpoint(client, merchant.api_key, URL)
    session = await create_session(client, merchant.api_key)
    await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, merchant.write_headers)
    (event,) = await events_of(client, merchant.api_key)
    theirs, _ = await create_endpoint(client, other_merchant.api_key, URL)

    # then: the other merchant sees none of it
    other = other_merchant.write_headers
    assert await events_of(client, other_merchant.api_key) == []
    listed = await graphql(client, ENDPOINTS, headers=other)
    assert [e["id"] for e in listed["data"]["webhookEndpoints"]] == [theirs]
    # and can change none of it
    for document, variables in (
        (UPDATE_ENDPOINT, {"id": endpoint_id, "input": {"enabled": False}}),
        (DELETE_ENDPOINT, {"id": endpoint_id}),
        (ROTATE_SECRET, {"id": endpoint_id}),
        (REDELIVER, {"id": event["id"], "endpointId": theirs}),
        (REDELIVER, {"id": event["id"], "endpointId": endpoint_id}),
    ):
        body = await graphql(client, document, variables, other)
        assert error_codes(body) == ["FORBIDDEN"], document
    # nor can its own event reach another merchant's endpoint
    body = await graphql(
        client,
        REDELIVER,
        {"id": event["id"], "endpointId": theirs},
        merchant.write_headers,
    )
    assert error_codes(body) == ["FORBIDDEN"]
    unknown = "00000000-0000-4000-8000-000000000000"
    body = await graphql(client, DELETE_ENDPOINT, {"id": unknown}, merchant.write_headers)
    assert error_codes(body) == ["NOT_FOUND"]
    listed = await graphql(client, ENDPOINTS, headers=merchant.write_headers)
    assert listed["data"]["webhookEndpoints"][0]["enabled"] is True


async def test_the_event_log_pages_by_keyset_and_filters(
    client: httpx.AsyncClient, merchant: MerchantCredentials, clock: Clock
) -> None:
    # given: five canceled sessions, a second apart, and one failed
    canceled = []
    for _ in range(5):
        session = await create_session(client, merchant.api_key)
        await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, merchant.write_headers)
        canceled.append(session["id"])
        clock.advance(seconds=1)
    failed = await create_session(client, merchant.api_key)
    await graphql(
        client,
        "mutation($id: ID!) { failCheckoutSession(id: $id) { id } }",
        {"id": failed["id"]},
        merchant.write_headers,
    )

    # when: paged two at a time, canceled only
    seen: list[str] = []
    after = None
    while True:
        body = await graphql(
            client,
            EVENTS,
            {"first": 2, "after": after, "filter": {"type": ["CHECKOUT_SESSION_CANCELED"]}},
            merchant.write_headers,
        )
        page = body["data"]["webhookEvents"]
        seen += [edge["node"]["checkoutSessionId"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    # then: newest first, each once
    assert seen == canceled[::-1]
    by_session = await events_of(
        client, merchant.api_key, filter={"checkoutSessionId": failed["id"]}
    )
    assert [e["type"] for e in by_session] == ["CHECKOUT_SESSION_FAILED"]
    pending = await events_of(client, merchant.api_key, filter={"deliveryStatus": "PENDING"})
    assert pending == []


@pytest.mark.parametrize(
    "variables",
    [{"first": 0}, {"first": 101}, {"after": "bm9wZQ"}, {"after": "%%%"}, {"after": ""}],
)
async def test_bad_pages_are_validation_errors(
    client: httpx.AsyncClient, merchant: MerchantCredentials, variables: dict[str, object]
) -> None:
    body = await graphql(client, EVENTS, variables, merchant.write_headers)
    assert error_codes(body) == ["VALIDATION_ERROR"]


@pytest.fixture
async def production_app(settings: Settings, clock: Clock) -> Starlette:
    app = create_app(replace(settings, environment=Environment.PRODUCTION), clock=clock)
    await migrate(app.state.container.engine)
    return app


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/",
        "https://127.0.0.1/",
        "https://10.1.2.3/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://169.254.169.254/latest/meta-data",
        "https://0.0.0.0/",
    ],
)
async def test_production_refuses_plain_http_and_private_addresses(
    production_app: Starlette, url: str
) -> None:
    _merchant, api_key = await production_app.state.container.merchants.create_merchant(name="P")
    transport = httpx.ASGITransport(app=production_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        body = await graphql(
            client,
            CREATE_ENDPOINT,
            {"input": {"url": url, "events": ALL_EVENTS}},
            {"Authorization": f"Bearer {api_key}"},
        )
    assert error_codes(body) == ["VALIDATION_ERROR"], url
    await production_app.state.container.stop()
