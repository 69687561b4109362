"""Section 7 of the contract: /graphql reads, their rules, and the statements they cost."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from testkit.clock import Clock
from testkit.documents import (
    CANCEL_MUTATION,
    CARD,
    COMPLETE_MUTATION,
    create_session,
    graphql,
    session_in_state,
)
from testkit.merchants import MerchantCredentials
from tests.conftest import StatementCounter

pytestmark = pytest.mark.anyio

SELECTED_QUERY = "query S($id: ID!) { checkoutSession(id: $id) { id amount currency } }"
STATUS_QUERY = "query S($id: ID!) { checkoutSession(id: $id) { checkoutSessionStatus } }"
CHILD_QUERY = """
query S($id: ID!) {
  checkoutSession(id: $id) {
    checkoutSessionStatus
    childSession { id checkoutSessionStatus isExpired }
  }
}
"""
PARENT_QUERY = """
query S($id: ID!) { checkoutSession(id: $id) { id parentSession { id checkoutSessionStatus } } }
"""
APPEARANCE_QUERY = """
query S($id: ID!) { checkoutSession(id: $id) { checkoutSessionStatus appearance { theme } } }
"""
CATEGORIES_QUERY = """
query S($id: ID!) { checkoutSession(id: $id) { checkoutSessionStatus cardCategories } }
"""
EVERYTHING_LAZY_QUERY = """
query S($id: ID!) {
  checkoutSession(id: $id) {
    checkoutSessionStatus childSession { id } appearance { theme } cardCategories
  }
}
"""
TIMES_QUERY = "query S($id: ID!) { checkoutSession(id: $id) { createdAt expiresAt updatedAt } }"


def _roots(count: int) -> str:
    """``count`` aliased checkoutSession root fields, each with its childSession."""
    variables = ", ".join(f"$id{n}: ID!" for n in range(count))
    fields = " ".join(
        f"s{n}: checkoutSession(id: $id{n}) {{ id childSession {{ id }} }}" for n in range(count)
    )
    return f"query Many({variables}) {{ {fields} }}"


ROOTS_QUERIES = {count: _roots(count) for count in (2, 5)}
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def _only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body.get("errors", [])) == 1, body
    error: dict[str, Any] = body["errors"][0]
    return error


def _null_session_with(body: dict[str, Any], extensions: dict[str, Any]) -> None:
    assert body["data"] == {"checkoutSession": None}
    error = _only_error(body)
    assert error["path"] == ["checkoutSession"]
    assert error["extensions"] == extensions


async def _with_child(client: httpx.AsyncClient, api_key: str, **child: Any) -> tuple[str, str]:
    parent = await create_session(client, api_key)
    created = await create_session(client, api_key, parentSessionId=parent["id"], **child)
    return parent["id"], created["id"]


async def test_only_the_selected_fields_come_back(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key, amount=1234, currency="USD")

    body = await graphql(client, SELECTED_QUERY, {"id": session["id"]}, merchant.read_headers)

    assert body == {
        "data": {"checkoutSession": {"id": session["id"], "amount": 1234, "currency": "USD"}}
    }


async def test_an_api_key_alone_names_the_reader(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)

    body = await graphql(client, STATUS_QUERY, {"id": session["id"]}, merchant.write_headers)

    assert body == {"data": {"checkoutSession": {"checkoutSessionStatus": "INITIATED"}}}


# --- checkoutSession applies the REST table ----------------------------------------------


@pytest.mark.parametrize(
    ("owner", "state", "code"),
    [
        ("merchant", "canceled", "SESSION_CANCELED"),
        ("merchant", "expired", "SESSION_EXPIRED"),
        ("other", "open", "FORBIDDEN"),
        ("other", "canceled", "FORBIDDEN"),
        ("other", "expired", "FORBIDDEN"),
    ],
)
async def test_checkout_session_applies_the_rest_rules(
    client: httpx.AsyncClient,
    clock: Clock,
    merchant: MerchantCredentials,
    other_merchant: MerchantCredentials,
    owner: str,
    state: str,
    code: str,
) -> None:
    owning = merchant if owner == "merchant" else other_merchant
    session = await session_in_state(client, owning, state, clock)

    body = await graphql(client, STATUS_QUERY, {"id": session["id"]}, merchant.read_headers)

    _null_session_with(body, {"code": code})


async def test_an_unknown_session_is_not_found(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    body = await graphql(client, STATUS_QUERY, {"id": str(uuid.uuid4())}, merchant.read_headers)

    _null_session_with(body, {"code": "SESSION_NOT_FOUND"})


@pytest.mark.parametrize(
    ("session_id", "headers", "field_error"),
    [
        ("not-a-uuid", "read", {"field": "id", "message": "must be a UUID"}),
        (
            None,
            "none",
            {
                "field": "X-Merchant-Id",
                "message": "is required (or an Authorization: Bearer <apiKey> header)",
            },
        ),
    ],
    ids=["id-not-a-uuid", "no-merchant-id-no-api-key"],
)
async def test_invalid_reads_are_validation_errors(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    session_id: str | None,
    headers: str,
    field_error: dict[str, str],
) -> None:
    session = await create_session(client, merchant.api_key)

    body = await graphql(
        client,
        STATUS_QUERY,
        {"id": session_id or session["id"]},
        merchant.read_headers if headers == "read" else {},
    )

    _null_session_with(body, {"code": "VALIDATION_ERROR", "errors": [field_error]})


@pytest.mark.parametrize(
    ("authorization", "code"),
    [("Bearer gqlc_sk_garbage", "UNAUTHENTICATED"), ("other", "FORBIDDEN")],
    ids=["invalid-api-key", "other-merchants-api-key"],
)
async def test_an_api_key_beside_x_merchant_id_must_match_it(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    other_merchant: MerchantCredentials,
    authorization: str,
    code: str,
) -> None:
    session = await create_session(client, merchant.api_key)
    if authorization == "other":
        authorization = f"Bearer {other_merchant.api_key}"

    body = await graphql(
        client,
        STATUS_QUERY,
        {"id": session["id"]},
        {**merchant.read_headers, "Authorization": authorization},
    )

    _null_session_with(body, {"code": code})


async def test_a_canceled_child_is_returned_as_it_is(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    parent_id, child_id = await _with_child(client, merchant.api_key)
    await graphql(client, CANCEL_MUTATION, {"id": child_id}, merchant.write_headers)

    body = await graphql(client, CHILD_QUERY, {"id": parent_id}, merchant.read_headers)

    assert body == {
        "data": {
            "checkoutSession": {
                "checkoutSessionStatus": "INITIATED",
                "childSession": {
                    "id": child_id,
                    "checkoutSessionStatus": "CANCELED",
                    "isExpired": False,
                },
            }
        }
    }


async def test_an_expired_child_is_returned_as_it_is(
    client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials
) -> None:
    parent_id, child_id = await _with_child(client, merchant.api_key, expiresInSeconds=60)
    clock.advance(seconds=60)

    body = await graphql(client, CHILD_QUERY, {"id": parent_id}, merchant.read_headers)

    assert body == {
        "data": {
            "checkoutSession": {
                "checkoutSessionStatus": "INITIATED",
                "childSession": {
                    "id": child_id,
                    "checkoutSessionStatus": "INITIATED",
                    "isExpired": True,
                },
            }
        }
    }


async def test_a_parent_session_is_returned_as_it_is(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    parent_id, child_id = await _with_child(client, merchant.api_key)
    completed = {"id": child_id, "paymentMethod": CARD}
    await graphql(client, COMPLETE_MUTATION, completed, merchant.write_headers)

    body = await graphql(client, PARENT_QUERY, {"id": child_id}, merchant.read_headers)

    assert body == {
        "data": {
            "checkoutSession": {
                "id": child_id,
                "parentSession": {"id": parent_id, "checkoutSessionStatus": "COMPLETED"},
            }
        }
    }


async def test_date_times_are_utc_with_z_and_whole_seconds(
    client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials
) -> None:
    clock.advance(seconds=0.75)  # a fraction the API must not show
    session = await create_session(client, merchant.api_key)

    body = await graphql(client, TIMES_QUERY, {"id": session["id"]}, merchant.read_headers)

    times = body["data"]["checkoutSession"]
    assert times == {
        "createdAt": "2026-01-01T12:00:00Z",
        "expiresAt": "2026-01-01T13:00:00Z",
        "updatedAt": "2026-01-01T12:00:00Z",
    }
    assert all(RFC3339_UTC.match(value) for value in [*times.values(), session["createdAt"]])


# --- statements: lazy fields cost at most one query each, batched ------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (STATUS_QUERY, 1),
        # The root's query joins its current child, so childSession adds nothing.
        (CHILD_QUERY, 1),
        (APPEARANCE_QUERY, 2),  # + one lookup of the merchant profile
        (CATEGORIES_QUERY, 2),
        # appearance and cardCategories share MerchantProfileByMerchantIdLoader: the profile
        # is read once for both, so the three lazy fields together add 1.
        (EVERYTHING_LAZY_QUERY, 2),
    ],
    ids=["status", "child", "appearance", "categories", "all-lazy"],
)
async def test_each_lazy_field_adds_at_most_one_statement(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    statements: StatementCounter,
    document: str,
    expected: int,
) -> None:
    parent_id, _ = await _with_child(client, merchant.api_key)
    statements.reset()

    body = await graphql(client, document, {"id": parent_id}, merchant.read_headers)

    assert "errors" not in body, body
    assert statements.count == expected, statements.statements


async def test_a_missing_child_costs_no_statement(
    client: httpx.AsyncClient, merchant: MerchantCredentials, statements: StatementCounter
) -> None:
    session = await create_session(client, merchant.api_key)
    statements.reset()

    body = await graphql(client, CHILD_QUERY, {"id": session["id"]}, merchant.read_headers)

    assert body == {
        "data": {"checkoutSession": {"checkoutSessionStatus": "INITIATED", "childSession": None}}
    }
    assert statements.count == 1


@pytest.mark.parametrize("count", sorted(ROOTS_QUERIES))
async def test_children_of_many_root_sessions_are_read_in_one_batch(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    statements: StatementCounter,
    count: int,
) -> None:
    # given: `count` parents, each with a child
    pairs = [await _with_child(client, merchant.api_key) for _ in range(count)]
    variables = {f"id{n}": parent_id for n, (parent_id, _) in enumerate(pairs)}
    statements.reset()

    body = await graphql(client, ROOTS_QUERIES[count], variables, merchant.read_headers)

    assert body == {
        "data": {
            f"s{n}": {"id": parent_id, "childSession": {"id": child_id}}
            for n, (parent_id, child_id) in enumerate(pairs)
        }
    }
    # Root fields share one batched lookup that joins their children: the count does not
    # grow with the number of sessions requested.
    assert statements.count == 1, statements.statements
    in_lists = [re.search(r"\bIN \(([^)]*)\)", statement) for statement in statements.statements]
    # SQLite writes IN (?, ?), PostgreSQL IN ($1::UUID, $2::UUID): count the items. SQLite's
    # reads pad a batch to a power of two (repeating an id) to reuse their SQL.
    batch_sizes = [len(match.group(1).split(",")) for match in in_lists if match]
    assert any(count <= size < 2 * count for size in batch_sizes), (
        f"no single IN (...) of {count} ids: {batch_sizes}"
    )


async def test_an_api_key_is_checked_once_per_request(
    client: httpx.AsyncClient, merchant: MerchantCredentials, statements: StatementCounter
) -> None:
    sessions = [await create_session(client, merchant.api_key) for _ in range(5)]
    statements.reset()

    body = await graphql(
        client,
        ROOTS_QUERIES[5],
        {f"id{n}": session["id"] for n, session in enumerate(sessions)},
        merchant.write_headers,
    )

    assert body == {
        "data": {
            f"s{n}": {"id": session["id"], "childSession": None}
            for n, session in enumerate(sessions)
        }
    }
    key_lookups = [statement for statement in statements.statements if "api_key_hash" in statement]
    assert len(key_lookups) == 1, "the API key is checked once per request, not per root field"
