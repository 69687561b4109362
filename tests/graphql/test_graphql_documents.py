"""Section 7 of the contract: documents that do not parse, fail validation or exceed limits,
and mutation input that is the client's error (never INTERNAL_ERROR)."""

from __future__ import annotations

import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import pytest

from gql_checkout.app import create_app
from gql_checkout.settings import Environment, Settings
from testkit.documents import CREATE_MUTATION, create_session, error_codes, graphql
from testkit.merchants import TEST_SECRET, MerchantCredentials

pytestmark = pytest.mark.anyio

UNKNOWN_FIELD_QUERY = "query S($id: ID!) { checkoutSession(id: $id) { id colour } }"
UNPARSABLE_QUERY = "{ checkoutSession(id: "


def _nested(levels: int) -> str:
    """checkoutSession with ``levels`` alternating childSession/parentSession inside."""
    inner = "id"
    for level in range(levels):
        inner = f"{'parentSession' if level % 2 else 'childSession'} {{ {inner} }}"
    return f"query S($id: ID!) {{ checkoutSession(id: $id) {{ {inner} }} }}"


DEPTH_10_QUERY = _nested(9)  # checkoutSession + 9 nested levels = depth 10
DEPTH_11_QUERY = _nested(10)
ALIASES_15_QUERY = "{ " + " ".join(f"a{n}: __typename" for n in range(15)) + " }"
ALIASES_16_QUERY = "{ " + " ".join(f"a{n}: __typename" for n in range(16)) + " }"
# ~400 tokens without a selection repeated more than 20 times in one set: 398 bare
# `__typename`s are refused before parsing now (graphql/documents.py: a repeated selection
# costs the overlap rule pairs and the parser ~7 µs a token, even to refuse it).
TOKENS_400_QUERY = (
    "query Q($id: ID!) { "
    + "__typename @include(if: true) @skip(if: false) " * 20
    + "checkoutSession(id: $id) { "
    + "id @include(if: true) @skip(if: false) " * 10
    + "} }"
)
# Over the token limit with no selection repeated: the parser's own limit answers.
TOKENS_2100_QUERY = "{ " + " ".join(f"f{number}" for number in range(2098)) + " }"


def _only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body.get("errors", [])) == 1, body
    error: dict[str, Any] = body["errors"][0]
    return error


# --- documents: parse, validation, limits, transport -------------------------------------


async def test_a_document_that_does_not_parse(client: httpx.AsyncClient) -> None:
    body = await graphql(client, UNPARSABLE_QUERY)

    assert body == {
        "data": None,
        "errors": [
            {
                "message": "Syntax Error: Unexpected <EOF>.",
                "locations": [{"line": 1, "column": 23}],
                "extensions": {"code": "GRAPHQL_PARSE_FAILED"},
            }
        ],
    }


async def test_an_unknown_field_fails_validation_with_its_message(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    body = await graphql(
        client, UNKNOWN_FIELD_QUERY, {"id": str(uuid.uuid4())}, merchant.read_headers
    )

    assert body == {
        "data": None,
        "errors": [
            {
                "message": "Cannot query field 'colour' on type 'CheckoutSession'.",
                "locations": [{"line": 1, "column": 51}],
                "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
            }
        ],
    }


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (DEPTH_11_QUERY, "'S' exceeds maximum operation depth of 10"),
        (ALIASES_16_QUERY, "16 aliases found. Allowed: 15"),
        (
            TOKENS_2100_QUERY,
            "Syntax Error: Document contains more than 2000 tokens. Parsing aborted.",
        ),
    ],
    ids=["depth", "aliases", "tokens"],
)
async def test_documents_over_the_limits_fail_validation(
    client: httpx.AsyncClient, merchant: MerchantCredentials, document: str, message: str
) -> None:
    body = await graphql(client, document, {"id": str(uuid.uuid4())}, merchant.read_headers)

    assert body["data"] is None
    error = _only_error(body)
    assert error["message"] == message
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}


