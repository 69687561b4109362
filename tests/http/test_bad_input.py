"""Inputs the fuzzers found that once answered 500: each now gets a coded 4xx."""

from __future__ import annotations

import httpx
import pytest

from testkit.documents import create_session
from testkit.merchants import MerchantCredentials

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"null", "The request body must be a JSON object, or a list of them for a batch."),
        (b"[1, 2]", "The request body must be a JSON object, or a list of them for a batch."),
        (b"\x80", "Unable to parse request body as JSON"),
        (
            b'{"query": "subscription { checkoutSessionUpdated(id: \\"x\\") { id } }"}',
            "subscriptions are not allowed when using POST",
        ),
        (b'[{"query": [null]}]', '"query" must be a string.'),
        (b'[{"query": "{ __typename }", "variables": [1]}]', '"variables" must be an object.'),
    ],
    ids=[
        "null",
        "list-of-numbers",
        "not-utf8",
        "subscription-over-post",
        "batched-query-not-a-string",
        "batched-variables-not-an-object",
    ],
)
async def test_bodies_that_once_crashed(
    client: httpx.AsyncClient, body: bytes, message: str
) -> None:
    response = await client.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"message": message, "extensions": {"code": "VALIDATION_ERROR"}}]
    }


async def test_an_empty_selection_set_fails_validation(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": '{ checkoutSession(id: "x") { } }'},
        headers=merchant.read_headers,
    )

    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": "Selection sets must not be empty.",
                "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
            }
        ],
    }


async def test_an_id_with_a_trailing_newline_is_not_a_uuid(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)

    rest = await client.get(
        f"/v1/checkout-sessions/{session['id']}%0A", headers=merchant.read_headers
    )
    graphql = await client.post(
        "/graphql",
        json={
            "query": "query($id: ID!) { checkoutSession(id: $id) { id } }",
            "variables": {"id": session["id"] + "\n"},
        },
        headers=merchant.read_headers,
    )

    assert rest.status_code == 400
    assert rest.json()["errors"] == [{"field": "checkoutSessionId", "message": "must be a UUID"}]
    assert graphql.json()["errors"][0]["extensions"]["code"] == "VALIDATION_ERROR"


async def test_a_request_id_with_a_newline_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-Id": "abc\n"})

    assert response.headers["X-Request-Id"] != "abc\n"
    assert len(response.headers["X-Request-Id"]) == 32
