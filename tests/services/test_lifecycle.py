"""Section 8 of the contract: transitions, expiry, child sessions, propagation, idempotency."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.settings import Settings
from testkit.clock import Clock
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
from tests.conftest import StatementCounter

pytestmark = pytest.mark.anyio

SESSION_QUERY = """
query Session($id: ID!) {
  checkoutSession(id: $id) {
    id checkoutSessionStatus isExpired expiresAt
    paymentMethod { type brand last4 }
    childSession { id checkoutSessionStatus }
    parentSession { id checkoutSessionStatus }
  }
}
"""


async def _status(client: httpx.AsyncClient, merchant: MerchantCredentials, session_id: str) -> Any:
    """The stored state, read without the read rules (a nested read returns any state)."""
    body = await graphql(client, SESSION_QUERY, {"id": session_id}, merchant.read_headers)
    return body


async def _mutate(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    document: str,
    **variables: Any,
) -> dict[str, Any]:
    return await graphql(client, document, variables, merchant.write_headers)


async def _cancel(client: httpx.AsyncClient, m: MerchantCredentials, sid: str) -> dict[str, Any]:
    return await _mutate(client, m, CANCEL_MUTATION, id=sid)


async def _complete(client: httpx.AsyncClient, m: MerchantCredentials, sid: str) -> dict[str, Any]:
    return await _mutate(client, m, COMPLETE_MUTATION, id=sid, paymentMethod=CARD)


async def _fail(client: httpx.AsyncClient, m: MerchantCredentials, sid: str) -> dict[str, Any]:
    return await _mutate(client, m, FAIL_MUTATION, id=sid, reason="card declined")


CLOSERS = {"cancel": _cancel, "complete": _complete, "fail": _fail}
CLOSED_STATUS = {"cancel": "CANCELED", "complete": "COMPLETED", "fail": "FAILED"}


@pytest.mark.parametrize("action", CLOSERS)
async def test_an_open_session_closes_once(
    client: httpx.AsyncClient, merchant: MerchantCredentials, action: str
) -> None:
    session = await create_session(client, merchant.api_key)

    first = await CLOSERS[action](client, merchant, session["id"])
    second = await CLOSERS[action](client, merchant, session["id"])

    assert "errors" not in first
    assert next(iter(first["data"].values()))["checkoutSessionStatus"] == CLOSED_STATUS[action]
    assert error_codes(second) == ["INVALID_STATE_TRANSITION"]


@pytest.mark.parametrize("first_action", CLOSERS)
@pytest.mark.parametrize("second_action", CLOSERS)
async def test_terminal_states_never_change(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    first_action: str,
    second_action: str,
) -> None:
    session = await create_session(client, merchant.api_key)
    await CLOSERS[first_action](client, merchant, session["id"])

    refused = await CLOSERS[second_action](client, merchant, session["id"])

    assert error_codes(refused) == ["INVALID_STATE_TRANSITION"]
    assert refused["data"] is None
    stored = await _stored_status(client, merchant, session["id"])
    assert stored == CLOSED_STATUS[first_action]


async def _stored_status(client: httpx.AsyncClient, m: MerchantCredentials, sid: str) -> str:
    # A canceled root answers 410, so read it as the nested parent/child of nothing: use REST
    # for non-canceled and the error code for canceled.
    response = await client.get(f"/v1/checkout-sessions/{sid}", headers=m.read_headers)
    if response.status_code == 410:
        return "CANCELED"
    assert response.status_code == 200, response.text
    status: str = response.json()["data"]["checkoutSession"]["checkoutSessionStatus"]
    return status


@pytest.mark.parametrize("action", CLOSERS)
async def test_an_expired_session_refuses_every_transition(
    client: httpx.AsyncClient, merchant: MerchantCredentials, clock: Clock, action: str
) -> None:
    session = await create_session(client, merchant.api_key, expiresInSeconds=60)
    clock.advance(seconds=60)

    refused = await CLOSERS[action](client, merchant, session["id"])

    assert error_codes(refused) == ["INVALID_STATE_TRANSITION"]
    assert "expired" in refused["errors"][0]["message"]
    response = await client.get(
        f"/v1/checkout-sessions/{session['id']}", headers=merchant.read_headers
    )
    assert response.status_code == 401
    assert response.json()["code"] == "SESSION_EXPIRED"


async def test_expiry_is_exact_to_the_second(
    client: httpx.AsyncClient, merchant: MerchantCredentials, clock: Clock
) -> None:
    session = await create_session(client, merchant.api_key, expiresInSeconds=60)
    assert session["expiresAt"] == "2026-01-01T12:01:00Z"

    clock.advance(seconds=59.999)
    still_open = await _status(client, merchant, session["id"])
    clock.advance(seconds=0.001)
    expired = await _status(client, merchant, session["id"])

    assert still_open["data"]["checkoutSession"]["isExpired"] is False
    assert error_codes(expired) == ["SESSION_EXPIRED"]


async def test_another_merchant_cannot_close_a_session(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    other_merchant: MerchantCredentials,
) -> None:
    session = await create_session(client, merchant.api_key)

    refused = await _cancel(client, other_merchant, session["id"])

    assert error_codes(refused) == ["FORBIDDEN"]
    assert await _stored_status(client, merchant, session["id"]) == "INITIATED"


async def test_mutations_need_an_api_key(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)

    without_key = await graphql(
        client, CANCEL_MUTATION, {"id": session["id"]}, merchant.read_headers
    )
    bad_key = await graphql(
        client, CANCEL_MUTATION, {"id": session["id"]}, {"Authorization": "Bearer gqlc_sk_nope"}
    )

    assert error_codes(without_key) == ["UNAUTHENTICATED"]
    assert error_codes(bad_key) == ["UNAUTHENTICATED"]
    assert await _stored_status(client, merchant, session["id"]) == "INITIATED"


# --- child sessions --------------------------------------------------------------------------


async def test_a_child_is_the_parents_current_child(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    parent = await create_session(client, merchant.api_key)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])

    body = await _status(client, merchant, parent["id"])

    assert body["data"]["checkoutSession"]["childSession"] == {
        "id": child["id"],
        "checkoutSessionStatus": "INITIATED",
    }
    child_body = await _status(client, merchant, child["id"])
    assert child_body["data"]["checkoutSession"]["parentSession"] == {
        "id": parent["id"],
        "checkoutSessionStatus": "INITIATED",
    }


async def test_a_child_never_outlives_its_parent(
    client: httpx.AsyncClient, merchant: MerchantCredentials, clock: Clock
) -> None:
    parent = await create_session(client, merchant.api_key, expiresInSeconds=120)
    clock.advance(seconds=30)
    child = await create_session(
        client, merchant.api_key, parentSessionId=parent["id"], expiresInSeconds=3600
    )

    assert child["expiresAt"] == parent["expiresAt"] == "2026-01-01T12:02:00Z"
    clock.advance(seconds=90)
    assert error_codes(await _status(client, merchant, child["id"])) == ["SESSION_EXPIRED"]
    assert error_codes(await _complete(client, merchant, child["id"])) == [
        "INVALID_STATE_TRANSITION"
    ]


async def test_a_child_of_a_child_is_refused(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    parent = await create_session(client, merchant.api_key)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])

    body = await _create(client, merchant, parentSessionId=child["id"])

    assert error_codes(body) == ["VALIDATION_ERROR"]
    assert body["errors"][0]["extensions"]["errors"][0]["field"] == "parentSessionId"


async def _create(
    client: httpx.AsyncClient, merchant: MerchantCredentials, **input_fields: Any
) -> dict[str, Any]:
    variables = {"input": {"amount": 1000, "currency": "EUR", **input_fields}}
    return await graphql(client, CREATE_MUTATION, variables, merchant.write_headers)


async def test_a_second_child_waits_for_the_first_to_close(
    client: httpx.AsyncClient, merchant: MerchantCredentials, clock: Clock
) -> None:
    parent = await create_session(client, merchant.api_key)
    first = await create_session(
        client, merchant.api_key, parentSessionId=parent["id"], expiresInSeconds=60
    )

    while_open = await _create(client, merchant, parentSessionId=parent["id"])
    await _fail(client, merchant, first["id"])
    after_failure = await _create(client, merchant, parentSessionId=parent["id"])
    clock.advance(seconds=3600)
    after_parent_expired = await _create(client, merchant, parentSessionId=parent["id"])

    assert error_codes(while_open) == ["INVALID_STATE_TRANSITION"]
    assert "errors" not in after_failure
    assert error_codes(after_parent_expired) == ["INVALID_STATE_TRANSITION"]


async def test_an_expired_child_makes_room_for_a_new_one(
    client: httpx.AsyncClient, merchant: MerchantCredentials, clock: Clock
) -> None:
    parent = await create_session(client, merchant.api_key, expiresInSeconds=3600)
    first = await create_session(
        client, merchant.api_key, parentSessionId=parent["id"], expiresInSeconds=60
    )
    clock.advance(seconds=60)

    second = await create_session(client, merchant.api_key, parentSessionId=parent["id"])

    body = await _status(client, merchant, parent["id"])
    assert second["id"] != first["id"]
    assert body["data"]["checkoutSession"]["childSession"]["id"] == second["id"]


@pytest.mark.parametrize("action", ["cancel", "complete", "fail"])
async def test_a_closed_parent_takes_no_child(
    client: httpx.AsyncClient, merchant: MerchantCredentials, action: str
) -> None:
    parent = await create_session(client, merchant.api_key)
    await CLOSERS[action](client, merchant, parent["id"])

    body = await _create(client, merchant, parentSessionId=parent["id"])

    assert error_codes(body) == ["INVALID_STATE_TRANSITION"]


async def test_a_child_of_another_merchants_session_is_forbidden(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    other_merchant: MerchantCredentials,
) -> None:
    parent = await create_session(client, merchant.api_key)

    body = await _create(client, other_merchant, parentSessionId=parent["id"])

    assert error_codes(body) == ["FORBIDDEN"]


async def test_a_completed_child_completes_its_parent_with_its_payment_method(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    parent = await create_session(client, merchant.api_key)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])

    await _complete(client, merchant, child["id"])

    body = await _status(client, merchant, parent["id"])
    assert body["data"]["checkoutSession"]["checkoutSessionStatus"] == "COMPLETED"
    assert body["data"]["checkoutSession"]["paymentMethod"] == CARD
    assert body["data"]["checkoutSession"]["childSession"]["checkoutSessionStatus"] == "COMPLETED"


@pytest.mark.parametrize("action", ["cancel", "fail"])
async def test_a_failed_or_canceled_child_leaves_the_parent_open(
    client: httpx.AsyncClient, merchant: MerchantCredentials, action: str
) -> None:
    parent = await create_session(client, merchant.api_key)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])

    await CLOSERS[action](client, merchant, child["id"])

    body = await _status(client, merchant, parent["id"])
    assert body["data"]["checkoutSession"]["checkoutSessionStatus"] == "INITIATED"
    assert body["data"]["checkoutSession"]["childSession"] == {
        "id": child["id"],
        "checkoutSessionStatus": CLOSED_STATUS[action],
    }


@pytest.mark.parametrize("action", ["cancel", "complete"])
async def test_a_closed_parent_cancels_its_open_child(
    client: httpx.AsyncClient, merchant: MerchantCredentials, action: str
) -> None:
    parent = await create_session(client, merchant.api_key)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])

    await CLOSERS[action](client, merchant, parent["id"])

    assert await _stored_status(client, merchant, child["id"]) == "CANCELED"


async def test_a_cancel_reads_back_only_what_its_update_did_not_return(
    client: httpx.AsyncClient, merchant: MerchantCredentials, statements: StatementCounter
) -> None:
    # given: a session that never had a child, and a parent with an open one
    lone = await create_session(client, merchant.api_key)
    parent = await create_session(client, merchant.api_key)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])
    sent: dict[str, list[str]] = {}

    # when: each is canceled
    for name, session in (("lone", lone), ("parent", parent)):
        statements.reset()
        body = await _cancel(client, merchant, session["id"])
        assert body["data"]["cancelCheckoutSession"]["id"] == session["id"]
        sent[name] = [_kind(statement) for statement in statements.statements]

    # then: after the API key's SELECT, the lone session is its UPDATE (which returns it
    # as it now is), its event and the merchant's endpoints; the parent's child is
    # canceled and read back with it for the events (the REST object shows the child)
    # (and on PostgreSQL, the bus's NOTIFY of each session changed)
    notify = ["NOTIFY"] if "NOTIFY" in sent["lone"] else []
    assert sent["lone"] == ["SELECT", "UPDATE", "INSERT", "SELECT", *notify]
    assert sent["parent"] == [
        *["SELECT", "UPDATE", "UPDATE", "SELECT", "INSERT", "SELECT"],
        *notify * 2,
    ]
    assert await _stored_status(client, merchant, child["id"]) == "CANCELED"


def _kind(statement: str) -> str:
    """A statement's verb (NOTIFY for ``SELECT pg_notify``)."""
    return "NOTIFY" if "pg_notify" in statement else statement.split(None, 1)[0]


