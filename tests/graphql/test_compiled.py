"""Compiled plans answer exactly as Strawberry does: a differential test.

Two apps share one seeded SQLite file and one clock: one with compiled plans, one with
every operation through Strawberry. Hypothesis writes `checkoutSession` documents (valid
and invalid: unknown fields, missing sub-selections, conflicting aliases, fragments,
directives, deep nesting), variables of every type, ids of sessions in every state, and
credentials that must be refused; each request goes to both apps and the two responses
must be the same, byte for byte (status, content type, body).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis_graphql import queries
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from gql_checkout.app import create_app
from gql_checkout.domain.fields import SESSION_FIELDS as TABLE
from gql_checkout.domain.fields import Source, value_class
from gql_checkout.graphql.compiled import Compiler
from gql_checkout.graphql.compiled_mutations import MutationPlan
from gql_checkout.graphql.schema import build_schema
from gql_checkout.settings import Settings
from testkit.clock import Clock
from tests.fuzzing import FUZZ_SETTINGS, Kind, Seed, seeded_app, unlimited
from tests.graphql.test_fuzz_graphql import SDL

# The plans do not depend on the store: SQLite is enough.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# The table's scalar fields (objects and related sessions are selected below).
SESSION_FIELDS = [
    *(f.name for f in TABLE if f.source is not Source.RELATED and value_class(f.type) is None),
    "__typename",
]
OBJECT_SELECTIONS = [
    "paymentMethod { type brand last4 __typename }",
    "paymentMethod { last4 }",
    "appearance { theme primaryColor backgroundColor textColor fontFamily borderRadiusPx"
    " logoUrl __typename }",
    "appearance { theme }",
    "appearance",  # no sub-selection: invalid
    "appearance { colour }",  # no such field: invalid
]
# The styles clients send: fragments (Apollo's and Relay's), conditions on a literal or on
# the `$flag` variable, the same field again under one key, `__typename` inside fragments.
CLIENT_STYLES = [
    "...Parts",
    "... on CheckoutSession { checkoutSessionStatus __typename }",
    "... { id }",
    "id @include(if: $flag)",
    "amount @skip(if: $flag)",
    "currency @include(if: true) @skip(if: false)",
    "... on CheckoutSession @skip(if: $flag) { isExpired }",
    "...Parts @include(if: $flag)",
    "paymentMethod { ... on PaymentMethod { type } brand }",
    "appearance { theme ...Look }",
]
FRAGMENTS = {
    "...Parts": "fragment Parts on CheckoutSession { id checkoutSessionStatus __typename"
    " childSession { id } }",
    "...Look": "fragment Look on Appearance { primaryColor __typename }",
}
# What may precede the variable definitions, and how they may be declared.
OPERATION_NAMES = ["query", "query", "query Poll", "query Other", ""]
DECLARED_AS = ["ID!"] * 20 + ["ID", "String!", "ID! = 1", "[ID!]!"]


def _selection(depth: int, *, clean: bool) -> st.SearchStrategy[str]:
    """What plans compile; unless ``clean``, now and then something they leave alone."""
    valid: list[st.SearchStrategy[str]] = [
        st.sampled_from(SESSION_FIELDS),
        st.sampled_from(SESSION_FIELDS),
        st.sampled_from(OBJECT_SELECTIONS[:4]),
        st.sampled_from(CLIENT_STYLES),
    ]
    others = st.sampled_from(
        [
            *OBJECT_SELECTIONS[4:],
            "nope",
            "id(x: 1)",
            "...on CheckoutSession { id }",
            "id @skip(if: true)",
            "amount @include(if: true)",
        ]
    )
    if depth > 0:
        nested = st.builds(
            "{} {{ {} }}".format,
            st.sampled_from(["childSession", "parentSession"]),
            st.deferred(lambda: _selection(depth - 1, clean=clean)),
        )
        valid += [nested, nested]
    if clean:
        fields = st.one_of(*valid)
        # Distinct fields, aliases that do not collide.
        return st.lists(fields, min_size=1, max_size=6, unique=True).map(
            lambda chosen: " ".join(
                f"f{n}: {field}" if n % 3 == 2 else field for n, field in enumerate(chosen)
            )
        )
    aliased = st.builds(
        lambda alias, field: f"{alias}: {field}" if alias else field,
        st.sampled_from([None] * 6 + ["a", "b", "id"]),
        st.one_of(*valid, *valid, others),
    )
    return st.lists(aliased, min_size=1, max_size=6).map(" ".join)


def _alias_every_third(fields: list[str]) -> str:
    return " ".join(f"f{n}: {field}" if n % 3 == 2 else field for n, field in enumerate(fields))


@st.composite
def _operation(draw: st.DrawFn, seed: Seed, *, clean: bool) -> str:
    """Root fields first; then a head that declares the variables they use (usually
    as ID!, sometimes otherwise, sometimes one too many or one too few)."""
    literal_ids = [*seed.session_ids, "not-a-uuid"]
    variable = st.sampled_from(["$id", "$id", "$id", "$other"])
    literal = st.sampled_from(literal_ids).map(json.dumps)
    odd = st.sampled_from(["42", "null", "true"])
    arguments = st.one_of(variable, literal) if clean else st.one_of(*[variable] * 6, odd, literal)
    roots, used = [], set()
    for n in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        argument = draw(arguments)
        if argument.startswith("$"):
            used.add(argument[1:])
        alias = draw(st.sampled_from([f"s{n}: "] * 6 + ["", "s: "]))
        selection = draw(_selection(3, clean=clean))
        roots.append(f"{alias}checkoutSession(id: {argument}) {{ {selection} }}")
    if draw(st.sampled_from([False] * 4 + [True])):
        roots.append(draw(st.sampled_from(["__typename", "...Root", "t: __typename"])))
    declared = used
    if not clean:
        declared = used ^ draw(st.sampled_from([set()] * 8 + [{"id"}, {"other"}]))
    types = [draw(st.sampled_from(DECLARED_AS if not clean else ["ID!"])) for _ in declared]
    definitions = [f"${n}: {t}" for n, t in zip(sorted(declared), types, strict=True)]
    text = " ".join(roots)
    if "$flag" in text:
        definitions.append(draw(st.sampled_from(["$flag: Boolean!", "$flag: Boolean = true"])))
    head = draw(st.sampled_from(OPERATION_NAMES))
    if definitions:
        head = f"{head or 'query'}({', '.join(definitions)})"
    document = f"{head} {{ {text} }}"
    for spread, fragment in FRAGMENTS.items():
        if spread in text:
            document += " " + fragment
    if "...Root" in text:
        document += " fragment Root on Query { __typename }"
    if draw(st.sampled_from([False] * 5 + [True])):
        document += " query Other { __typename }"  # operationName must then choose
    return document


Request = tuple[str, Any, str | None, dict[str, str]]  # query, variables, operationName, headers


def _requests(seed: Seed) -> st.SearchStrategy[Request]:
    """Half of them the reads a page makes (a plan's to answer, mostly); half anything."""
    readable = [str(seed.sessions[kind].id) for kind in seed.sessions if kind.read_status == 200]
    usual = st.tuples(
        _operation(seed, clean=True),
        st.fixed_dictionaries(
            {
                "id": st.sampled_from(readable),
                "other": st.sampled_from(readable),
                "flag": st.booleans(),
            }
        ),
        st.sampled_from([None] * 4 + ["Poll", "Other"]),
        st.builds(lambda accept: {**seed.merchant.read_headers, **accept}, ACCEPTS),
    )
    generic = queries(SDL.read_text()).map(str)  # anything the schema allows
    anything = st.tuples(
        st.one_of(_operation(seed, clean=True), _operation(seed, clean=False), generic),
        _variables(seed),
        st.sampled_from([None] * 6 + ["Poll", "Other"]),
        _headers(seed),
    )
    return st.one_of(usual, anything)


def _variables(seed: Seed) -> st.SearchStrategy[Any]:
    value: st.SearchStrategy[Any] = st.one_of(
        st.sampled_from(seed.session_ids),
        st.uuids().map(str),
        st.sampled_from(["not-a-uuid", 42, 4.2, None, True, [], {}]),
    )
    flag = st.one_of(st.booleans(), st.sampled_from([None, "true", 1]))
    variables = st.fixed_dictionaries({"id": value, "other": value, "flag": flag})
    return st.one_of(
        variables,
        variables,
        st.fixed_dictionaries({}, optional={"id": value, "other": value, "flag": flag}),
        st.sampled_from([None, [], "x"]),
    )


# What clients send beside the document: Apollo Client 4's extensions, urql's Accept.
EXTENSIONS = st.sampled_from(
    [None, None, {"clientLibrary": {"name": "@apollo/client", "version": "4.0.0"}}, {}]
)
ACCEPTS = st.sampled_from(
    [
        {},
        {"Accept": "application/json"},
        {"Accept": "application/graphql-response+json, application/json;q=0.9"},
        {
            "Accept": "application/graphql-response+json, application/json,"
            " text/event-stream, multipart/mixed"
        },
        {"Accept": "*/*"},
    ]
)


def _headers(seed: Seed) -> st.SearchStrategy[dict[str, str]]:
    merchant, other = seed.merchant, seed.other_merchant
    return st.sampled_from(
        [
            {"X-Merchant-Id": merchant.merchant_id},
            {"X-Merchant-Id": other.merchant_id},
            {"Authorization": f"Bearer {merchant.api_key}"},
            {"X-Merchant-Id": merchant.merchant_id, "Authorization": f"Bearer {other.api_key}"},
            {"Authorization": "Bearer not-a-key"},
            {"X-Merchant-Id": "not-a-uuid"},
            {},
        ]
    )


def _compiler(app: Starlette) -> Compiler | None:
    (route,) = [r for r in app.routes if isinstance(r, Route) and r.path == "/graphql"]
    compiler: Compiler | None = route.endpoint.schema.compiler  # type: ignore[attr-defined]
    return compiler


@pytest.fixture
def both(settings: Settings, clock: Clock) -> Iterator[tuple[TestClient, TestClient, Seed]]:
    compiled_app, seed = seeded_app(settings, clock)
    general_app = create_app(unlimited(replace(settings, compiled_queries=False)), clock=clock)
    assert _compiler(compiled_app) is not None
    assert _compiler(general_app) is None
    with (
        TestClient(compiled_app, raise_server_exceptions=False) as compiled,
        TestClient(general_app, raise_server_exceptions=False) as general,
    ):
        yield compiled, general, seed


def _answers(client: TestClient, body: bytes, headers: dict[str, str]) -> tuple[Any, ...]:
    response = client.post(
        "/graphql", content=body, headers={"Content-Type": "application/json", **headers}
    )
    return response.status_code, response.headers["content-type"], response.content


POLL = "query Poll($id: ID!) { checkoutSession(id: $id) { checkoutSessionStatus } }"
FULL = (
    "query($id: ID!) { checkoutSession(id: $id) { id checkoutSessionStatus isExpired"
    " expiresAt paymentMethod { type brand last4 } childSession { id checkoutSessionStatus }"
    " parentSession { id } appearance { theme primaryColor logoUrl } cardCategories hcpToken } }"
)


@sqlite_only
def test_compiled_and_general_paths_answer_alike(
    both: tuple[TestClient, TestClient, Seed],
) -> None:
    compiled, general, seed = both
    compiler = _compiler(compiled.app)  # type: ignore[arg-type]
    assert compiler is not None
    open_id = str(seed.sessions[Kind.OPEN].id)

    @FUZZ_SETTINGS
    @given(request=_requests(seed), extensions=EXTENSIONS)
    @example(request=(POLL, {"id": open_id}, None, {}), extensions=None)
    @example(request=(POLL, {"id": open_id}, None, seed.merchant.read_headers), extensions=None)
    def check(request: Request, extensions: dict[str, Any] | None) -> None:
        query, variables, operation_name, headers = request
        body = {"query": query, "variables": variables, "operationName": operation_name}
        if extensions is not None:
            body["extensions"] = extensions
        encoded = json.dumps(body).encode()

        assert _answers(compiled, encoded, headers) == _answers(general, encoded, headers)

    check()
    # The comparison above is vacuous unless plans answered some of the requests.
    assert compiler.answered > 0


@sqlite_only
@pytest.mark.parametrize("query", [POLL, FULL], ids=["poll", "full"])
def test_every_seeded_session_reads_alike(
    both: tuple[TestClient, TestClient, Seed], query: str
) -> None:
    compiled, general, seed = both
    compiler = _compiler(compiled.app)  # type: ignore[arg-type]
    assert compiler is not None
    assert compiler.plan(query, None) is not None
    before = compiler.answered

    for checkout_session_id in seed.session_ids:
        for headers in ({"X-Merchant-Id": seed.merchant.merchant_id}, {}):
            body = json.dumps({"query": query, "variables": {"id": checkout_session_id}})
            assert _answers(compiled, body.encode(), headers) == _answers(
                general, body.encode(), headers
            )

    # The open, completed, failed and paid sessions are the compiled path's to answer.
    assert compiler.answered - before >= 6


def test_documents_that_plans_leave_to_strawberry() -> None:
    compiler = build_schema().compiler
    assert compiler is not None
    assert compiler.plan(POLL, None) is not None
    assert compiler.plan(POLL, "Other") is None  # Strawberry reports the unknown operation
    # A hot write's plan is a mutation's (tests/graphql/test_compiled_mutations.py).
    assert isinstance(
        compiler.plan('mutation { cancelCheckoutSession(id: "x") { id } }', None), MutationPlan
    )
    for query in [
        "query($id: ID) { checkoutSession(id: $id) { id } }",
        "query($id: ID!) { checkoutSession(id: $id) { nope } }",
        "query($id: ID!, $f: String) { checkoutSession(id: $id) { id @include(if: $f) } }",
        "query A { __typename } query B { __typename }",  # no operationName: a request error
        'mutation { expireCheckoutSession(id: "x") { id } }',  # not one of the hot writes
        "{ __schema { types { name } } }",
    ]:
        assert compiler.plan(query, None) is None, query


def test_the_documents_clients_send_compile() -> None:
    compiler = build_schema().compiler
    assert compiler is not None
    documents = {
        None: [
            "query($id: ID!) { checkoutSession(id: $id) { ...F } }"
            " fragment F on CheckoutSession { id }",
            "query($id: ID!) { checkoutSession(id: $id) { id @skip(if: false) } }",
            "query($id: ID!) { checkoutSession(id: $id) { a: id a: id } }",
            "query($id: ID!, $f: Boolean!) { __typename checkoutSession(id: $id) {"
            " ... on CheckoutSession @include(if: $f) { id __typename } } }",
        ],
        "B": ["query A { __typename } query B($id: ID!) { checkoutSession(id: $id) { id } }"],
    }
    for operation_name, texts in documents.items():
        for query in texts:
            assert compiler.plan(query, operation_name) is not None, query
