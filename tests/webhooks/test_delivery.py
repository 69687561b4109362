"""Deliveries reach a real receiver process, signed, retried, and recorded (section 11)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from testkit.clock import Clock
from testkit.documents import (
    CANCEL_MUTATION,
    CARD,
    COMPLETE_MUTATION,
    FAIL_MUTATION,
    create_session,
    graphql,
)
from testkit.merchants import MerchantCredentials
from testkit.receiver import Receiver
from testkit.webhooks import (
    ENDPOINTS,
    REDELIVER,
    ROTATE_SECRET,
    create_endpoint,
    events_of,
)
from tests.conftest import StatementCounter
from tests.webhooks.conftest import TEST_WEBHOOKS

pytestmark = pytest.mark.anyio


async def eventually(
    check: Callable[[], Awaitable[Any]],
    *,
    timeout: float = 20.0,  # noqa: ASYNC109 (a wait's bound, not the caller's deadline)
) -> Any:
    """``check()`` once it returns something true (its last answer after the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.02)


async def _delivered(
    client: httpx.AsyncClient, merchant: MerchantCredentials, session_id: str, status: str
) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        events = await events_of(client, merchant.api_key, filter={"checkoutSessionId": session_id})
        statuses = {d["status"] for event in events for d in event["deliveries"]}
        return events if events and statuses == {status} else None

    found: list[dict[str, Any]] = await eventually(check) or await events_of(
        client, merchant.api_key, filter={"checkoutSessionId": session_id}
    )
    return found


async def test_a_completed_session_is_delivered_signed_as_the_rest_object(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    hook_path: str,
) -> None:
    # given: an endpoint whose secret the receiver verifies with
    endpoint_id, secret = await create_endpoint(client, merchant.api_key, receiver.url(hook_path))
    receiver.trust(hook_path, secret)
    session = await create_session(client, merchant.api_key, merchantReference="order-1")

    # when: the session completes
    await graphql(
        client,
        COMPLETE_MUTATION,
        {"id": session["id"], "paymentMethod": CARD},
        merchant.write_headers,
    )

    # then: one delivery arrives, verified by standardwebhooks, with the REST object
    (delivery,) = await receiver.arrived(hook_path, 1)
    assert delivery["verifiedWith"] == [0]
    assert delivery["contentType"] == "application/json"
    body = json.loads(delivery["body"])
    assert body["type"] == "checkout_session.completed"
    rest = (
        await client.get(f"/v1/checkout-sessions/{session['id']}", headers=merchant.read_headers)
    ).json()["data"]["checkoutSession"]
    assert body["data"] == {"checkoutSession": rest}
    assert body["timestamp"].endswith("Z")
    # and the event log shows it acknowledged, under the same id
    (event,) = await _delivered(client, merchant, session["id"], "SUCCEEDED")
    assert delivery["webhookId"] == "msg_" + event["id"].replace("-", "")
    assert event["type"] == "CHECKOUT_SESSION_COMPLETED"
    assert event["deliveries"] == [
        {
            "endpoint": {"id": endpoint_id},
            "status": "SUCCEEDED",
            "attempts": 1,
            "lastResponseStatus": 200,
            "nextAttemptAt": None,
        }
    ]


async def test_transitions_without_endpoints_cost_the_dispatcher_no_write(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    headers: dict[str, str],
    statements: StatementCounter,
) -> None:
    # given: a merchant with no webhook endpoint
    ids = [(await create_session(client, merchant.api_key))["id"] for _ in range(3)]
    statements.reset()

    # when: its sessions are canceled (each commit wakes the dispatcher), and it polls
    for session_id in ids:
        body = await graphql(client, CANCEL_MUTATION, {"id": session_id}, headers)
        assert "errors" not in body, body
    await asyncio.sleep(3 * TEST_WEBHOOKS.poll_seconds)

    # then: it looked (a read) and claimed nothing: no write transaction of its own
    claims = [s for s in statements.statements if s.startswith("UPDATE webhook_deliveries")]
    assert claims == []
    assert any("webhook_deliveries" in s for s in statements.statements)


