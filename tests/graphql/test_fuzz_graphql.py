"""Schemathesis against /graphql, from the committed schema.graphql, in process.

Whatever the document, the variables or the credentials: no 5xx, and every error
carries ``extensions.code``, one of the contract's, never INTERNAL_ERROR. Resolver
errors are the API working (SESSION_NOT_FOUND, VALIDATION_ERROR, ...), so
Schemathesis's own GraphQL verdict, which counts any of them as a server error, is
replaced by these assertions.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import graphql
import pytest
import schemathesis
from hypothesis import given, note
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.graphql import nodes
from schemathesis.specs.graphql.scalars import CUSTOM_SCALARS
from schemathesis.specs.graphql.schemas import GraphQLSchema
from starlette.testclient import TestClient

from gql_checkout.settings import Settings
from testkit.clock import Clock
from testkit.documents import CANCEL_MUTATION, CARD, COMPLETE_MUTATION, FAIL_MUTATION
from tests.fuzzing import CANONICAL_UUID, FUZZ_SETTINGS, UUID_LIKE, Kind, Seed, seeded_app

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SDL = Path(__file__).resolve().parents[2] / "schema.graphql"
CONTRACT_CODES = {
    "VALIDATION_ERROR",
    "UNAUTHENTICATED",
    "SESSION_EXPIRED",
    "FORBIDDEN",
    "SESSION_NOT_FOUND",
    "NOT_FOUND",  # a webhook endpoint or event
    "INVALID_STATE_TRANSITION",
    "IDEMPOTENCY_KEY_REUSED",
    "SESSION_CANCELED",
    "PAYLOAD_TOO_LARGE",
    "RATE_LIMITED",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
}
# graphql-core's words for a resolver that broke the schema's promise of a value.
NON_NULL_VIOLATION = "Cannot return null for non-nullable field"
READ_QUERY = """
query Read($id: ID!) {
  checkoutSession(id: $id) { id checkoutSessionStatus childSession { id } parentSession { id } }
}
"""
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@pytest.fixture
def fuzzed(
    settings: Settings, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> tuple[GraphQLSchema, Seed]:
    app, seed = seeded_app(settings, clock)
    ids = st.one_of(
        st.sampled_from(seed.session_ids), st.uuids().map(str), UUID_LIKE, st.text(max_size=40)
    )
    # IDs that exist, so transitions, nested sessions and state errors are reached too.
    # (Schemathesis keeps custom scalars in one process-wide registry: restored after.)
    monkeypatch.setitem(CUSTOM_SCALARS, "ID", ids.map(nodes.String))
    schema = schemathesis.graphql.from_path(SDL)
    schema.app = app
    schema.location = "/graphql"
    return schema, seed


def _headers(seed: Seed) -> st.SearchStrategy[dict[str, str]]:
    """Reads and writes of the seeded merchant, and credentials that must be refused."""
    merchant, other = seed.merchant, seed.other_merchant
    return st.sampled_from(
        [
            {"X-Merchant-Id": merchant.merchant_id},
            {"Authorization": f"Bearer {merchant.api_key}"},
            {"X-Merchant-Id": merchant.merchant_id, "Authorization": f"Bearer {merchant.api_key}"},
            {"X-Merchant-Id": merchant.merchant_id, "Authorization": f"Bearer {other.api_key}"},
            {"Authorization": "Bearer not-a-key"},
            {"X-Merchant-Id": "not-a-uuid"},
            {},
        ]
    )


@functools.cache
def _sdl_schema() -> graphql.GraphQLSchema:
    return graphql.build_schema(SDL.read_text())


def _allowed(document: Any) -> bool:
    """Whether graphql-core finds ``document`` valid against the committed SDL."""
    try:
        parsed = graphql.parse(str(document))
    except graphql.GraphQLError:
        return False
    return not graphql.validate(_sdl_schema(), parsed)


def assert_coded(status_code: int, body: Any) -> None:
    """The promise to clients: no 5xx, and each error coded with a contract code."""
    assert status_code < 500, body
    results = body if isinstance(body, list) else [body]
    for result in results:
        assert isinstance(result, dict), body
        assert {"data", "errors"} & set(result), body
        for error in result.get("errors") or []:
            code = (error.get("extensions") or {}).get("code")
            assert code in CONTRACT_CODES, error
            assert NON_NULL_VIOLATION not in error["message"], error


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_error_is_coded(fuzzed: tuple[GraphQLSchema, Seed], mode: GenerationMode) -> None:
    schema, seed = fuzzed

    @FUZZ_SETTINGS
    @given(case=schema.as_strategy(mode), headers=_headers(seed))
    def check(case: Case[Any], headers: dict[str, str]) -> None:
        note(case.as_curl_command(headers=headers))
        response = case.call(headers=headers)

        body = response.json()
        assert_coded(response.status_code, body)
        if mode is GenerationMode.NEGATIVE and not _allowed(case.body):
            # A document the schema does not allow never runs. (The negative generator has
            # nothing to spoil in a root field without arguments, e.g. webhookEndpoints,
            # and then yields an allowed document.)
            assert body.get("errors"), body

    check()


@pytest.fixture
def client(settings: Settings, clock: Clock) -> Iterator[tuple[TestClient, Seed]]:
    """Raw requests: Starlette's TestClient runs the app in a loop thread of its own."""
    app, seed = seeded_app(settings, clock)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client, seed


