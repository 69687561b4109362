"""Hostile documents at the GraphQL edge: each refused or answered cheaply, and clearly.

The limits are graphql/documents.py's (size, tokens, field-merge work) and the operation
choice of graphql/extensions.py. Where time is the bug (a 10 KB document that cost 0.5-0.9 s
to validate), the bounds are generous ones.
"""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from testkit.documents import create_session, error_codes
from testkit.merchants import MerchantCredentials

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

# ~10 KB, well under the 2,000-token limit: 490 pairs of braces around one field each.
REPEATED = '{ checkoutSession(id: "x") { ' + "childSession { id } " * 490 + "} }"
# 2**8 nested repetitions: small as text, exponential for the overlap rule.
NESTED = "id"
for _ in range(8):
    NESTED = ("childSession { " + NESTED + " } ") * 2
NESTED = '{ checkoutSession(id: "x") { ' + NESTED + "} }"
# What Relay-style pages send: ten fragments on one type, each repeating id and __typename.
FRAGMENT = (
    "fragment F{i} on CheckoutSession {{ id checkoutSessionStatus isExpired expiresAt amount"
    " currency __typename childSession {{ id __typename }} }}"
)
RELAY_STYLE = (
    "query Page($id: ID!) { checkoutSession(id: $id) { id __typename "
    + " ".join(f"...F{i}" for i in range(10))
    + " } } "
    + " ".join(FRAGMENT.format(i=i) for i in range(10))
)


async def _post(client: httpx.AsyncClient, body: object, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/graphql", json=body, headers=headers)


async def test_a_document_over_the_byte_limit_is_refused_unparsed(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    padded = "#" + "x" * 70_000 + "\n{ __typename }"  # comments count: the tokens would not

    response = await _post(client, {"query": padded}, merchant.read_headers)

    assert response.status_code == 200
    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": "The document is larger than 65536 bytes.",
                "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
            }
        ],
    }


@pytest.mark.parametrize("document", [REPEATED, NESTED], ids=["repeated", "nested"])
async def test_field_merge_work_is_refused_in_milliseconds(
    client: httpx.AsyncClient, merchant: MerchantCredentials, document: str
) -> None:
    timings = []
    for attempt in range(5):
        # A different comment each time: no cache may answer for the work.
        started = time.perf_counter()
        response = await _post(client, {"query": f"# {attempt}\n{document}"}, merchant.read_headers)
        timings.append(time.perf_counter() - started)
        assert error_codes(response.json()) == ["GRAPHQL_VALIDATION_FAILED"]
        assert "repeats" in response.json()["errors"][0]["message"]

    # Before the limits the repeated one took 0.5-0.9 s; now a lexical scan refuses it
    # before parsing, and the nested one is refused by a walk that stops after 2,000
    # steps (each a few ms). 0.2 s leaves room for a slow, shared machine.
    assert statistics.median(timings) < 0.2


async def test_relay_style_fragments_stay_within_the_limits(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)

    response = await _post(
        client, {"query": RELAY_STYLE, "variables": {"id": session["id"]}}, merchant.read_headers
    )

    assert error_codes(response.json()) == []
    assert response.json()["data"]["checkoutSession"]["id"] == session["id"]


async def test_several_operations_without_a_name_are_a_request_error(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    document = "query A { __typename } query B { __typename }"

    response = await _post(client, {"query": document}, merchant.read_headers)
    chosen = await _post(client, {"query": document, "operationName": "B"}, merchant.read_headers)

    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "message": "The document has several operations: operationName must name the"
                " one to run.",
                "extensions": {"code": "VALIDATION_ERROR"},
            }
        ]
    }
    assert chosen.json() == {"data": {"__typename": "Query"}}


async def test_an_unknown_operation_name_is_not_echoed_whole(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    name = "N" * 500_000

    response = await _post(
        client, {"query": "query A { __typename }", "operationName": name}, merchant.read_headers
    )

    assert response.status_code == 400
    assert error_codes(response.json()) == ["VALIDATION_ERROR"]
    assert response.json()["errors"][0]["message"] == f'Unknown operation named "{"N" * 64}…".'
