"""Compiled mutations answer exactly as Strawberry does: a differential test.

Two apps on fresh SQLite files of their own (or on one fresh PostgreSQL database, each
with merchants of its own) and one clock: one with compiled plans, one
with every operation through Strawberry. Each scenario runs the same steps against both
(each app's own merchants and sessions), and every response must be the same: status,
content type and body, once the ids that are necessarily different (random UUIDs and the
hcpTokens signing them) are replaced by names given in order of first appearance. The
compiled app must have answered the steps that are its to answer, so the comparison is
never between two Strawberry answers; and the operation metrics must count alike.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from gql_checkout.app import create_app
from gql_checkout.graphql.compiled import Compiler
from gql_checkout.settings import Environment, Limits, Settings
from gql_checkout.storage.migrate import migrate
from testkit.clock import Clock
from testkit.merchants import TEST_SECRET

pytestmark = pytest.mark.anyio

CREATE = """mutation Create($input: CreateCheckoutSessionInput!) {
  createCheckoutSession(input: $input) {
    id checkoutSessionStatus isExpired createdAt expiresAt updatedAt amount currency
    merchantReference paymentMethod { type } metadata failureReason parentSession { id }
    childSession { id } appearance { theme } cardCategories hcpToken __typename
  }
}"""
CREATE_INLINE = """mutation {
  made: createCheckoutSession(input: {amount: 1999, currency: "EUR", metadata: {a: "b"},
    merchantReference: "order-1", expiresInSeconds: 600}) {
    id ...Parts s: checkoutSessionStatus amount @include(if: true) currency @skip(if: true)
  }
}
fragment Parts on CheckoutSession { checkoutSessionStatus __typename metadata }"""
CREATE_FLAGGED = """mutation($input: CreateCheckoutSessionInput!, $flag: Boolean!) {
  createCheckoutSession(input: $input) {
    id amount @include(if: $flag) ... on CheckoutSession @skip(if: $flag) { currency }
    parentSession { id childSession { id } } id
  }
}"""
CANCEL = """mutation Cancel($id: ID!) {
  cancelCheckoutSession(id: $id) {
    id checkoutSessionStatus childSession { id checkoutSessionStatus }
  }
}"""
CANCEL_INLINE = """mutation { c: cancelCheckoutSession(id: "%s") { id __typename } }"""
COMPLETE = """mutation Complete($id: ID!, $method: PaymentMethodInput!) {
  completeCheckoutSession(id: $id, paymentMethod: $method) {
    id checkoutSessionStatus paymentMethod { type brand last4 __typename }
    parentSession { id checkoutSessionStatus }
  }
}"""
FAIL = """mutation Fail($id: ID!, $reason: String) {
  failCheckoutSession(id: $id, reason: $reason) { id checkoutSessionStatus failureReason }
}"""
FAIL_NO_REASON = """mutation($id: ID!) { failCheckoutSession(id: $id) { failureReason id } }"""
# Left to Strawberry: two root fields, a directive on the root field, a mutation the
# plans do not cover.
TWO_WRITES = """mutation($id: ID!) {
  a: cancelCheckoutSession(id: $id) { id } b: cancelCheckoutSession(id: $id) { id }
}"""
DIRECTED = """mutation($id: ID!) { cancelCheckoutSession(id: $id) @include(if: true) { id } }"""
EXPIRE = """mutation($id: ID!) { expireCheckoutSession(id: $id) { id checkoutSessionStatus } }"""

EUR = {"amount": 1999, "currency": "EUR"}
CARD = {"type": "CARD", "brand": "VISA", "last4": "4242"}
GRAPHQL_RESPONSE = {"Accept": "application/graphql-response+json, application/json;q=0.9"}


@dataclass(frozen=True)
class Step:
    query: str
    variables: Any = None
    as_: str = "merchant"  # merchant, other (the other merchant's key), anonymous, bad
    save: str | None = None  # the name the created session's id is kept under
    compiled: bool = True  # whether the compiled app's plan must answer it
    accept: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    app: Starlette
    client: httpx.AsyncClient
    keys: dict[str, str]
    sessions: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # id or token → its name
    answers: list[tuple[int, str, str]] = field(default_factory=list)

    def resolve(self, value: Any) -> Any:
        """``"@name"`` placeholders → this world's session id of that name."""
        if isinstance(value, str) and value.startswith("@"):
            return self.sessions[value[1:]]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    async def send(self, step: Step) -> tuple[int, str, str]:
        headers = {"Content-Type": "application/json", **step.accept}
        if step.as_ in self.keys:
            headers["Authorization"] = f"Bearer {self.keys[step.as_]}"
        elif step.as_ == "bad":
            headers["Authorization"] = "Bearer not-a-key"
        query = step.query
        if "%s" in query:
            query = query % self.sessions["open"]
        body = {"query": query, "variables": self.resolve(step.variables)}
        response = await self.client.post("/graphql", content=orjson.dumps(body), headers=headers)
        if step.save is not None:
            self.sessions[step.save] = response.json()["data"]["createCheckoutSession"]["id"]
        return (
            response.status_code,
            response.headers["content-type"],
            self.normalised(response.text),
        )

    def normalised(self, text: str) -> str:
        for pattern in (_TOKEN, _UUID):
            for found in pattern.findall(text):
                self.names.setdefault(found, f"<{len(self.names)}>")
        text = _UUID.sub(lambda m: self.names[m[0]], _TOKEN.sub(lambda m: self.names[m[0]], text))
        # The wait is wall-clock time (the limiter's window), so the two apps may be a
        # second apart.
        return _RETRY_SECONDS.sub("<s>", text)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TOKEN = re.compile(r'(?<="hcpToken":")[^"]+')