def test_ids_that_look_like_uuids_are_validated(client: tuple[TestClient, Seed]) -> None:
    test_client, seed = client
    headers = {
        "X-Merchant-Id": seed.merchant.merchant_id,
        "Authorization": f"Bearer {seed.merchant.api_key}",
    }
    documents = st.sampled_from(
        [
            (READ_QUERY, {}),
            (CANCEL_MUTATION, {}),
            (COMPLETE_MUTATION, {"paymentMethod": CARD}),
            (FAIL_MUTATION, {"reason": "declined"}),
        ]
    )

    @FUZZ_SETTINGS
    @given(document=documents, checkout_session_id=UUID_LIKE)
    def check(document: tuple[str, dict[str, Any]], checkout_session_id: str) -> None:
        query, variables = document
        response = test_client.post(
            "/graphql",
            json={"query": query, "variables": {"id": checkout_session_id, **variables}},
            headers=headers,
        )

        body = response.json()
        assert_coded(response.status_code, body)
        if not CANONICAL_UUID.fullmatch(checkout_session_id):
            assert [error["extensions"]["code"] for error in body["errors"]] == ["VALIDATION_ERROR"]

    check()


def _json_bodies(seed: Seed) -> st.SearchStrategy[bytes]:
    query = st.one_of(
        st.text(max_size=60),
        st.sampled_from(
            [
                "{ checkoutSession(id: $id) { id } }",
                READ_QUERY,
                CANCEL_MUTATION,
                'subscription { checkoutSessionUpdated(id: "x") { id } }',
                "{ __typename }",
            ]
        ),
        JSON_VALUES,
    )
    variables = st.one_of(
        JSON_VALUES, st.fixed_dictionaries({"id": st.sampled_from(seed.session_ids)})
    )
    operation = st.fixed_dictionaries(
        {"query": query},
        optional={
            "variables": variables,
            "operationName": st.none() | st.text(max_size=10),
            "extensions": JSON_VALUES,
        },
    )
    documents = st.one_of(operation, st.lists(operation | JSON_VALUES, max_size=12), JSON_VALUES)
    return documents.map(lambda document: json.dumps(document).encode())


def test_json_bodies_of_any_shape_get_coded_errors(client: tuple[TestClient, Seed]) -> None:
    test_client, seed = client

    @FUZZ_SETTINGS
    @given(content=_json_bodies(seed))
    def check(content: bytes) -> None:
        response = test_client.post(
            "/graphql",
            content=content,
            headers={"Content-Type": "application/json", **seed.merchant.read_headers},
        )

        assert_coded(response.status_code, response.json())

    check()


def test_bodies_that_are_not_json_get_a_coded_400(client: tuple[TestClient, Seed]) -> None:
    test_client, _seed = client
    content_types = st.sampled_from(["application/json", "text/plain", "application/graphql"])

    @FUZZ_SETTINGS
    @given(content=st.binary(min_size=1, max_size=64), content_type=content_types)
    def check(content: bytes, content_type: str) -> None:
        try:
            json.loads(content)
        except ValueError:
            pass
        else:
            return  # JSON after all: the test above covers it
        response = test_client.post(
            "/graphql", content=content, headers={"Content-Type": content_type}
        )

        assert response.status_code == 400, response.text
        assert [error["extensions"]["code"] for error in response.json()["errors"]] == [
            "VALIDATION_ERROR"
        ]

    check()


_SELECTIONS = st.sampled_from(
    [
        "id",
        "__typename",
        "childSession { id }",
        "parentSession { childSession { id } }",
        "... on CheckoutSession { id }",
        "...F",
        "appearance { theme }",
        "x: id",
        "unknownField",
    ]
)


@dataclass(frozen=True)
class HostileDocument:
    """A wide, repetitive, nested or padded document, described small (its repr is what
    Hypothesis prints) and built on demand."""

    selection: str
    repeats: int
    nesting: tuple[int, ...]
    padding: int

    def text(self, session_id: str) -> str:
        body = " ".join([self.selection] * self.repeats)
        for times in self.nesting:
            body = " ".join([f"childSession {{ {body} }}"] * times)
        document = f'{{ checkoutSession(id: "{session_id}") {{ {body} }} }}'
        if "...F" in body:
            document += " fragment F on CheckoutSession { id childSession { id } }"
        return f"# {'p' * self.padding}\n{document}" if self.padding else document


HOSTILE_DOCUMENTS = st.builds(
    HostileDocument,
    selection=_SELECTIONS,
    repeats=st.integers(min_value=1, max_value=600),
    nesting=st.lists(st.integers(min_value=1, max_value=3), max_size=6).map(tuple),
    padding=st.sampled_from([0, 10, 30_000, 70_000]),
)


def test_hostile_documents_and_batches_are_answered_quickly_and_coded(
    client: tuple[TestClient, Seed],
) -> None:
    test_client, seed = client

    @FUZZ_SETTINGS
    @given(hostile=st.lists(HOSTILE_DOCUMENTS, min_size=1, max_size=4))
    def check(hostile: list[HostileDocument]) -> None:
        documents = [document.text(str(seed.sessions[Kind.OPEN].id)) for document in hostile]
        body: object = [{"query": document} for document in documents]
        if len(documents) == 1:
            body = {"query": documents[0]}
        started = time.perf_counter()
        response = test_client.post("/graphql", json=body, headers=seed.merchant.read_headers)
        elapsed = time.perf_counter() - started

        note(f"{elapsed:.3f} s")
        assert response.status_code < 500, response.text
        if response.status_code == 413:  # over the body limit: the middleware's problem+json
            assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
            return
        for answer in response.json() if isinstance(response.json(), list) else [response.json()]:
            assert_coded(response.status_code, answer)
        # Generous: each refused or validated document costs milliseconds; before the
        # limits, 600 repeated sub-selections took seconds.
        assert elapsed < 1.0 * len(documents)

    check()