async def test_a_failed_parent_leaves_its_child_alone(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    parent = await create_session(client, merchant.api_key)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])

    await _fail(client, merchant, parent["id"])

    assert await _stored_status(client, merchant, child["id"]) == "INITIATED"


async def test_a_child_of_a_failed_parent_cannot_be_paid(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    """Found by tests/services/test_state_machine.py: the child paid, the checkout said FAILED."""
    parent = await create_session(client, merchant.api_key)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])
    await _fail(client, merchant, parent["id"])

    body = await _complete(client, merchant, child["id"])

    assert error_codes(body) == ["INVALID_STATE_TRANSITION"]
    assert await _stored_status(client, merchant, child["id"]) == "INITIATED"
    assert await _stored_status(client, merchant, parent["id"]) == "FAILED"


@pytest.mark.parametrize("action", ["cancel", "fail"])
async def test_a_child_of_a_failed_parent_can_still_be_closed(
    client: httpx.AsyncClient, merchant: MerchantCredentials, action: str
) -> None:
    parent = await create_session(client, merchant.api_key)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])
    await _fail(client, merchant, parent["id"])

    body = await CLOSERS[action](client, merchant, child["id"])

    assert "errors" not in body, body
    assert await _stored_status(client, merchant, child["id"]) == CLOSED_STATUS[action]


