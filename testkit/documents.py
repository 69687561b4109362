"""GraphQL documents and small request helpers shared by the tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from testkit.clock import Clock
    from testkit.merchants import MerchantCredentials

CREATE_MUTATION = """
mutation Create($input: CreateCheckoutSessionInput!) {
  createCheckoutSession(input: $input) {
    id checkoutSessionStatus isExpired createdAt expiresAt amount currency
    merchantReference hcpToken
  }
}
"""

CANCEL_MUTATION = """
mutation Cancel($id: ID!) {
  cancelCheckoutSession(id: $id) { id checkoutSessionStatus }
}
"""

COMPLETE_MUTATION = """
mutation Complete($id: ID!, $paymentMethod: PaymentMethodInput!) {
  completeCheckoutSession(id: $id, paymentMethod: $paymentMethod) {
    id checkoutSessionStatus paymentMethod { type brand last4 }
  }
}
"""

FAIL_MUTATION = """
mutation Fail($id: ID!, $reason: String) {
  failCheckoutSession(id: $id, reason: $reason) { id checkoutSessionStatus failureReason }
}
"""

CARD = {"type": "CARD", "brand": "VISA", "last4": "4242"}


async def graphql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_session(
    client: httpx.AsyncClient, api_key: str, **input_fields: Any
) -> dict[str, Any]:
    """Creates a session through the public mutation and returns its fields."""
    variables = {"input": {"amount": 1000, "currency": "EUR", **input_fields}}
    body = await graphql(
        client, CREATE_MUTATION, variables, headers={"Authorization": f"Bearer {api_key}"}
    )
    assert "errors" not in body, body
    session: dict[str, Any] = body["data"]["createCheckoutSession"]
    return session


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


async def session_in_state(
    client: httpx.AsyncClient, owner: MerchantCredentials, state: str, clock: Clock
) -> dict[str, Any]:
    """A 60-second session of ``owner``, left "open", "canceled" or "expired"."""
    session = await create_session(client, owner.api_key, expiresInSeconds=60)
    if state == "canceled":
        await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, owner.write_headers)
    if state == "expired":
        clock.advance(seconds=60)
    return session


def create_session_now(client: httpx.Client, api_key: str, **input_fields: Any) -> dict[str, Any]:
    """``create_session`` for a blocking client (a real server's tests and benchmarks)."""
    variables = {"input": {"amount": 1000, "currency": "EUR", **input_fields}}
    response = client.post(
        "/graphql",
        json={"query": CREATE_MUTATION, "variables": variables},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    session: dict[str, Any] = body["data"]["createCheckoutSession"]
    return session
