"""Section 10 of the contract: ``checkoutSessions``, its cursors, filters, identity and the
statements a page costs; metadata on create and read."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from testkit.clock import Clock
from testkit.documents import (
    CANCEL_MUTATION,
    CARD,
    COMPLETE_MUTATION,
    FAIL_MUTATION,
    create_session,
    error_codes,
    graphql,
)
from testkit.merchants import MerchantCredentials
from tests.conftest import StatementCounter

pytestmark = pytest.mark.anyio

LIST_QUERY = """
query List($first: Int, $after: String, $filter: CheckoutSessionFilter) {
  checkoutSessions(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

LAZY_LIST_QUERY = """
query List($first: Int) {
  checkoutSessions(first: $first) {
    edges {
      node {
        id metadata hcpToken appearance { theme } cardCategories
        childSession { id parentSession { id } }
        parentSession { id childSession { id } }
        recoveredFrom { id }
      }
    }
    pageInfo { hasNextPage }
  }
}
"""

CREATE_ID_MUTATION = """
mutation($input: CreateCheckoutSessionInput!) { createCheckoutSession(input: $input) { id } }
"""

METADATA_QUERY = """
query Session($id: ID!) { checkoutSession(id: $id) { id metadata } }
"""


async def _list(
    client: httpx.AsyncClient, owner: MerchantCredentials, **variables: Any
) -> dict[str, Any]:
    return await graphql(client, LIST_QUERY, variables, owner.write_headers)


def _ids(body: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in body["data"]["checkoutSessions"]["edges"]]


async def _all_pages(
    client: httpx.AsyncClient, owner: MerchantCredentials, first: int, **variables: Any
) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        body = await _list(client, owner, first=first, after=after, **variables)
        assert "errors" not in body, body
        page = body["data"]["checkoutSessions"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        assert len(page["edges"]) <= first
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]


# --- order, pages, identity -------------------------------------------------------------


async def test_lists_every_state_newest_first_and_pages_through_all(
    client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials
) -> None:
    # given: seven sessions over three seconds (several share a second: the id orders them)
    created = []
    for n in range(7):
        created.append(await create_session(client, merchant.api_key))
        if n % 3 == 2:
            clock.advance(seconds=1)
    await graphql(client, CANCEL_MUTATION, {"id": created[0]["id"]}, merchant.write_headers)
    await graphql(
        client,
        COMPLETE_MUTATION,
        {"id": created[1]["id"], "paymentMethod": CARD},
        merchant.write_headers,
    )
    newest_first = [
        s["id"] for s in sorted(created, key=lambda s: (s["createdAt"], s["id"]), reverse=True)
    ]

    assert await _all_pages(client, merchant, first=3) == newest_first
    assert await _all_pages(client, merchant, first=100) == newest_first
    assert await _all_pages(client, merchant, first=1) == newest_first


async def test_an_empty_list_has_no_end_cursor(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    body = await _list(client, merchant)

    assert body == {
        "data": {
            "checkoutSessions": {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}
        }
    }


async def test_a_list_shows_only_the_callers_sessions(
    client: httpx.AsyncClient, merchant: MerchantCredentials, other_merchant: MerchantCredentials
) -> None:
    mine = await create_session(client, merchant.api_key)
    await create_session(client, other_merchant.api_key)

    assert _ids(await _list(client, merchant)) == [mine["id"]]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param("merchant-id", id="x-merchant-id-alone"),
        pytest.param("hcp-token", id="hcp-token"),
        pytest.param("bad-key", id="bad-key"),
    ],
)
async def test_a_list_needs_the_api_key(
    client: httpx.AsyncClient, merchant: MerchantCredentials, headers: str
) -> None:
    session = await create_session(client, merchant.api_key)
    sent = {
        "merchant-id": merchant.read_headers,
        "hcp-token": {"Authorization": f"Bearer {session['hcpToken']}"},
        "bad-key": {"Authorization": "Bearer gqlc_sk_not-a-key"},
    }[headers]

    body = await graphql(client, LIST_QUERY, {}, sent)

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None


async def test_an_api_key_of_another_merchant_than_x_merchant_id_is_forbidden(
    client: httpx.AsyncClient, merchant: MerchantCredentials, other_merchant: MerchantCredentials
) -> None:
    headers = {**merchant.write_headers, **other_merchant.read_headers}

    assert error_codes(await graphql(client, LIST_QUERY, {}, headers)) == ["FORBIDDEN"]


@pytest.mark.parametrize(
    "variables",
    [
        {"first": 0},
        {"first": 101},
        {"first": -1},
        {"after": "not a cursor"},
        {"after": ""},
        {"after": "A" * 32 + "=="},
        {"after": "A" * 31},
        {"after": "A" * 31 + "/"},  # standard base64's alphabet, not the URL-safe one
        # the largest timestamp 8 bytes hold: far past year 9999
        {"after": "f_________8AAAAAAAAAAAAAAAAAAAAA"},
    ],
)
async def test_a_bad_page_size_or_cursor_is_a_validation_error(
    client: httpx.AsyncClient, merchant: MerchantCredentials, variables: dict[str, Any]
) -> None:
    body = await _list(client, merchant, **variables)

    assert error_codes(body) == ["VALIDATION_ERROR"]
    assert body["data"] is None


async def test_a_cursor_of_the_first_page_resumes_after_it(
    client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials
) -> None:
    for _ in range(3):
        await create_session(client, merchant.api_key)
        clock.advance(seconds=1)
    everything = _ids(await _list(client, merchant))
    first = (await _list(client, merchant, first=1))["data"]["checkoutSessions"]

    rest = await _list(client, merchant, after=first["pageInfo"]["endCursor"])

    assert first["pageInfo"]["hasNextPage"] is True
    assert _ids(rest) == everything[1:]


async def test_paging_through_concurrent_inserts_has_no_gaps_or_duplicates(
    client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials
) -> None:
    # given: sessions over a few seconds, then more created while a client pages through
    existing = []
    for n in range(12):
        existing.append((await create_session(client, merchant.api_key))["id"])
        if n % 4 == 3:
            clock.advance(seconds=1)
    seen: list[str] = []
    inserted: list[str] = []
    after = None
    while True:
        # New sessions at the same instant as the page's rows, and later ones, concurrently.
        page, *new = await asyncio.gather(
            _list(client, merchant, first=2, after=after),
            create_session(client, merchant.api_key),
            create_session(client, merchant.api_key),
        )
        inserted += [session["id"] for session in new]
        connection = page["data"]["checkoutSessions"]
        seen += [edge["node"]["id"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
        clock.advance(seconds=1)

    assert len(seen) == len(set(seen)), "a session was listed twice"
    assert set(existing) <= set(seen), "a session that existed before paging was skipped"
    assert set(seen) <= set(existing) | set(inserted)


# --- filters ----------------------------------------------------------------------------


async def test_each_filter(
    client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials
) -> None:
    # given: an open, a failed, a completed, an expired session and a child of the open one
    opened = await create_session(client, merchant.api_key, merchantReference="A-1001")
    clock.advance(seconds=10)
    failed = await create_session(client, merchant.api_key, merchantReference="A-1001")
    await graphql(client, FAIL_MUTATION, {"id": failed["id"]}, merchant.write_headers)
    clock.advance(seconds=10)
    completed = await create_session(client, merchant.api_key)
    await graphql(
        client,
        COMPLETE_MUTATION,
        {"id": completed["id"], "paymentMethod": CARD},
        merchant.write_headers,
    )
    clock.advance(seconds=10)
    expiring = await create_session(client, merchant.api_key, expiresInSeconds=60)
    child = await create_session(client, merchant.api_key, parentSessionId=opened["id"])
    clock.advance(seconds=60)

    async def listed(**criteria: Any) -> list[str]:
        body = await _list(client, merchant, filter=criteria)
        assert "errors" not in body, body
        return _ids(body)

    assert await listed(status=["FAILED"]) == [failed["id"]]
    assert await listed(status=["FAILED", "COMPLETED"]) == [completed["id"], failed["id"]]
    assert await listed(status=[]) == []
    assert await listed(isExpired=True) == [expiring["id"]]
    assert await listed(isExpired=False) == [
        child["id"],
        completed["id"],
        failed["id"],
        opened["id"],
    ]
    assert await listed(status=["INITIATED"], isExpired=False) == [child["id"], opened["id"]]
    assert await listed(merchantReference="A-1001") == [failed["id"], opened["id"]]
    assert await listed(parentSessionId=opened["id"]) == [child["id"]]
    assert await listed(createdAfter=failed["createdAt"], createdBefore=expiring["createdAt"]) == [
        completed["id"],
        failed["id"],
    ]
    later = sorted(
        [child, expiring, completed, failed], key=lambda s: (s["createdAt"], s["id"]), reverse=True
    )
    assert await listed(createdAfter="2026-01-01T12:00:10+00:00") == [s["id"] for s in later]


async def test_a_malformed_parent_id_filter_is_a_validation_error(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    body = await _list(client, merchant, filter={"parentSessionId": "nope"})

    assert error_codes(body) == ["VALIDATION_ERROR"]


# --- statements ---------------------------------------------------------------------------


@pytest.mark.parametrize("document", [LIST_QUERY, LAZY_LIST_QUERY], ids=["ids", "all-lazy"])
async def test_a_page_costs_the_same_statements_whatever_its_size(
    client: httpx.AsyncClient,
    clock: Clock,
    merchant: MerchantCredentials,
    statements: StatementCounter,
    document: str,
) -> None:
    # given: 30 parents, then a child of each (60 sessions): every page below holds
    # children whose parents it does not hold
    parents = []
    for _ in range(30):
        parents.append(await create_session(client, merchant.api_key))
        clock.advance(seconds=1)
    for parent in parents:
        await create_session(client, merchant.api_key, parentSessionId=parent["id"])
        clock.advance(seconds=1)
    counts = []
    for first in (1, 11, 41):
        statements.reset()
        body = await graphql(client, document, {"first": first}, merchant.write_headers)
        assert "errors" not in body, body
        assert len(body["data"]["checkoutSessions"]["edges"]) == first
        counts.append(statements.count)

    # The key, the page (children joined); with every lazy field: the parents (and
    # children's parents) of the page in one batch, the merchant's profile once.
    expected = 2 if document is LIST_QUERY else 4
    assert counts == [expected] * 3, [s[:60] for s in statements.statements]


# --- metadata -----------------------------------------------------------------------------


async def test_metadata_is_stored_and_returned_by_graphql_and_rest(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    metadata = {"orderId": "A-1001", "cart": "c-7", "a": ""}
    session = await create_session(client, merchant.api_key, metadata=metadata)

    body = await graphql(client, METADATA_QUERY, {"id": session["id"]}, merchant.read_headers)
    response = await client.get(
        f"/v1/checkout-sessions/{session['id']}", headers=merchant.read_headers
    )

    expected = {"a": "", "cart": "c-7", "orderId": "A-1001"}
    assert body == {"data": {"checkoutSession": {"id": session["id"], "metadata": expected}}}
    assert list(body["data"]["checkoutSession"]["metadata"]) == sorted(expected)
    assert response.json()["data"]["checkoutSession"]["metadata"] == expected


async def test_metadata_defaults_to_an_empty_object(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)

    body = await graphql(client, METADATA_QUERY, {"id": session["id"]}, merchant.read_headers)

    assert body["data"]["checkoutSession"]["metadata"] == {}


@pytest.mark.parametrize(
    "metadata",
    [
        ["a"],
        "text",
        {"n": 1},
        {"n": None},
        {"": "x"},
        {"k" * 41: "x"},
        {"k": "v" * 501},
        {f"k{n}": "v" for n in range(21)},
        {"nested": {"a": "b"}},
    ],
)
async def test_metadata_out_of_its_limits_is_a_validation_error(
    client: httpx.AsyncClient, merchant: MerchantCredentials, metadata: Any
) -> None:
    variables = {"input": {"amount": 100, "currency": "EUR", "metadata": metadata}}
    body = await graphql(
        client,
        CREATE_ID_MUTATION,
        variables,
        merchant.write_headers,
    )

    assert error_codes(body) == ["VALIDATION_ERROR"]


async def test_metadata_at_its_limits_is_accepted(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    metadata = {f"{n:02d}" + "k" * 38: "v" * 500 for n in range(20)}

    session = await create_session(client, merchant.api_key, metadata=metadata)

    body = await graphql(client, METADATA_QUERY, {"id": session["id"]}, merchant.read_headers)
    assert body["data"]["checkoutSession"]["metadata"] == metadata


async def test_metadata_is_part_of_the_idempotency_comparison(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    first = await create_session(client, merchant.api_key, idempotencyKey="k", metadata={"a": "1"})
    again = await create_session(client, merchant.api_key, idempotencyKey="k", metadata={"a": "1"})
    body = await graphql(
        client,
        CREATE_ID_MUTATION,
        {
            "input": {
                "amount": 1000,
                "currency": "EUR",
                "idempotencyKey": "k",
                "metadata": {"a": "2"},
            }
        },
        merchant.write_headers,
    )

    assert again["id"] == first["id"]
    assert error_codes(body) == ["IDEMPOTENCY_KEY_REUSED"]
