"""Automatic persisted queries as Apollo's PersistedQueryLink speaks them (POST)."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from gql_checkout.graphql.persisted import MAX_PERSISTED
from testkit.documents import create_session
from testkit.merchants import MerchantCredentials

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

POLL = "query Poll($id: ID!) { checkoutSession(id: $id) { id checkoutSessionStatus } }"
NOT_FOUND = {
    "errors": [
        {"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
    ]
}


def _hashed(query: str) -> dict[str, object]:
    digest = hashlib.sha256(query.encode()).hexdigest()
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def test_a_hash_is_registered_by_its_query_then_runs_alone(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    variables = {"id": session["id"]}
    hash_only = {"variables": variables, "extensions": _hashed(POLL)}
    expected = {
        "data": {"checkoutSession": {"id": session["id"], "checkoutSessionStatus": "INITIATED"}}
    }

    unknown = await client.post("/graphql", json=hash_only, headers=merchant.read_headers)
    registered = await client.post(
        "/graphql", json={**hash_only, "query": POLL}, headers=merchant.read_headers
    )
    known = await client.post("/graphql", json=hash_only, headers=merchant.read_headers)

    assert (unknown.status_code, unknown.json()) == (200, NOT_FOUND)
    assert (registered.status_code, registered.json()) == (200, expected)
    assert (known.status_code, known.json()) == (200, expected)


async def test_a_hash_that_is_not_the_querys_is_refused_and_not_registered(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    wrong = _hashed("{ __typename }")

    refused = await client.post(
        "/graphql", json={"query": POLL, "extensions": wrong}, headers=merchant.read_headers
    )
    after = await client.post("/graphql", json={"extensions": wrong}, headers=merchant.read_headers)

    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "VALIDATION_ERROR"
    assert after.json() == NOT_FOUND


@pytest.mark.parametrize(
    "persisted",
    [{"version": 2, "sha256Hash": "0" * 64}, {"version": 1, "sha256Hash": "xyz"}, "hash"],
    ids=["version", "not-hex", "not-an-object"],
)
async def test_a_malformed_extension_is_a_validation_error(
    client: httpx.AsyncClient, merchant: MerchantCredentials, persisted: object
) -> None:
    response = await client.post(
        "/graphql",
        json={"extensions": {"persistedQuery": persisted}},
        headers=merchant.read_headers,
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "VALIDATION_ERROR"


async def test_the_store_is_bounded_and_keeps_no_refused_document(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    oversized = "#" + "x" * 70_000 + "\n{ __typename }"
    first = "{ __typename }"
    await client.post("/graphql", json={"query": first, "extensions": _hashed(first)})
    await client.post("/graphql", json={"query": oversized, "extensions": _hashed(oversized)})
    for number in range(MAX_PERSISTED):
        query = f"# {number}\n{{ __typename }}"
        await client.post("/graphql", json={"query": query, "extensions": _hashed(query)})

    evicted = await client.post("/graphql", json={"extensions": _hashed(first)})
    never = await client.post("/graphql", json={"extensions": _hashed(oversized)})

    assert evicted.json() == NOT_FOUND
    assert never.json() == NOT_FOUND


async def test_an_unknown_hash_is_200_for_graphql_response_json_too(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    # Apollo Client 4 asks for application/graphql-response+json; the protocol says 200.
    headers = {"Accept": "application/graphql-response+json", **merchant.read_headers}

    response = await client.post("/graphql", json={"extensions": _hashed(POLL)}, headers=headers)

    assert (response.status_code, response.json()) == (200, NOT_FOUND)
