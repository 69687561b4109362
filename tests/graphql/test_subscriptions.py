"""checkoutSessionUpdated over graphql-transport-ws (Starlette's TestClient runs the app)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient, WebSocketTestSession

from gql_checkout.app import create_app
from gql_checkout.settings import Settings
from gql_checkout.storage.migrate import migrate
from testkit.clock import Clock
from testkit.documents import (
    CANCEL_MUTATION,
    CARD,
    COMPLETE_MUTATION,
    CREATE_MUTATION,
    FAIL_MUTATION,
)

SUBSCRIPTION = """
subscription Watch($id: ID!) {
  checkoutSessionUpdated(id: $id) { id checkoutSessionStatus isExpired }
}
"""
PROTOCOL = ["graphql-transport-ws"]


@pytest.fixture
def test_client(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    async def prepare() -> None:
        setup = create_app(settings, clock=clock)
        await migrate(setup.state.container.engine)
        await setup.state.container.stop()

    asyncio.run(prepare())
    app: Starlette = create_app(settings, clock=clock)
    # Expiry tests move the clock, not real time: watchers look at it often.
    app.state.container.checkout._watchers.resync_seconds = 0.05
    with TestClient(app) as client:
        yield client


@pytest.fixture
def merchant_keys(test_client: TestClient) -> tuple[str, str]:
    service = test_client.app.state.container.merchants  # type: ignore[attr-defined]
    merchant, api_key = test_client.portal.call(_create_merchant, service)  # type: ignore[union-attr]
    return str(merchant.id), api_key


async def _create_merchant(service: Any) -> Any:
    return await service.create_merchant(name="Acme")


def _post(client: TestClient, api_key: str, query: str, variables: dict[str, Any]) -> Any:
    response = client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def _create(client: TestClient, api_key: str, **fields: Any) -> dict[str, Any]:
    variables = {"input": {"amount": 500, "currency": "EUR", **fields}}
    session: dict[str, Any] = _post(client, api_key, CREATE_MUTATION, variables)[
        "createCheckoutSession"
    ]
    return session


def _subscribe(ws: WebSocketTestSession, payload: dict[str, str], session_id: str) -> None:
    ws.send_json({"type": "connection_init", "payload": payload})
    assert ws.receive_json() == {"type": "connection_ack"}
    ws.send_json(
        {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": SUBSCRIPTION, "variables": {"id": session_id}},
        }
    )


def _next(ws: WebSocketTestSession) -> dict[str, Any]:
    message: dict[str, Any] = ws.receive_json()
    assert message["type"] == "next", message
    assert message["id"] == "1"
    return message["payload"]  # type: ignore[no-any-return]


def _event(session_id: str, status: str, *, expired: bool = False) -> dict[str, Any]:
    return {
        "data": {
            "checkoutSessionUpdated": {
                "id": session_id,
                "checkoutSessionStatus": status,
                "isExpired": expired,
            }
        }
    }


def test_current_state_then_a_change_then_complete(
    test_client: TestClient, merchant_keys: tuple[str, str]
) -> None:
    merchant_id, api_key = merchant_keys
    session = _create(test_client, api_key)

    with test_client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        _subscribe(ws, {"merchantId": merchant_id}, session["id"])
        first = _next(ws)
        _post(test_client, api_key, COMPLETE_MUTATION, {"id": session["id"], "paymentMethod": CARD})
        second = _next(ws)
        done = ws.receive_json()

    assert first == _event(session["id"], "INITIATED")
    assert second == _event(session["id"], "COMPLETED")
    assert done == {"id": "1", "type": "complete"}


def test_a_completed_child_reaches_the_parents_subscriber(
    test_client: TestClient, merchant_keys: tuple[str, str]
) -> None:
    merchant_id, api_key = merchant_keys
    parent = _create(test_client, api_key)

    with test_client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        _subscribe(ws, {"merchantId": merchant_id}, parent["id"])
        assert _next(ws) == _event(parent["id"], "INITIATED")
        child = _create(test_client, api_key, parentSessionId=parent["id"])
        # A new current child changes the parent too (its childSession).
        assert _next(ws) == _event(parent["id"], "INITIATED")
        _post(test_client, api_key, COMPLETE_MUTATION, {"id": child["id"], "paymentMethod": CARD})
        propagated = _next(ws)
        done = ws.receive_json()

    assert propagated == _event(parent["id"], "COMPLETED")
    assert done["type"] == "complete"


def test_the_expiry_is_the_last_event(
    test_client: TestClient, merchant_keys: tuple[str, str], clock: Clock
) -> None:
    merchant_id, api_key = merchant_keys
    session = _create(test_client, api_key, expiresInSeconds=60)

    with test_client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        _subscribe(ws, {"merchantId": merchant_id}, session["id"])
        assert _next(ws) == _event(session["id"], "INITIATED")
        clock.advance(seconds=60)
        expired = _next(ws)
        done = ws.receive_json()

    assert expired == _event(session["id"], "INITIATED", expired=True)
    assert done["type"] == "complete"


def test_the_hcp_token_authorises_its_own_session(
    test_client: TestClient, merchant_keys: tuple[str, str]
) -> None:
    _, api_key = merchant_keys
    session = _create(test_client, api_key)

    with test_client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        _subscribe(ws, {"hcpToken": session["hcpToken"]}, session["id"])
        first = _next(ws)
        _post(test_client, api_key, CANCEL_MUTATION, {"id": session["id"]})
        last = _next(ws)

    assert first == _event(session["id"], "INITIATED")
    assert last == _event(session["id"], "CANCELED")


@pytest.mark.parametrize("who", ["other-merchant", "other-session-token"])
def test_another_merchants_or_sessions_subscription_is_forbidden(
    test_client: TestClient, merchant_keys: tuple[str, str], who: str
) -> None:
    _, api_key = merchant_keys
    session = _create(test_client, api_key)
    other = _create(test_client, api_key)
    payload = (
        {"merchantId": "00000000-0000-4000-8000-000000000000"}
        if who == "other-merchant"
        else {"hcpToken": other["hcpToken"]}
    )

    with test_client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        _subscribe(ws, payload, session["id"])
        message = ws.receive_json()

    codes = [error["extensions"]["code"] for error in _errors(message)]
    assert codes == ["FORBIDDEN"]


def _errors(message: dict[str, Any]) -> list[dict[str, Any]]:
    if message["type"] == "error":
        return message["payload"]  # type: ignore[no-any-return]
    assert message["type"] == "next", message
    return message["payload"]["errors"]  # type: ignore[no-any-return]


def test_a_canceled_session_cannot_be_subscribed(
    test_client: TestClient, merchant_keys: tuple[str, str]
) -> None:
    merchant_id, api_key = merchant_keys
    session = _create(test_client, api_key)
    _post(test_client, api_key, CANCEL_MUTATION, {"id": session["id"]})

    with test_client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        _subscribe(ws, {"merchantId": merchant_id}, session["id"])
        message = ws.receive_json()

    assert [error["extensions"]["code"] for error in _errors(message)] == ["SESSION_CANCELED"]


@pytest.fixture
def limited_test_client(
    settings: Settings, clock: Clock, test_client: TestClient
) -> Iterator[TestClient]:
    """A second app on the same (migrated) database, reads limited to 3 a minute."""
    limits = replace(settings.limits, reads_per_client="3/minute")
    with TestClient(create_app(replace(settings, limits=limits), clock=clock)) as client:
        yield client


def test_each_subscription_start_counts_as_a_read(
    test_client: TestClient, limited_test_client: TestClient, merchant_keys: tuple[str, str]
) -> None:
    merchant_id, api_key = merchant_keys
    session = _create(test_client, api_key)
    subscribe = {"query": SUBSCRIPTION, "variables": {"id": session["id"]}}

    with limited_test_client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        ws.send_json({"type": "connection_init", "payload": {"merchantId": merchant_id}})
        assert ws.receive_json() == {"type": "connection_ack"}
        firsts = []
        for operation in ("1", "2", "3", "4"):
            ws.send_json({"id": operation, "type": "subscribe", "payload": subscribe})
            firsts.append(ws.receive_json())

    assert [message["id"] for message in firsts] == ["1", "2", "3", "4"]
    # the first three sent the session's state; the fourth was over the limit
    assert [message["payload"].get("errors") is None for message in firsts[:3]] == [True] * 3
    codes = [error["extensions"]["code"] for error in _errors(firsts[3])]
    assert codes == ["RATE_LIMITED"]


def test_a_query_that_is_not_a_string_is_a_coded_error(
    test_client: TestClient, merchant_keys: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    merchant_id, _ = merchant_keys

    with test_client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        ws.send_json({"type": "connection_init", "payload": {"merchantId": merchant_id}})
        assert ws.receive_json() == {"type": "connection_ack"}
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": 5}})
        message = ws.receive_json()

    assert [error["extensions"]["code"] for error in _errors(message)] == ["VALIDATION_ERROR"]
    assert not [record for record in caplog.records if record.levelname in {"ERROR", "CRITICAL"}]


def _watch(ws: WebSocketTestSession, merchant_id: str, query: str, session_id: str) -> None:
    ws.send_json({"type": "connection_init", "payload": {"merchantId": merchant_id}})
    assert ws.receive_json() == {"type": "connection_ack"}
    payload = {"query": query, "variables": {"id": session_id}}
    ws.send_json({"id": "1", "type": "subscribe", "payload": payload})


PARENT_SUBSCRIPTION = """
subscription Watch($id: ID!) {
  checkoutSessionUpdated(id: $id) { checkoutSessionStatus childSession { checkoutSessionStatus } }
}
"""


def _parent_event(status: str, *, child: str) -> dict[str, Any]:
    """An event of PARENT_SUBSCRIPTION."""
    session = {"checkoutSessionStatus": status, "childSession": {"checkoutSessionStatus": child}}
    return {"data": {"checkoutSessionUpdated": session}}


def test_each_event_shows_the_child_session_as_it_is_at_that_event(
    test_client: TestClient, merchant_keys: tuple[str, str]
) -> None:
    merchant_id, api_key = merchant_keys
    parent = _create(test_client, api_key)
    child = _create(test_client, api_key, parentSessionId=parent["id"])

    with test_client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        _watch(ws, merchant_id, PARENT_SUBSCRIPTION, parent["id"])
        first = _next(ws)
        _post(test_client, api_key, COMPLETE_MUTATION, {"id": child["id"], "paymentMethod": CARD})
        last = _next(ws)

    assert first == _parent_event("INITIATED", child="INITIATED")
    assert last == _parent_event("COMPLETED", child="COMPLETED")


def test_a_failed_child_is_an_event_for_the_parents_subscribers(
    test_client: TestClient, merchant_keys: tuple[str, str]
) -> None:
    merchant_id, api_key = merchant_keys
    parent = _create(test_client, api_key)
    child = _create(test_client, api_key, parentSessionId=parent["id"])

    with test_client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        _watch(ws, merchant_id, PARENT_SUBSCRIPTION, parent["id"])
        _next(ws)
        _post(test_client, api_key, FAIL_MUTATION, {"id": child["id"], "reason": "declined"})
        event = _next(ws)

    # The parent stays open for a retry; its subscribers learn of the failed child at once.
    assert event == _parent_event("INITIATED", child="FAILED")


def test_the_current_childs_expiry_is_an_event_for_the_parents_subscribers(
    test_client: TestClient, merchant_keys: tuple[str, str], clock: Clock
) -> None:
    merchant_id, api_key = merchant_keys
    parent = _create(test_client, api_key)
    _create(test_client, api_key, parentSessionId=parent["id"], expiresInSeconds=60)
    watch = (
        "subscription($id: ID!) { checkoutSessionUpdated(id: $id) {"
        " checkoutSessionStatus childSession { isExpired } } }"
    )

    with test_client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        _watch(ws, merchant_id, watch, parent["id"])
        first = _next(ws)
        clock.advance(seconds=60)
        expired = _next(ws)

    def event(child_expired: bool) -> dict[str, Any]:
        session = {
            "checkoutSessionStatus": "INITIATED",
            "childSession": {"isExpired": child_expired},
        }
        return {"data": {"checkoutSessionUpdated": session}}

    assert first == event(False)
    assert expired == event(True)


EXPIRE_MUTATION = "mutation($id: ID!) { expireCheckoutSession(id: $id) { id } }"


def test_a_manual_expiry_is_sent_once_as_the_last_event(
    test_client: TestClient, merchant_keys: tuple[str, str]
) -> None:
    merchant_id, api_key = merchant_keys
    session = _create(test_client, api_key)

    with test_client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        _subscribe(ws, {"merchantId": merchant_id}, session["id"])
        first = _next(ws)
        _post(test_client, api_key, EXPIRE_MUTATION, {"id": session["id"]})
        expired = _next(ws)
        done = ws.receive_json()

    assert first == _event(session["id"], "INITIATED")
    assert expired == _event(session["id"], "INITIATED", expired=True)
    assert done == {"id": "1", "type": "complete"}


def test_many_subscribers_of_one_session_share_one_watcher_and_get_each_change_once(
    test_client: TestClient, merchant_keys: tuple[str, str]
) -> None:
    merchant_id, api_key = merchant_keys
    session = _create(test_client, api_key)
    checkout = test_client.app.state.container.checkout  # type: ignore[attr-defined]
    subscribers = 20

    with contextlib.ExitStack() as stack:
        sockets = [
            stack.enter_context(test_client.websocket_connect("/graphql", subprotocols=PROTOCOL))
            for _ in range(subscribers)
        ]
        for ws in sockets:
            _subscribe(ws, {"merchantId": merchant_id}, session["id"])
        firsts = [_next(ws) for ws in sockets]
        watched_while_open = checkout.watched_sessions
        _post(test_client, api_key, CANCEL_MUTATION, {"id": session["id"]})
        changes = [_next(ws) for ws in sockets]
        dones = [ws.receive_json() for ws in sockets]

    assert firsts == [_event(session["id"], "INITIATED")] * subscribers
    assert changes == [_event(session["id"], "CANCELED")] * subscribers
    assert dones == [{"id": "1", "type": "complete"}] * subscribers
    assert watched_while_open == 1
    assert checkout.watched_sessions == 0  # gone with its last subscriber
