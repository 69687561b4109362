"""Section 8's "exactly one of concurrent attempts succeeds", through a real uvicorn process.

Each race fires RACERS requests at once over already-open connections (so they reach the
server together), with one and with several workers (processes that share only the
database), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from gql_checkout.storage.tables import CheckoutSessionRow
from testkit.documents import (
    CANCEL_MUTATION,
    CARD,
    COMPLETE_MUTATION,
    CREATE_MUTATION,
    FAIL_MUTATION,
    create_session,
    error_codes,
    graphql,
)
from testkit.merchants import MerchantCredentials
from testkit.server import LiveServer, running_server

pytestmark = [pytest.mark.server, pytest.mark.anyio]

RACERS = 24
REQUEST_TIMEOUT_S = 30.0

SESSION_QUERY = """
query Session($id: ID!) {
  checkoutSession(id: $id) {
    id checkoutSessionStatus failureReason paymentMethod { type brand last4 }
    childSession { id checkoutSessionStatus }
  }
}
"""

CREATE_CHILD_MUTATION = """
mutation CreateChild($input: CreateCheckoutSessionInput!) {
  createCheckoutSession(input: $input) { id checkoutSessionStatus }
}
"""


@pytest.fixture(params=[1, 3], ids=["1-worker", "3-workers"])
def server(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> Iterator[LiveServer]:
    with running_server(tmp_path, database_url=database_url, workers=request.param) as live:
        yield live


@pytest.fixture
def racer(server: LiveServer) -> MerchantCredentials:
    return server.create_merchant("Racer")


@pytest.fixture
async def live_client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=RACERS, max_keepalive_connections=RACERS)
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=REQUEST_TIMEOUT_S, limits=limits
    ) as client:
        yield client


async def _race(
    client: httpx.AsyncClient, requests: list[tuple[str, dict[str, Any]]], api_key: str
) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {api_key}"}
    # Open the connections first, so the racing requests do not queue behind handshakes; and
    # just before, so none has idled into the server's keep-alive timeout when it is reused.
    await asyncio.gather(*(client.get("/v1/checkout-sessions/warm-up") for _ in requests))
    return list(
        await asyncio.gather(
            *(graphql(client, query, variables, headers) for query, variables in requests)
        )
    )


def _split(bodies: list[dict[str, Any]]) -> tuple[list[int], list[dict[str, Any]]]:
    """Indexes of the successful responses, and the failed responses."""
    winners = [index for index, body in enumerate(bodies) if "errors" not in body]
    losers = [body for body in bodies if "errors" in body]
    return winners, losers


def _assert_refused(losers: list[dict[str, Any]]) -> None:
    assert [(body["data"], error_codes(body)) for body in losers] == [
        (None, ["INVALID_STATE_TRANSITION"])
    ] * len(losers)


async def _count_sessions(database_url: str, **where: UUID) -> int:
    """Rows in the database itself: a refused attempt must leave nothing behind."""
    engine = create_async_engine(database_url)
    try:
        table = CheckoutSessionRow.__table__
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        async with engine.connect() as conn:
            return int((await conn.scalar(query)) or 0)
    finally:
        await engine.dispose()


async def test_of_concurrent_completions_exactly_one_wins(
    live_client: httpx.AsyncClient, racer: MerchantCredentials
) -> None:
    # given
    session = await create_session(live_client, racer.api_key)
    cards = [{"type": "CARD", "brand": "VISA", "last4": f"{index:04d}"} for index in range(RACERS)]

    # when
    bodies = await _race(
        live_client,
        [(COMPLETE_MUTATION, {"id": session["id"], "paymentMethod": card}) for card in cards],
        racer.api_key,
    )

    # then
    winners, losers = _split(bodies)
    assert len(winners) == 1, bodies
    winning_card = cards[winners[0]]
    assert bodies[winners[0]] == {
        "data": {
            "completeCheckoutSession": {
                "id": session["id"],
                "checkoutSessionStatus": "COMPLETED",
                "paymentMethod": winning_card,
            }
        }
    }
    _assert_refused(losers)
    read = await graphql(live_client, SESSION_QUERY, {"id": session["id"]}, racer.read_headers)
    assert read == {
        "data": {
            "checkoutSession": {
                "id": session["id"],
                "checkoutSessionStatus": "COMPLETED",
                "failureReason": None,
                "paymentMethod": winning_card,
                "childSession": None,
            }
        }
    }


async def test_of_concurrent_complete_fail_and_cancel_exactly_one_wins(
    live_client: httpx.AsyncClient, racer: MerchantCredentials
) -> None:
    # given
    session = await create_session(live_client, racer.api_key)
    requests: list[tuple[str, dict[str, Any]]] = []
    for index in range(RACERS):
        match index % 3:
            case 0:
                card = {"type": "CARD", "brand": "VISA", "last4": f"{index:04d}"}
                requests.append((COMPLETE_MUTATION, {"id": session["id"], "paymentMethod": card}))
            case 1:
                requests.append((FAIL_MUTATION, {"id": session["id"], "reason": f"r{index}"}))
            case _:
                requests.append((CANCEL_MUTATION, {"id": session["id"]}))

    # when
    bodies = await _race(live_client, requests, racer.api_key)

    # then
    winners, losers = _split(bodies)
    assert len(winners) == 1, bodies
    _assert_refused(losers)
    winner_query, winner_variables = requests[winners[0]]
    read = await graphql(live_client, SESSION_QUERY, {"id": session["id"]}, racer.read_headers)
    if winner_query is CANCEL_MUTATION:
        assert bodies[winners[0]] == {
            "data": {
                "cancelCheckoutSession": {"id": session["id"], "checkoutSessionStatus": "CANCELED"}
            }
        }
        assert read["data"] == {"checkoutSession": None}
        assert error_codes(read) == ["SESSION_CANCELED"]
    elif winner_query is FAIL_MUTATION:
        assert read == {
            "data": {
                "checkoutSession": {
                    "id": session["id"],
                    "checkoutSessionStatus": "FAILED",
                    "failureReason": winner_variables["reason"],
                    "paymentMethod": None,
                    "childSession": None,
                }
            }
        }
    else:
        assert read == {
            "data": {
                "checkoutSession": {
                    "id": session["id"],
                    "checkoutSessionStatus": "COMPLETED",
                    "failureReason": None,
                    "paymentMethod": winner_variables["paymentMethod"],
                    "childSession": None,
                }
            }
        }


async def test_of_concurrent_child_creations_exactly_one_becomes_the_child(
    live_client: httpx.AsyncClient, racer: MerchantCredentials, server: LiveServer
) -> None:
    # given
    parent = await create_session(live_client, racer.api_key)
    child_input = {"amount": 1000, "currency": "EUR", "parentSessionId": parent["id"]}

    # when
    bodies = await _race(
        live_client, [(CREATE_CHILD_MUTATION, {"input": child_input})] * RACERS, racer.api_key
    )

    # then
    winners, losers = _split(bodies)
    assert len(winners) == 1, bodies
    child = bodies[winners[0]]["data"]["createCheckoutSession"]
    assert child["checkoutSessionStatus"] == "INITIATED"
    _assert_refused(losers)
    read = await graphql(live_client, SESSION_QUERY, {"id": parent["id"]}, racer.read_headers)
    assert read == {
        "data": {
            "checkoutSession": {
                "id": parent["id"],
                "checkoutSessionStatus": "INITIATED",
                "failureReason": None,
                "paymentMethod": None,
                "childSession": {"id": child["id"], "checkoutSessionStatus": "INITIATED"},
            }
        }
    }
    assert await _count_sessions(server.database_url, parent_id=UUID(parent["id"])) == 1


async def test_concurrent_creations_with_one_idempotency_key_return_one_session(
    live_client: httpx.AsyncClient, racer: MerchantCredentials, server: LiveServer
) -> None:
    # given
    variables = {
        "input": {
            "amount": 2500,
            "currency": "EUR",
            "merchantReference": "order-42",
            "idempotencyKey": "race-key-1",
        }
    }

    # when
    bodies = await _race(live_client, [(CREATE_MUTATION, variables)] * RACERS, racer.api_key)

    # then
    assert "errors" not in bodies[0], bodies[0]
    assert bodies == [bodies[0]] * RACERS
    created = bodies[0]["data"]["createCheckoutSession"]
    assert (created["amount"], created["currency"], created["merchantReference"]) == (
        2500,
        "EUR",
        "order-42",
    )
    assert await _count_sessions(server.database_url, merchant_id=UUID(racer.merchant_id)) == 1


EXPIRE_MUTATION = """
mutation Expire($id: ID!) { expireCheckoutSession(id: $id) { id checkoutSessionStatus isExpired } }
"""


async def test_of_concurrent_expiries_and_completions_exactly_one_wins(
    live_client: httpx.AsyncClient, racer: MerchantCredentials
) -> None:
    # given: a parent with an open child; half the racers expire the parent, half complete
    # the child (which would complete the parent)
    parent = await create_session(live_client, racer.api_key)
    child = await create_session(live_client, racer.api_key, parentSessionId=parent["id"])
    requests = [
        (EXPIRE_MUTATION, {"id": parent["id"]})
        if index % 2
        else (COMPLETE_MUTATION, {"id": child["id"], "paymentMethod": CARD})
        for index in range(RACERS)
    ]

    # when
    bodies = await _race(live_client, requests, racer.api_key)

    # then: one winner; the parent is either expired with its child, or completed by it
    winners, losers = _split(bodies)
    assert len(winners) == 1, bodies
    _assert_refused(losers)
    read = await graphql(
        live_client,
        "query($id: ID!) { checkoutSessions(filter: {parentSessionId: $id}) "
        "{ edges { node { checkoutSessionStatus isExpired parentSession "
        "{ checkoutSessionStatus isExpired } } } } }",
        {"id": parent["id"]},
        racer.write_headers,
    )
    (edge,) = read["data"]["checkoutSessions"]["edges"]
    if requests[winners[0]][0] is EXPIRE_MUTATION:
        expected = {"checkoutSessionStatus": "INITIATED", "isExpired": True}
    else:
        expected = {"checkoutSessionStatus": "COMPLETED", "isExpired": False}
    assert edge["node"] == {**expected, "parentSession": expected}