_RETRY_SECONDS = re.compile(r"(?<=retry in )[1-9][0-9]*(?= s\.)")


def _compiler(app: Starlette) -> Compiler | None:
    (route,) = [r for r in app.routes if isinstance(r, Route) and r.path == "/graphql"]
    compiler: Compiler | None = route.endpoint.schema.compiler  # type: ignore[attr-defined]
    return compiler


async def _world(settings: Settings, clock: Clock) -> World:
    app = create_app(settings, clock=clock)
    await migrate(app.state.container.engine)
    keys = {}
    for name in ("merchant", "other"):
        _, keys[name] = await app.state.container.merchants.create_merchant(name=name)
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    return World(app, client, keys)


def _settings(database_url: str, *, compiled: bool, writes: str | None) -> Settings:
    settings = Settings(
        database_url=database_url,
        environment=Environment.DEVELOPMENT,
        hcp_secrets=(TEST_SECRET,),
        compiled_queries=compiled,
    )
    return replace(settings, limits=replace(Limits(), writes_per_merchant=writes))


async def _pair(
    database_urls: tuple[str, str], writes: str | None = None
) -> AsyncIterator[tuple[World, World]]:
    """The compiled app and the general one; on one PostgreSQL database, each app with
    merchants (and so sessions and idempotency keys) of its own."""
    clock = Clock()
    fast = await _world(_settings(database_urls[0], compiled=True, writes=writes), clock)
    general = await _world(_settings(database_urls[1], compiled=False, writes=writes), clock)
    assert _compiler(fast.app) is not None
    assert _compiler(general.app) is None
    try:
        yield fast, general
    finally:
        for world in (fast, general):
            await world.client.aclose()
            await world.app.state.container.stop()


def _urls(database_url: str, tmp_path: Path) -> tuple[str, str]:
    if database_url.startswith("sqlite"):
        return (
            f"sqlite+aiosqlite:///{tmp_path / 'c.db'}",
            f"sqlite+aiosqlite:///{tmp_path / 'g.db'}",
        )
    return database_url, database_url


@pytest.fixture
async def pair(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[World, World]]:
    async for worlds in _pair(_urls(database_url, tmp_path)):
        yield worlds


