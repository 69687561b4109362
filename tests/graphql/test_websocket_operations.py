"""Queries, mutations and subscriptions over one graphql-transport-ws connection: each
operation reads at its own instant, checks its caller afresh and counts against the
limits, as an HTTP request does (graphql/websockets.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketTestSession

from gql_checkout.app import create_app
from gql_checkout.settings import Settings
from gql_checkout.storage.migrate import migrate
from testkit.clock import Clock
from testkit.documents import CANCEL_MUTATION, CREATE_MUTATION

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PROTOCOL = ["graphql-transport-ws"]
STATUS_QUERY = "query($id: ID!) { checkoutSession(id: $id) { id checkoutSessionStatus } }"
SUBSCRIPTION = "subscription($id: ID!) { checkoutSessionUpdated(id: $id) { id } }"


@pytest.fixture
def clients(settings: Settings, clock: Clock) -> Iterator[tuple[TestClient, TestClient]]:
    """An app without limits, and one on the same database with 2 writes a minute and at
    most 2 operations a connection."""

    async def prepare() -> None:
        setup = create_app(settings, clock=clock)
        await migrate(setup.state.container.engine)
        await setup.state.container.stop()

    asyncio.run(prepare())
    limits = replace(
        settings.limits, writes_per_merchant="2/minute", max_subscriptions_per_connection=2
    )
    limited = replace(settings, limits=limits)
    with (
        TestClient(create_app(settings, clock=clock)) as free,
        TestClient(create_app(limited, clock=clock)) as strict,
    ):
        yield free, strict


@pytest.fixture
def merchant(clients: tuple[TestClient, TestClient]) -> tuple[str, str]:
    free, _ = clients
    merchant, api_key = free.portal.call(  # type: ignore[union-attr]
        _create_merchant,
        free.app.state.container.merchants,  # type: ignore[attr-defined]
    )
    return str(merchant.id), api_key


async def _create_merchant(service: Any) -> Any:
    return await service.create_merchant(name="Acme")


def _http(client: TestClient, api_key: str, query: str, variables: dict[str, Any]) -> Any:
    body = client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {api_key}"},
    ).json()
    assert "errors" not in body, body
    return body["data"]


def _create(client: TestClient, api_key: str) -> str:
    variables = {"input": {"amount": 500, "currency": "EUR"}}
    session_id: str = _http(client, api_key, CREATE_MUTATION, variables)["createCheckoutSession"][
        "id"
    ]
    return session_id


def _operation(
    ws: WebSocketTestSession, operation_id: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    ws.send_json(
        {
            "id": operation_id,
            "type": "subscribe",
            "payload": {"query": query, "variables": variables},
        }
    )
    message: dict[str, Any] = ws.receive_json()
    assert message["id"] == operation_id
    return message


def _connected(client: TestClient, headers: dict[str, str]) -> Any:
    ws = client.websocket_connect("/graphql", subprotocols=PROTOCOL, headers=headers)
    return ws


def _codes(message: dict[str, Any]) -> list[str]:
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    return [error["extensions"]["code"] for error in errors]


def test_a_query_over_the_socket_reads_the_session_as_it_is_now(
    clients: tuple[TestClient, TestClient], merchant: tuple[str, str]
) -> None:
    free, _ = clients
    merchant_id, api_key = merchant
    session_id = _create(free, api_key)

    with _connected(free, {"X-Merchant-Id": merchant_id}) as ws:
        ws.send_json({"type": "connection_init", "payload": {}})
        assert ws.receive_json() == {"type": "connection_ack"}
        before = _operation(ws, "1", STATUS_QUERY, {"id": session_id})
        assert ws.receive_json() == {"id": "1", "type": "complete"}
        _http(free, api_key, CANCEL_MUTATION, {"id": session_id})
        after = _operation(ws, "2", STATUS_QUERY, {"id": session_id})

    assert before["payload"] == {
        "data": {"checkoutSession": {"id": session_id, "checkoutSessionStatus": "INITIATED"}}
    }
    assert _codes(after) == ["SESSION_CANCELED"]


def test_every_mutation_over_the_socket_counts_against_the_write_limit(
    clients: tuple[TestClient, TestClient], merchant: tuple[str, str]
) -> None:
    free, strict = clients
    _, api_key = merchant
    sessions = [_create(free, api_key) for _ in range(3)]

    with _connected(strict, {"Authorization": f"Bearer {api_key}"}) as ws:
        ws.send_json({"type": "connection_init", "payload": {}})
        assert ws.receive_json() == {"type": "connection_ack"}
        answers = []
        for number, session_id in enumerate(sessions):
            answers.append(_operation(ws, str(number), CANCEL_MUTATION, {"id": session_id}))
            ws.receive_json()  # complete

    assert [_codes(answer) if "errors" in answer["payload"] else [] for answer in answers] == [
        [],
        [],
        ["RATE_LIMITED"],
    ]


def test_the_operations_limit_of_a_connection_is_a_coded_error(
    clients: tuple[TestClient, TestClient], merchant: tuple[str, str]
) -> None:
    free, strict = clients
    merchant_id, api_key = merchant
    session_id = _create(free, api_key)

    with _connected(strict, {}) as ws:
        ws.send_json({"type": "connection_init", "payload": {"merchantId": merchant_id}})
        assert ws.receive_json() == {"type": "connection_ack"}
        opened = [_operation(ws, str(n), SUBSCRIPTION, {"id": session_id}) for n in range(2)]
        refused = _operation(ws, "3", SUBSCRIPTION, {"id": session_id})

    assert [message["type"] for message in opened] == ["next", "next"]
    assert refused["type"] == "error"
    assert _codes(refused) == ["RATE_LIMITED"]


def test_a_key_revoked_while_the_socket_is_open_writes_no_more(
    clients: tuple[TestClient, TestClient], merchant: tuple[str, str]
) -> None:
    free, _ = clients
    merchant_id, api_key = merchant
    first, second = _create(free, api_key), _create(free, api_key)

    with _connected(free, {}) as ws:
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {api_key}"}})
        assert ws.receive_json() == {"type": "connection_ack"}
        before = _operation(ws, "1", CANCEL_MUTATION, {"id": first})
        ws.receive_json()  # complete
        merchants = free.app.state.container.merchants  # type: ignore[attr-defined]
        free.portal.call(_rotate, merchants, merchant_id)  # type: ignore[union-attr]
        after = _operation(ws, "2", CANCEL_MUTATION, {"id": second})

    assert "errors" not in before["payload"]
    assert _codes(after) == ["UNAUTHENTICATED"]


async def _rotate(service: Any, merchant_id: str) -> None:
    await service.rotate_api_key(merchant_id=uuid.UUID(merchant_id))