@pytest.mark.parametrize(
    "document",
    [DEPTH_10_QUERY, ALIASES_15_QUERY, TOKENS_400_QUERY],
    ids=["depth", "aliases", "tokens"],
)
async def test_documents_within_the_limits_run(
    client: httpx.AsyncClient, merchant: MerchantCredentials, document: str
) -> None:
    parent = await create_session(client, merchant.api_key)
    await create_session(client, merchant.api_key, parentSessionId=parent["id"])

    body = await graphql(client, document, {"id": parent["id"]}, merchant.read_headers)

    assert "errors" not in body, body


async def test_a_body_that_is_not_json_is_a_coded_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", content=b'{"query": ', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {
        "errors": [
            {
                "message": "Unable to parse request body as JSON",
                "extensions": {"code": "VALIDATION_ERROR"},
            }
        ]
    }


@pytest.mark.parametrize("operations", [10, 11])
async def test_batches_are_capped_at_ten_operations(
    client: httpx.AsyncClient, operations: int
) -> None:
    response = await client.post("/graphql", json=[{"query": "{ __typename }"}] * operations)

    if operations <= 10:
        assert response.status_code == HTTPStatus.OK
        assert response.json() == [{"data": {"__typename": "Query"}}] * operations
    else:
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert error_codes(response.json()) == ["VALIDATION_ERROR"]


# --- createCheckoutSession: bad input is the client's error, never INTERNAL_ERROR ---------

AMOUNT_ERROR = {"field": "amount", "message": "must be between 1 and 99999999999 (minor units)"}
CURRENCY_ERROR = {"field": "currency", "message": "must be an ISO 4217 code such as EUR or USD"}
EXPIRY_ERROR = {"field": "expiresInSeconds", "message": "must be between 60 and 86400"}


@pytest.mark.parametrize(
    ("input_fields", "extensions"),
    [
        ({"amount": -1}, {"code": "VALIDATION_ERROR", "errors": [AMOUNT_ERROR]}),
        ({"amount": 0}, {"code": "VALIDATION_ERROR", "errors": [AMOUNT_ERROR]}),
        ({"currency": "XXX"}, {"code": "VALIDATION_ERROR", "errors": [CURRENCY_ERROR]}),
        ({"expiresInSeconds": 59}, {"code": "VALIDATION_ERROR", "errors": [EXPIRY_ERROR]}),
        ({"expiresInSeconds": 86401}, {"code": "VALIDATION_ERROR", "errors": [EXPIRY_ERROR]}),
        ({"amount": "ten"}, {"code": "VALIDATION_ERROR"}),  # does not coerce to Int
    ],
    ids=["negative", "zero", "currency", "expiry-59", "expiry-86401", "amount-not-int"],
)
async def test_bad_create_input_is_a_validation_error(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    input_fields: dict[str, Any],
    extensions: dict[str, Any],
) -> None:
    variables = {"input": {"amount": 1000, "currency": "EUR", **input_fields}}

    body = await graphql(client, CREATE_MUTATION, variables, merchant.write_headers)

    assert body["data"] is None
    assert _only_error(body)["extensions"] == extensions


@pytest.mark.parametrize("expires_in_seconds", [60, 86400])
async def test_the_expiry_bounds_are_inclusive(
    client: httpx.AsyncClient, merchant: MerchantCredentials, expires_in_seconds: int
) -> None:
    session = await create_session(client, merchant.api_key, expiresInSeconds=expires_in_seconds)

    assert session["checkoutSessionStatus"] == "INITIATED"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer gqlc_sk_garbage"}])
async def test_creating_needs_a_valid_api_key(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    variables = {"input": {"amount": 1000, "currency": "EUR"}}

    body = await graphql(client, CREATE_MUTATION, variables, headers)

    assert body["data"] is None
    assert _only_error(body)["extensions"] == {"code": "UNAUTHENTICATED"}


# --- GraphiQL ----------------------------------------------------------------------------


async def test_graphiql_is_served_in_development(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == HTTPStatus.OK
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_graphiql_is_not_served_in_production(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'production.db'}",
        environment=Environment.PRODUCTION,
        hcp_secrets=(TEST_SECRET,),
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/graphql", headers={"Accept": "text/html"})
    await app.state.container.stop()

    assert response.status_code != HTTPStatus.OK
    assert not response.headers["content-type"].startswith("text/html")