async def _run(fast: World, general: World, steps: list[Step]) -> None:
    compiler = _compiler(fast.app)
    assert compiler is not None
    for number, step in enumerate(steps):
        before = compiler.written
        answers = await fast.send(step), await general.send(step)
        assert answers[0] == answers[1], (number, step)
        taken = compiler.written - before
        assert taken == int(step.compiled), (number, step, answers[0])


def _raised(record: logging.LogRecord) -> str | None:
    return type(record.exc_info[1]).__name__ if record.exc_info else None


async def _run_one(world: World, step: Step) -> None:
    world.answers.append(await world.send(step))


async def _metrics(world: World) -> list[str]:
    response = await world.client.get("/metrics")
    return [line for line in response.text.splitlines() if "graphql_operations_total{" in line]


LIFECYCLES = [
    Step(CREATE, {"input": EUR}, save="open"),
    Step(CREATE, {"input": {**EUR, "parentSessionId": "@open"}}, save="child"),
    Step(CREATE_FLAGGED, {"input": {**EUR, "parentSessionId": "@open"}, "flag": True}),
    Step(CREATE_FLAGGED, {"input": EUR, "flag": False}),
    Step(CREATE_INLINE),
    Step(CREATE_INLINE, accept=GRAPHQL_RESPONSE),
    Step(COMPLETE, {"id": "@child", "method": CARD}),
    Step(COMPLETE, {"id": "@child", "method": CARD}),  # not open any more
    Step(CREATE, {"input": EUR}, save="failing"),
    Step(FAIL, {"id": "@failing", "reason": "declined"}),
    Step(FAIL, {"id": "@failing"}, accept=GRAPHQL_RESPONSE),
    Step(CREATE, {"input": EUR}, save="open"),
    Step(FAIL_NO_REASON, {"id": "@open"}),
    Step(CREATE, {"input": EUR}, save="open"),
    Step(CANCEL, {"id": "@open"}),
    Step(CANCEL, {"id": "@open"}),  # cancel twice: an invalid transition
    Step(CANCEL_INLINE),
    Step(CREATE, {"input": EUR}, save="open"),
    Step(CANCEL_INLINE),
]
VALIDATION = [
    Step(CREATE, {"input": {**EUR, "amount": 0}}),
    Step(CREATE, {"input": {**EUR, "currency": "XXX"}}, accept=GRAPHQL_RESPONSE),
    Step(CREATE, {"input": {**EUR, "metadata": {"k": 1}}}),
    Step(CREATE, {"input": {**EUR, "metadata": [1]}}),
    Step(CREATE, {"input": {**EUR, "amount": -1, "currency": "eur", "expiresInSeconds": 1}}),
    Step(CREATE, {"input": {**EUR, "parentSessionId": "not-a-uuid"}}),
    Step(CREATE, {"input": {**EUR, "idempotencyKey": ""}}),
    Step(CREATE, {"input": EUR}, save="open"),
    Step(COMPLETE, {"id": "@open", "method": {"type": "CASH"}}),
    Step(COMPLETE, {"id": "@open", "method": {**CARD, "last4": "42"}}),
    Step(FAIL, {"id": "@open", "reason": "x" * 501}),
    Step(CANCEL, {"id": "not-a-uuid"}),
    Step(CANCEL, {"id": "00000000-0000-4000-8000-000000000000"}),  # not found
    # Variables that do not coerce: Strawberry's to report, before anything runs.
    Step(CREATE, {"input": {**EUR, "amount": "1999"}}, compiled=False),
    Step(CREATE, {"input": {"currency": "EUR"}}, compiled=False),
    Step(CREATE, {"input": {**EUR, "amount": 2**40}}, compiled=False, accept=GRAPHQL_RESPONSE),
    Step(CREATE, None, compiled=False),
    Step(CREATE, {"input": {**EUR, "nope": 1}}, compiled=False),
    Step(CREATE_FLAGGED, {"input": EUR, "flag": None}, compiled=False),
    Step(COMPLETE, {"id": "@open", "method": {"brand": "VISA"}}, compiled=False),
    Step(CANCEL, {"id": 12}, compiled=True),  # an Int is an ID: coerced, then refused
    Step(CANCEL, {"id": True}, compiled=False),
]
CREDENTIALS = [
    Step(CREATE, {"input": EUR}, save="open"),
    Step(CANCEL, {"id": "@open"}, as_="other"),  # another merchant's session
    Step(COMPLETE, {"id": "@open", "method": CARD}, as_="other", accept=GRAPHQL_RESPONSE),
    Step(CREATE, {"input": EUR}, as_="anonymous"),
    Step(CANCEL, {"id": "@open"}, as_="bad"),
    Step(FAIL, {"id": "@open"}, as_="anonymous", accept=GRAPHQL_RESPONSE),
]
IDEMPOTENCY = [
    Step(CREATE, {"input": {**EUR, "idempotencyKey": "k-1"}}, save="open"),
    Step(CREATE, {"input": {**EUR, "idempotencyKey": "k-1"}}),  # replayed
    Step(CREATE_INLINE),
    Step(CREATE, {"input": {**EUR, "amount": 2000, "idempotencyKey": "k-1"}}),  # reused
    Step(CREATE, {"input": {**EUR, "idempotencyKey": "k-1"}}, as_="other"),  # its own key
]
STRAWBERRYS = [
    Step(CREATE, {"input": EUR}, save="open"),
    Step(TWO_WRITES, {"id": "@open"}, compiled=False),
    Step(DIRECTED, {"id": "@open"}, compiled=False),
    Step(EXPIRE, {"id": "@open"}, compiled=False),
    Step(CANCEL, {"id": "@open"}, compiled=True),
]


