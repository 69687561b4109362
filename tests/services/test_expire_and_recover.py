"""Section 10 of the contract: ``expireCheckoutSession`` and ``recoverCheckoutSession``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from testkit.clock import Clock
from testkit.documents import (
    CANCEL_MUTATION,
    CARD,
    COMPLETE_MUTATION,
    create_session,
    error_codes,
    graphql,
)
from testkit.merchants import MerchantCredentials
from testkit.webhooks import events_of

pytestmark = pytest.mark.anyio

EXPIRE_MUTATION = """
mutation Expire($id: ID!) {
  expireCheckoutSession(id: $id) { id checkoutSessionStatus isExpired expiresAt hcpToken }
}
"""

RECOVER_MUTATION = """
mutation Recover($id: ID!, $key: String) {
  recoverCheckoutSession(id: $id, idempotencyKey: $key) {
    id checkoutSessionStatus isExpired createdAt expiresAt amount currency merchantReference
    metadata recoveredFrom { id } parentSession { id }
  }
}
"""

SESSION_QUERY = """
query Session($id: ID!) {
  checkoutSession(id: $id) { id isExpired expiresAt childSession { id isExpired expiresAt } }
}
"""


async def _expire(
    client: httpx.AsyncClient, owner: MerchantCredentials, session_id: str
) -> dict[str, Any]:
    return await graphql(client, EXPIRE_MUTATION, {"id": session_id}, owner.write_headers)


async def _recover(
    client: httpx.AsyncClient, owner: MerchantCredentials, session_id: str, key: str | None = None
) -> dict[str, Any]:
    return await graphql(
        client, RECOVER_MUTATION, {"id": session_id, "key": key}, owner.write_headers
    )


# --- expire -------------------------------------------------------------------------------


async def test_expiring_an_open_session_ends_it_now(
    client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    clock.advance(minutes=5)

    body = await _expire(client, merchant, session["id"])

    expired = body["data"]["expireCheckoutSession"]
    assert expired["checkoutSessionStatus"] == "INITIATED"
    assert expired["isExpired"] is True
    assert expired["expiresAt"] == "2026-01-01T12:05:00Z"
    response = await client.get(
        f"/v1/checkout-sessions/{session['id']}", headers=merchant.read_headers
    )
    assert response.json()["code"] == "SESSION_EXPIRED"
    # The hcpToken of the session stops working at once.
    auth = await client.get(
        "/v1/hcp/auth", headers={"Authorization": f"Bearer {session['hcpToken']}"}
    )
    assert auth.status_code == 401
    assert expired["hcpToken"] != session["hcpToken"]  # signed for the new expiry


async def test_expiring_a_parent_expires_its_open_child_with_it(
    client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials
) -> None:
    parent = await create_session(client, merchant.api_key)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])
    clock.advance(seconds=30)

    await _expire(client, merchant, parent["id"])

    listed = await graphql(
        client,
        "query { checkoutSessions { edges { node { id isExpired expiresAt } } } }",
        {},
        merchant.write_headers,
    )
    nodes = {
        edge["node"]["id"]: edge["node"] for edge in listed["data"]["checkoutSessions"]["edges"]
    }
    assert nodes[parent["id"]] == {
        "id": parent["id"],
        "isExpired": True,
        "expiresAt": "2026-01-01T12:00:30Z",
    }
    assert nodes[child["id"]] == {
        "id": child["id"],
        "isExpired": True,
        "expiresAt": "2026-01-01T12:00:30Z",
    }


async def test_expiring_a_child_leaves_its_parent_open_for_another_attempt(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    parent = await create_session(client, merchant.api_key)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])

    await _expire(client, merchant, child["id"])
    again = await create_session(client, merchant.api_key, parentSessionId=parent["id"])

    body = await graphql(client, SESSION_QUERY, {"id": parent["id"]}, merchant.read_headers)
    assert body["data"]["checkoutSession"]["isExpired"] is False
    assert body["data"]["checkoutSession"]["childSession"]["id"] == again["id"]


@pytest.mark.parametrize("state", ["expired", "canceled", "completed"])
async def test_only_an_open_session_can_be_expired(
    client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials, state: str
) -> None:
    session = await create_session(client, merchant.api_key, expiresInSeconds=60)
    if state == "expired":
        clock.advance(seconds=60)
    elif state == "canceled":
        await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, merchant.write_headers)
    else:
        variables = {"id": session["id"], "paymentMethod": CARD}
        await graphql(client, COMPLETE_MUTATION, variables, merchant.write_headers)

    body = await _expire(client, merchant, session["id"])

    assert error_codes(body) == ["INVALID_STATE_TRANSITION"]
    assert body["data"] is None


async def test_expire_needs_the_owners_api_key(
    client: httpx.AsyncClient, merchant: MerchantCredentials, other_merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)

    by_header = await graphql(client, EXPIRE_MUTATION, {"id": session["id"]}, merchant.read_headers)
    by_other = await _expire(client, other_merchant, session["id"])
    unknown = await _expire(client, merchant, "6f1c2a7e-0000-4000-8000-000000000000")

    assert error_codes(by_header) == ["UNAUTHENTICATED"]
    assert error_codes(by_other) == ["FORBIDDEN"]
    assert error_codes(unknown) == ["SESSION_NOT_FOUND"]


# --- recover ------------------------------------------------------------------------------


async def test_recovering_an_expired_session_opens_a_copy_of_it(
    client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials
) -> None:
    source = await create_session(
        client,
        merchant.api_key,
        amount=4990,
        currency="USD",
        merchantReference="A-1001",
        expiresInSeconds=600,
        metadata={"cart": "c-7"},
    )
    clock.advance(minutes=20)

    body = await _recover(client, merchant, source["id"])

    recovered = body["data"]["recoverCheckoutSession"]
    assert recovered == {
        "id": recovered["id"],
        "checkoutSessionStatus": "INITIATED",
        "isExpired": False,
        "createdAt": "2026-01-01T12:20:00Z",
        "expiresAt": "2026-01-01T13:20:00Z",  # the default lifetime, not the source's
        "amount": 4990,
        "currency": "USD",
        "merchantReference": "A-1001",
        "metadata": {"cart": "c-7"},
        "recoveredFrom": {"id": source["id"]},
        "parentSession": None,
    }
    assert recovered["id"] != source["id"]


@pytest.mark.parametrize("state", ["open", "canceled", "completed"])
async def test_only_an_expired_session_can_be_recovered(
    client: httpx.AsyncClient, merchant: MerchantCredentials, state: str
) -> None:
    session = await create_session(client, merchant.api_key)
    if state == "canceled":
        await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, merchant.write_headers)
    elif state == "completed":
        variables = {"id": session["id"], "paymentMethod": CARD}
        await graphql(client, COMPLETE_MUTATION, variables, merchant.write_headers)

    body = await _recover(client, merchant, session["id"])

    assert error_codes(body) == ["INVALID_STATE_TRANSITION"]


async def test_a_manually_expired_session_can_be_recovered(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    await _expire(client, merchant, session["id"])

    body = await _recover(client, merchant, session["id"])

    assert body["data"]["recoverCheckoutSession"]["recoveredFrom"] == {"id": session["id"]}


async def test_the_idempotency_key_answers_a_retry_with_the_same_session(
    client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials
) -> None:
    source = await create_session(client, merchant.api_key, expiresInSeconds=60)
    other = await create_session(client, merchant.api_key, expiresInSeconds=60)
    clock.advance(seconds=60)

    first = await _recover(client, merchant, source["id"], key="recover-1")
    clock.advance(seconds=5)
    retry = await _recover(client, merchant, source["id"], key="recover-1")
    reused = await _recover(client, merchant, other["id"], key="recover-1")
    create_with_it = await graphql(
        client,
        "mutation { createCheckoutSession(input: "
        '{amount: 1000, currency: "EUR", idempotencyKey: "recover-1"}) { id } }',
        {},
        merchant.write_headers,
    )

    assert retry == first
    assert error_codes(reused) == ["IDEMPOTENCY_KEY_REUSED"]
    assert error_codes(create_with_it) == ["IDEMPOTENCY_KEY_REUSED"]


async def test_a_recovered_session_can_be_recovered_again(
    client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials
) -> None:
    source = await create_session(client, merchant.api_key, expiresInSeconds=60)
    clock.advance(seconds=60)

    # The source again (each recovery is a new session; a retry-safe caller sends a key) ...
    first = (await _recover(client, merchant, source["id"]))["data"]["recoverCheckoutSession"]
    second = (await _recover(client, merchant, source["id"]))["data"]["recoverCheckoutSession"]
    # ... and the recovery itself, once it has expired in turn.
    clock.advance(hours=1)
    third = (await _recover(client, merchant, first["id"]))["data"]["recoverCheckoutSession"]

    assert first["id"] != second["id"]
    assert second["recoveredFrom"] == {"id": source["id"]}
    assert third["recoveredFrom"] == {"id": first["id"]}


async def test_a_childs_recovery_is_a_child_of_the_same_open_parent(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    parent = await create_session(client, merchant.api_key)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])
    await _expire(client, merchant, child["id"])

    recovered = (await _recover(client, merchant, child["id"]))["data"]["recoverCheckoutSession"]

    assert recovered["parentSession"] == {"id": parent["id"]}
    assert recovered["expiresAt"] == parent["expiresAt"]  # never outlives its parent
    body = await graphql(client, SESSION_QUERY, {"id": parent["id"]}, merchant.read_headers)
    assert body["data"]["checkoutSession"]["childSession"]["id"] == recovered["id"]


@pytest.mark.parametrize("parent_state", ["expired", "canceled", "has-open-child"])
async def test_a_childs_recovery_needs_its_parent_open_without_an_open_child(
    client: httpx.AsyncClient, merchant: MerchantCredentials, parent_state: str
) -> None:
    parent = await create_session(client, merchant.api_key)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])
    await _expire(client, merchant, child["id"])
    if parent_state == "expired":
        await _expire(client, merchant, parent["id"])
    elif parent_state == "canceled":
        await graphql(client, CANCEL_MUTATION, {"id": parent["id"]}, merchant.write_headers)
    else:
        await create_session(client, merchant.api_key, parentSessionId=parent["id"])

    body = await _recover(client, merchant, child["id"])

    assert error_codes(body) == ["INVALID_STATE_TRANSITION"]


async def test_recover_needs_the_owners_api_key(
    client: httpx.AsyncClient, merchant: MerchantCredentials, other_merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    await _expire(client, merchant, session["id"])

    by_header = await graphql(
        client, RECOVER_MUTATION, {"id": session["id"]}, merchant.read_headers
    )
    by_other = await _recover(client, other_merchant, session["id"])

    assert error_codes(by_header) == ["UNAUTHENTICATED"]
    assert error_codes(by_other) == ["FORBIDDEN"]


async def test_a_manual_expiry_records_the_expired_events_in_its_transaction(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    # given: a parent with an open child (no dispatcher runs here: no sweep either)
    parent = await create_session(client, merchant.api_key)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])

    # when
    body = await graphql(client, EXPIRE_MUTATION, {"id": parent["id"]}, merchant.write_headers)
    assert "errors" not in body, body

    # then: both expired events are in the log as soon as the expiry is answered
    events = await events_of(client, merchant.api_key)
    assert sorted((e["type"], e["checkoutSessionId"]) for e in events) == sorted(
        [("CHECKOUT_SESSION_EXPIRED", parent["id"]), ("CHECKOUT_SESSION_EXPIRED", child["id"])]
    )
