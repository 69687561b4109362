"""GraphQL over SSE (graphql-sse, distinct connections) on /graphql: for a client that asks
for text/event-stream alone; urql's Accept, which also admits JSON, keeps JSON."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from testkit.documents import CARD, COMPLETE_MUTATION, create_session, create_session_now
from testkit.merchants import MerchantCredentials
from testkit.server import LiveServer

STATUS = "query($id: ID!) { checkoutSession(id: $id) { checkoutSessionStatus } }"
WATCH = "subscription($id: ID!) { checkoutSessionUpdated(id: $id) { checkoutSessionStatus } }"
SSE = {"Accept": "text/event-stream"}


def _events(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        if "event" in fields:
            data = fields.get("data", "").strip()
            events.append((fields["event"].strip(), json.loads(data) if data else None))
    return events


@pytest.mark.anyio
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_query_over_sse_is_one_next_then_complete(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    body = {"query": STATUS, "variables": {"id": session["id"]}}

    streamed = await client.post("/graphql", json=body, headers={**SSE, **merchant.read_headers})
    urql = await client.post(
        "/graphql",
        json=body,
        headers={
            "Accept": "application/graphql-response+json, application/json,"
            " text/event-stream, multipart/mixed",
            **merchant.read_headers,
        },
    )

    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert _events(streamed.text) == [
        ("next", {"data": {"checkoutSession": {"checkoutSessionStatus": "INITIATED"}}}),
        ("complete", None),
    ]
    assert urql.headers["content-type"].startswith("application/graphql-response+json")
    assert urql.json() == {"data": {"checkoutSession": {"checkoutSessionStatus": "INITIATED"}}}


@pytest.mark.server
def test_a_subscription_over_sse_streams_every_change(live_server: LiveServer) -> None:
    merchant = live_server.create_merchant()
    with httpx.Client(base_url=live_server.base_url, timeout=10) as client:
        created = create_session_now(client, merchant.api_key)
        body = {"query": WATCH, "variables": {"id": created["id"]}}
        seen: list[tuple[str, Any]] = []
        with client.stream(
            "POST", "/graphql", json=body, headers={**SSE, **merchant.read_headers}
        ) as stream:
            buffer = ""
            for chunk in stream.iter_text():
                buffer += chunk.replace("\r\n", "\n")
                *blocks, buffer = buffer.split("\n\n")
                for block in blocks:
                    seen += _events(block + "\n\n")
                if len(seen) == 1 and seen[0][0] == "next":
                    client.post(
                        "/graphql",
                        json={
                            "query": COMPLETE_MUTATION,
                            "variables": {"id": created["id"], "paymentMethod": CARD},
                        },
                        headers=merchant.write_headers,
                    )
                if seen and seen[-1][0] == "complete":
                    break

    assert seen == [
        ("next", {"data": {"checkoutSessionUpdated": {"checkoutSessionStatus": "INITIATED"}}}),
        ("next", {"data": {"checkoutSessionUpdated": {"checkoutSessionStatus": "COMPLETED"}}}),
        ("complete", None),
    ]