@pytest.mark.parametrize(
    "steps",
    [LIFECYCLES, VALIDATION, CREDENTIALS, IDEMPOTENCY, STRAWBERRYS],
    ids=["lifecycles", "validation", "credentials", "idempotency", "left-to-strawberry"],
)
async def test_compiled_and_general_mutations_answer_alike(
    pair: tuple[World, World], steps: list[Step]
) -> None:
    fast, general = pair

    await _run(fast, general, steps)

    assert await _metrics(fast) == await _metrics(general)
    assert any('"mutation"' in line for line in await _metrics(fast))


async def test_the_write_limit_counts_compiled_mutations_alike(
    database_url: str, tmp_path: Path
) -> None:
    # given: three writes a minute for each merchant
    async for fast, general in _pair(_urls(database_url, tmp_path), "3/minute"):
        # when: the fourth write comes (a plan's three, then one plan and one Strawberry)
        steps = [
            Step(CREATE, {"input": EUR}, save="open"),
            Step(CREATE_INLINE),
            Step(CANCEL, {"id": "@open"}),
            Step(CREATE, {"input": EUR}, compiled=False),  # refused before a plan runs
            Step(TWO_WRITES, {"id": "@open"}, compiled=False),
            Step(CREATE, {"input": EUR}, as_="other"),
        ]
        # then: both refuse it alike
        await _run(fast, general, steps)
        assert await _metrics(fast) == await _metrics(general)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_unexpected_failure_is_masked_and_logged_alike(
    pair: tuple[World, World], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given: the sessions' table gone from under both apps (the merchants' is still there)
    fast, general = pair
    for name in ("c.db", "g.db"):
        with sqlite3.connect(tmp_path / name) as database:
            database.execute("ALTER TABLE checkout_sessions RENAME TO gone")
    logged = []

    # when
    for world in (fast, general):
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            await _run_one(world, Step(CREATE, {"input": EUR}))
        logged.append([(r.name, r.getMessage(), _raised(r)) for r in caplog.records])

    # then
    assert fast.answers == general.answers
    assert '"code":"INTERNAL_ERROR"' in fast.answers[0][2]
    assert "An unexpected error occurred." in fast.answers[0][2]
    assert logged[0] == logged[1]
    assert [name for name, _, _ in logged[0]] == ["gql_checkout.graphql.extensions"]
    compiler = _compiler(fast.app)
    assert compiler is not None
    assert compiler.written == 1
    assert await _metrics(fast) == await _metrics(general)
