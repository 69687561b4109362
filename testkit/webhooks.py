"""GraphQL documents and helpers for webhooks, shared by tests and the benchmark."""

from __future__ import annotations

from typing import Any

import httpx

from testkit.documents import graphql

CREATE_ENDPOINT = """
mutation CreateEndpoint($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) {
    endpoint { id url events description enabled createdAt }
    secret
  }
}
"""

UPDATE_ENDPOINT = """
mutation UpdateEndpoint($id: ID!, $input: UpdateWebhookEndpointInput!) {
  updateWebhookEndpoint(id: $id, input: $input) { id url events description enabled }
}
"""

DELETE_ENDPOINT = """
mutation DeleteEndpoint($id: ID!) { deleteWebhookEndpoint(id: $id) }
"""

ROTATE_SECRET = """
mutation Rotate($id: ID!) {
  rotateWebhookEndpointSecret(id: $id) { endpoint { id } secret }
}
"""

REDELIVER = """
mutation Redeliver($id: ID!, $endpointId: ID!) {
  redeliverWebhookEvent(id: $id, endpointId: $endpointId) {
    endpoint { id } status attempts lastResponseStatus nextAttemptAt
  }
}
"""

ENDPOINTS = """
query Endpoints { webhookEndpoints { id url events description enabled } }
"""

EVENTS = """
query Events($first: Int, $after: String, $filter: WebhookEventFilter) {
  webhookEvents(first: $first, after: $after, filter: $filter) {
    edges {
      cursor
      node {
        id type createdAt checkoutSessionId
        deliveries { endpoint { id } status attempts lastResponseStatus nextAttemptAt }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

ALL_EVENTS = [
    "CHECKOUT_SESSION_COMPLETED",
    "CHECKOUT_SESSION_FAILED",
    "CHECKOUT_SESSION_CANCELED",
    "CHECKOUT_SESSION_EXPIRED",
]


async def create_endpoint(
    client: httpx.AsyncClient, api_key: str, url: str, events: list[str] | None = None
) -> tuple[str, str]:
    """(endpoint id, secret) of a new endpoint for every event type (or ``events``)."""
    body = await graphql(
        client,
        CREATE_ENDPOINT,
        {"input": {"url": url, "events": events or ALL_EVENTS}},
        {"Authorization": f"Bearer {api_key}"},
    )
    assert "errors" not in body, body
    created = body["data"]["createWebhookEndpoint"]
    return created["endpoint"]["id"], created["secret"]


async def events_of(
    client: httpx.AsyncClient, api_key: str, **variables: Any
) -> list[dict[str, Any]]:
    body = await graphql(client, EVENTS, variables, {"Authorization": f"Bearer {api_key}"})
    assert "errors" not in body, body
    return [edge["node"] for edge in body["data"]["webhookEvents"]["edges"]]