# --- idempotency -----------------------------------------------------------------------------


async def test_the_same_key_and_input_return_the_same_session(
    client: httpx.AsyncClient, merchant: MerchantCredentials, clock: Clock
) -> None:
    first = await create_session(client, merchant.api_key, idempotencyKey="order-1")
    clock.advance(seconds=5)
    # Defaults are applied before comparing: 3600 spelled out is the same input.
    second = await create_session(
        client, merchant.api_key, idempotencyKey="order-1", expiresInSeconds=3600
    )

    assert second == first


async def test_the_same_key_with_another_input_is_refused(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    await create_session(client, merchant.api_key, idempotencyKey="order-1")

    body = await _create(client, merchant, idempotencyKey="order-1", amount=2000)

    assert error_codes(body) == ["IDEMPOTENCY_KEY_REUSED"]


async def test_idempotency_keys_survive_a_restart(
    app: Starlette, settings: Settings, clock: Clock, merchant: MerchantCredentials
) -> None:
    async with _client(app) as client:
        first = await create_session(client, merchant.api_key, idempotencyKey="order-1")
    await app.state.container.stop()

    restarted = create_app(settings, clock=clock)
    try:
        async with _client(restarted) as client:
            second = await create_session(client, merchant.api_key, idempotencyKey="order-1")
    finally:
        await restarted.state.container.stop()

    assert second["id"] == first["id"]


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_idempotency_keys_belong_to_one_merchant(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    other_merchant: MerchantCredentials,
) -> None:
    mine = await create_session(client, merchant.api_key, idempotencyKey="order-1")
    theirs = await create_session(client, other_merchant.api_key, idempotencyKey="order-1")

    assert mine["id"] != theirs["id"]


async def test_a_parent_completed_by_a_child_cancels_its_expired_children(
    client: httpx.AsyncClient, merchant: MerchantCredentials, clock: Clock
) -> None:
    parent = await create_session(client, merchant.api_key)
    expired = await create_session(
        client, merchant.api_key, parentSessionId=parent["id"], expiresInSeconds=60
    )
    clock.advance(seconds=61)
    current = await create_session(client, merchant.api_key, parentSessionId=parent["id"])

    await _complete(client, merchant, current["id"])

    assert await _stored_status(client, merchant, parent["id"]) == "COMPLETED"
    assert await _stored_status(client, merchant, expired["id"]) == "CANCELED"


async def test_a_child_completing_while_its_parent_closes_has_one_winner(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    # On PostgreSQL the two lock parent and child; in opposite orders they would deadlock.
    for _ in range(15):
        parent = await create_session(client, merchant.api_key)
        child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])

        completed, canceled = await asyncio.gather(
            _complete(client, merchant, child["id"]), _cancel(client, merchant, parent["id"])
        )

        codes = sorted(error_codes(completed) + error_codes(canceled))
        assert codes == ["INVALID_STATE_TRANSITION"], (completed, canceled)
        parent_status = await _stored_status(client, merchant, parent["id"])
        child_status = await _stored_status(client, merchant, child["id"])
        assert (parent_status, child_status) in {
            ("COMPLETED", "COMPLETED"),  # the child won and completed its parent
            ("CANCELED", "CANCELED"),  # the parent won and canceled its child
        }