async def test_every_transition_of_a_family_is_one_event(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    hook_path: str,
) -> None:
    # given: a parent with a failed child and an open one
    await create_endpoint(client, merchant.api_key, receiver.url(hook_path))
    parent = await create_session(client, merchant.api_key)
    failed = await create_session(client, merchant.api_key, parentSessionId=parent["id"])
    await graphql(client, FAIL_MUTATION, {"id": failed["id"]}, merchant.write_headers)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])
    other = await create_session(client, merchant.api_key)
    opened = await create_session(client, merchant.api_key, parentSessionId=other["id"])

    # when: the child completes (and its parent with it), another parent is canceled
    await graphql(
        client,
        COMPLETE_MUTATION,
        {"id": child["id"], "paymentMethod": CARD},
        merchant.write_headers,
    )
    await graphql(client, CANCEL_MUTATION, {"id": other["id"]}, merchant.write_headers)

    # then: one event per session that changed, of its new state; creations make none
    received = await receiver.arrived(hook_path, 5)
    delivered = sorted(
        (json.loads(r["body"])["data"]["checkoutSession"]["id"], json.loads(r["body"])["type"])
        for r in received
    )
    assert delivered == sorted(
        [
            (failed["id"], "checkout_session.failed"),
            (child["id"], "checkout_session.completed"),
            (parent["id"], "checkout_session.completed"),
            (other["id"], "checkout_session.canceled"),
            (opened["id"], "checkout_session.canceled"),
        ]
    )
    assert len({r["webhookId"] for r in received}) == 5


async def test_failures_are_retried_with_the_same_id_until_acknowledged(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    hook_path: str,
) -> None:
    # given: a receiver that fails twice (a 500, then a redirect, which is not followed)
    receiver.script(hook_path, {"status": 500}, {"status": 302})
    _endpoint_id, secret = await create_endpoint(client, merchant.api_key, receiver.url(hook_path))
    receiver.trust(hook_path, secret)
    session = await create_session(client, merchant.api_key)

    # when
    await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, merchant.write_headers)

    # then: three attempts, one webhook-id, each verified, the last acknowledged
    received = await receiver.arrived(hook_path, 3)
    assert len(received) == 3
    assert len({r["webhookId"] for r in received}) == 1
    assert len({r["body"] for r in received}) == 1
    assert all(r["verifiedWith"] == [0] for r in received)
    (event,) = await _delivered(client, merchant, session["id"], "SUCCEEDED")
    assert event["deliveries"][0]["attempts"] == 3
    assert event["deliveries"][0]["lastResponseStatus"] == 200


async def test_after_the_last_retry_the_delivery_failed(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    hook_path: str,
) -> None:
    # given: a receiver that always answers 500 (the schedule has two retries)
    receiver.script(hook_path, *[{"status": 500}] * 10)
    await create_endpoint(client, merchant.api_key, receiver.url(hook_path))
    session = await create_session(client, merchant.api_key)

    # when
    await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, merchant.write_headers)

    # then: three attempts, then FAILED with no next attempt
    (event,) = await _delivered(client, merchant, session["id"], "FAILED")
    assert event["deliveries"][0] | {"endpoint": None} == {
        "endpoint": None,
        "status": "FAILED",
        "attempts": 3,
        "lastResponseStatus": 500,
        "nextAttemptAt": None,
    }
    await asyncio.sleep(0.5)  # the schedule's delays, several times over
    assert len(receiver.received(hook_path)) == 3


async def test_410_gone_disables_the_endpoint(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    hook_path: str,
) -> None:
    # given
    receiver.script(hook_path, {"status": 410})
    await create_endpoint(client, merchant.api_key, receiver.url(hook_path))
    first = await create_session(client, merchant.api_key)
    second = await create_session(client, merchant.api_key)

    # when
    await graphql(client, CANCEL_MUTATION, {"id": first["id"]}, merchant.write_headers)
    (event,) = await _delivered(client, merchant, first["id"], "FAILED")
    await graphql(client, CANCEL_MUTATION, {"id": second["id"]}, merchant.write_headers)

    # then: no retry, the endpoint is disabled and gets nothing more
    assert event["deliveries"][0]["attempts"] == 1
    assert event["deliveries"][0]["lastResponseStatus"] == 410
    endpoints = await graphql(client, ENDPOINTS, headers=merchant.write_headers)
    assert [e["enabled"] for e in endpoints["data"]["webhookEndpoints"]] == [False]
    assert await events_of(client, merchant.api_key, filter={"checkoutSessionId": second["id"]})
    (later,) = await events_of(client, merchant.api_key, filter={"checkoutSessionId": second["id"]})
    assert later["deliveries"] == []
    assert len(receiver.received(hook_path)) == 1


async def test_retry_after_is_honoured_on_429(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    hook_path: str,
) -> None:
    # given: a receiver asking for 2 s, where the schedule would retry after 0.1 s
    receiver.script(hook_path, {"status": 429, "retryAfter": 2})
    await create_endpoint(client, merchant.api_key, receiver.url(hook_path))
    session = await create_session(client, merchant.api_key)

    # when
    await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, merchant.write_headers)

    # then: the retry waited for it (time is the point here: a generous lower bound)
    first, second = await receiver.arrived(hook_path, 2)
    assert second["arrived"] - first["arrived"] >= 1.9


