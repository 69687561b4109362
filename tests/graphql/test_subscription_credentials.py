"""Who may subscribe under GQL_CHECKOUT_MERCHANT_HEADER, and hcpTokens with claims of the
wrong type, over graphql-transport-ws (Starlette's TestClient runs the app)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

import jwt
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from gql_checkout.app import create_app
from gql_checkout.services.merchants import MerchantHeader
from gql_checkout.settings import Settings
from gql_checkout.storage.migrate import migrate
from testkit.clock import Clock
from testkit.documents import CREATE_MUTATION
from testkit.merchants import TEST_SECRET

SUBSCRIPTION = """
subscription Watch($id: ID!) {
  checkoutSessionUpdated(id: $id) { id checkoutSessionStatus }
}
"""
PROTOCOL = ["graphql-transport-ws"]

ClientFor = Callable[[MerchantHeader], AbstractContextManager[TestClient]]


@pytest.fixture
def client_for(settings: Settings, clock: Clock) -> ClientFor:
    """A TestClient of an app in the given mode, on the test's (migrated) database."""

    async def prepare() -> None:
        setup = create_app(settings, clock=clock)
        await migrate(setup.state.container.engine)
        await setup.state.container.stop()

    asyncio.run(prepare())

    def make(mode: MerchantHeader) -> TestClient:
        app: Starlette = create_app(replace(settings, merchant_header=mode), clock=clock)
        return TestClient(app)

    return make


def _merchant_and_session(client: TestClient) -> tuple[str, dict[str, Any]]:
    """A new merchant (its id) and one open session of it (id, hcpToken)."""
    service = client.app.state.container.merchants  # type: ignore[attr-defined]
    merchant, api_key = client.portal.call(_create_merchant, service)  # type: ignore[union-attr]
    response = client.post(
        "/graphql",
        json={"query": CREATE_MUTATION, "variables": {"input": {"amount": 500, "currency": "EUR"}}},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    body = response.json()
    assert "errors" not in body, body
    return str(merchant.id), body["data"]["createCheckoutSession"]


async def _create_merchant(service: Any) -> Any:
    return await service.create_merchant(name="Acme")


CLOSED_FORBIDDEN = {"type": "closed", "code": 4403}


def _first_answer(ws: WebSocketTestSession, payload: dict[str, str], session_id: str) -> Any:
    """The answer to one subscription; bad credentials close the socket at
    connection_init already (4403: ``CLOSED_FORBIDDEN``)."""
    ws.send_json({"type": "connection_init", "payload": payload})
    try:
        acknowledged = ws.receive_json()
    except WebSocketDisconnect as closed:
        return {"type": "closed", "code": closed.code}
    assert acknowledged == {"type": "connection_ack"}
    ws.send_json(
        {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": SUBSCRIPTION, "variables": {"id": session_id}},
        }
    )
    return ws.receive_json()


def _codes(message: dict[str, Any]) -> list[str]:
    if message["type"] == "error":
        errors = message["payload"]
    else:
        assert message["type"] == "next", message
        errors = message["payload"].get("errors", [])
    return [error["extensions"]["code"] for error in errors]


def _initiated(message: dict[str, Any], session_id: str) -> bool:
    return message == {
        "id": "1",
        "type": "next",
        "payload": {
            "data": {
                "checkoutSessionUpdated": {"id": session_id, "checkoutSessionStatus": "INITIATED"}
            }
        },
    }


@pytest.mark.parametrize("via", ["connection_init", "upgrade-request"])
def test_a_merchant_id_alone_subscribes_only_while_trusted(client_for: ClientFor, via: str) -> None:
    """connection_init's merchantId, or X-Merchant-Id on the upgrade request, and nothing else."""
    answers: dict[MerchantHeader, tuple[str, Any]] = {}
    for mode in MerchantHeader:
        with client_for(mode) as client:
            merchant_id, session = _merchant_and_session(client)
            payload = {"merchantId": merchant_id} if via == "connection_init" else {}
            headers = {"X-Merchant-Id": merchant_id} if via == "upgrade-request" else {}
            with client.websocket_connect("/graphql", PROTOCOL, headers=headers) as ws:
                answers[mode] = session["id"], _first_answer(ws, payload, session["id"])

    session_id, trusted = answers[MerchantHeader.TRUSTED]
    assert _initiated(trusted, session_id)
    assert answers[MerchantHeader.API_KEY_ONLY][1] == CLOSED_FORBIDDEN


@pytest.mark.parametrize("via", ["connection_init", "upgrade-request"])
def test_the_sessions_hcp_token_subscribes_in_api_key_only_mode(
    client_for: ClientFor, via: str
) -> None:
    with client_for(MerchantHeader.API_KEY_ONLY) as client:
        merchant_id, session = _merchant_and_session(client)
        if via == "connection_init":
            headers: dict[str, str] = {}
            payload = {"hcpToken": session["hcpToken"]}
        else:
            headers = {
                "X-Merchant-Id": merchant_id,
                "Authorization": f"Bearer {session['hcpToken']}",
            }
            payload = {}
        with client.websocket_connect("/graphql", PROTOCOL, headers=headers) as ws:
            message = _first_answer(ws, payload, session["id"])

    assert _initiated(message, session["id"])


@pytest.mark.parametrize("mid", [["a list"], 42, {"id": "x"}], ids=["list", "number", "object"])
def test_a_signed_mid_of_the_wrong_type_is_refused_not_a_crash(
    client_for: ClientFor, clock: Clock, mid: object
) -> None:
    with client_for(MerchantHeader.TRUSTED) as client:
        _, session = _merchant_and_session(client)
        claims = {
            "sub": session["id"],
            "mid": mid,
            "aud": "gql-checkout:hcp",
            "exp": int(clock.now.timestamp()) + 600,
        }
        kid = hashlib.sha256(TEST_SECRET.encode()).hexdigest()[:12]
        token = jwt.encode(claims, TEST_SECRET, algorithm="HS256", headers={"kid": kid})
        with client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
            message = _first_answer(ws, {"hcpToken": token}, session["id"])

    assert message == CLOSED_FORBIDDEN