async def test_after_a_rotation_both_secrets_verify(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    hook_path: str,
) -> None:
    # given: an endpoint whose secret is rotated
    endpoint_id, old = await create_endpoint(client, merchant.api_key, receiver.url(hook_path))
    rotated = await graphql(client, ROTATE_SECRET, {"id": endpoint_id}, merchant.write_headers)
    new = rotated["data"]["rotateWebhookEndpointSecret"]["secret"]
    assert new.startswith("whsec_")
    assert new != old
    receiver.trust(hook_path, old, new)
    session = await create_session(client, merchant.api_key)

    # when
    await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, merchant.write_headers)

    # then: two signatures, each secret verifies the delivery on its own
    (delivery,) = await receiver.arrived(hook_path, 1)
    assert len(delivery["signature"].split(" ")) == 2
    assert delivery["verifiedWith"] == [0, 1]


async def test_after_24_hours_only_the_new_secret_signs(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    hook_path: str,
    clock: Clock,
) -> None:
    # given: a rotation made a day ago
    endpoint_id, old = await create_endpoint(client, merchant.api_key, receiver.url(hook_path))
    rotated = await graphql(client, ROTATE_SECRET, {"id": endpoint_id}, merchant.write_headers)
    new = rotated["data"]["rotateWebhookEndpointSecret"]["secret"]
    receiver.trust(hook_path, old, new)
    clock.advance(hours=24)
    session = await create_session(client, merchant.api_key)

    # when
    await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, merchant.write_headers)

    # then
    (delivery,) = await receiver.arrived(hook_path, 1)
    assert delivery["verifiedWith"] == [1]
    assert len(delivery["signature"].split(" ")) == 1


async def test_redelivery_sends_the_same_message_again(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    hook_path: str,
) -> None:
    # given: an event delivered once
    endpoint_id, secret = await create_endpoint(client, merchant.api_key, receiver.url(hook_path))
    receiver.trust(hook_path, secret)
    session = await create_session(client, merchant.api_key)
    await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, merchant.write_headers)
    (event,) = await _delivered(client, merchant, session["id"], "SUCCEEDED")

    # when
    answer = await graphql(
        client, REDELIVER, {"id": event["id"], "endpointId": endpoint_id}, merchant.write_headers
    )

    # then: scheduled now, sent again with the same id and body, acknowledged
    redelivery = answer["data"]["redeliverWebhookEvent"]
    assert redelivery["status"] == "PENDING"
    assert redelivery["endpoint"] == {"id": endpoint_id}
    first, second = await receiver.arrived(hook_path, 2)
    assert (second["webhookId"], second["body"]) == (first["webhookId"], first["body"])
    assert second["verifiedWith"] == [0]
    (event,) = await _delivered(client, merchant, session["id"], "SUCCEEDED")
    assert event["deliveries"][0]["attempts"] == 2


async def test_redelivery_reaches_an_endpoint_registered_after_the_event(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    hook_path: str,
) -> None:
    # given: an event recorded before any endpoint existed
    session = await create_session(client, merchant.api_key)
    await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, merchant.write_headers)
    (event,) = await events_of(client, merchant.api_key)
    assert event["deliveries"] == []
    endpoint_id, _secret = await create_endpoint(client, merchant.api_key, receiver.url(hook_path))

    # when
    await graphql(
        client, REDELIVER, {"id": event["id"], "endpointId": endpoint_id}, merchant.write_headers
    )

    # then
    (delivery,) = await receiver.arrived(hook_path, 1)
    assert json.loads(delivery["body"])["data"]["checkoutSession"]["id"] == session["id"]


async def test_an_expired_session_is_one_expired_event(
    app: Starlette,
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    hook_path: str,
    clock: Clock,
) -> None:
    # given: an open session and an endpoint
    _endpoint_id, secret = await create_endpoint(client, merchant.api_key, receiver.url(hook_path))
    receiver.trust(hook_path, secret)
    session = await create_session(client, merchant.api_key, expiresInSeconds=60)

    # when: it expires, and the sweeper runs several times (and once more by hand)
    clock.advance(seconds=60)
    (delivery,) = await receiver.arrived(hook_path, 1)
    await app.state.container.dispatcher.sweep()
    await asyncio.sleep(0.5)

    # then: exactly one expired event, delivered once, showing the session expired
    body = json.loads(delivery["body"])
    assert body["type"] == "checkout_session.expired"
    assert body["data"]["checkoutSession"]["id"] == session["id"]
    assert body["data"]["checkoutSession"]["isExpired"] is True
    assert delivery["verifiedWith"] == [0]
    assert len(receiver.received(hook_path)) == 1
    (event,) = await events_of(client, merchant.api_key)
    assert event["type"] == "CHECKOUT_SESSION_EXPIRED"
