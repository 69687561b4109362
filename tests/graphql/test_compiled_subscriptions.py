"""Compiled subscriptions against Strawberry's: the same messages and the same metrics
for the same documents, events and errors (two apps, compiled and not, each on its own
SQLite file, driven alike over graphql-transport-ws), and one rendering of an event for
all the subscribers of a session."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient, WebSocketTestSession

from gql_checkout.app import create_app
from gql_checkout.graphql.compiled import Compiler
from gql_checkout.settings import Settings
from gql_checkout.storage.migrate import migrate
from testkit.clock import Clock
from testkit.documents import (
    CANCEL_MUTATION,
    CARD,
    COMPLETE_MUTATION,
    CREATE_MUTATION,
    FAIL_MUTATION,
)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PROTOCOL = ["graphql-transport-ws"]
PLAIN = """
subscription Watch($id: ID!) {
  checkoutSessionUpdated(id: $id) { id checkoutSessionStatus isExpired }
}
"""
STYLED = """
subscription Watch($id: ID!, $withMethod: Boolean = true) {
  checkoutSessionUpdated(id: $id) {
    __typename
    ...Status
    state: checkoutSessionStatus
    paymentMethod @include(if: $withMethod) { type brand __typename }
    amount @skip(if: true)
    failureReason
    ... on CheckoutSession { currency id metadata expiresAt }
  }
}
fragment Status on CheckoutSession { id checkoutSessionStatus updatedAt isExpired }
"""
LITERAL = 'subscription { checkoutSessionUpdated(id: "%s") { id checkoutSessionStatus } }'
RELATED = """
subscription Watch($id: ID!) {
  checkoutSessionUpdated(id: $id) { id childSession { id checkoutSessionStatus } }
}
"""
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@dataclass
class World:
    client: TestClient
    clock: Clock
    merchant_id: str
    api_key: str
    names: dict[str, str] = field(default_factory=dict)

    def post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    def create(self, **fields: Any) -> str:
        variables = {"input": {"amount": 500, "currency": "EUR", **fields}}
        return str(self.post(CREATE_MUTATION, variables)["createCheckoutSession"]["id"])

    def normalised(self, message: Any) -> Any:
        """Ids by order of appearance, instants as a placeholder (the apps' rows differ)."""
        text = repr(message)
        for found in _UUID.findall(text):
            self.names.setdefault(found, f"<{len(self.names)}>")
        text = _UUID.sub(lambda m: self.names[m[0]], text)
        return _STAMP.sub("<instant>", text)


@contextmanager
def _world(settings: Settings, database: Path, *, compiled: bool) -> Iterator[World]:
    clock = Clock()
    settings = replace(
        settings, database_url=f"sqlite+aiosqlite:///{database}", compiled_queries=compiled
    )

    async def prepare() -> None:
        setup = create_app(settings, clock=clock)
        await migrate(setup.state.container.engine)
        await setup.state.container.stop()

    asyncio.run(prepare())
    app = create_app(settings, clock=clock)
    app.state.container.checkout._watchers.resync_seconds = 0.05  # the clock moves, not time
    with TestClient(app) as client:
        merchant, api_key = client.portal.call(_merchant, app.state.container.merchants)  # type: ignore[union-attr]
        yield World(client, clock, str(merchant.id), api_key)


async def _merchant(service: Any) -> Any:
    return await service.create_merchant(name="Acme")


def _compiler(world: World) -> Compiler | None:
    app = world.client.app
    routes = app.routes  # type: ignore[attr-defined]
    (route,) = [r for r in routes if isinstance(r, Route) and r.path == "/graphql"]
    compiler: Compiler | None = route.endpoint.schema.compiler  # type: ignore[attr-defined]
    return compiler


Scenario = Callable[[World], list[Any]]


def _subscribe(
    world: World, ws: WebSocketTestSession, query: str, variables: dict[str, Any], **init: Any
) -> None:
    ws.send_json({"type": "connection_init", "payload": init or {"merchantId": world.merchant_id}})
    assert ws.receive_json() == {"type": "connection_ack"}
    ws.send_json(
        {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}
    )


def _until_complete(ws: WebSocketTestSession) -> list[Any]:
    messages = []
    while True:
        message = ws.receive_json()
        messages.append(message)
        if message["type"] in ("complete", "error"):
            return messages


def _lifecycle(query: str, act: Callable[[World, str], None], **variables: Any) -> Scenario:
    def scenario(world: World) -> list[Any]:
        session_id = world.create(expiresInSeconds=600, metadata={"order": "A-1"})
        with world.client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
            _subscribe(
                world,
                ws,
                query % session_id if "%s" in query else query,
                {"id": session_id, **variables} if "$id" in query else variables,
            )
            messages = [ws.receive_json()]
            act(world, session_id)
            return messages + _until_complete(ws)

    return scenario


def _refused(
    variables: Callable[[World], dict[str, Any]], query: str = PLAIN, **init: Any
) -> Scenario:
    def scenario(world: World) -> list[Any]:
        with world.client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
            _subscribe(world, ws, query, variables(world), **init)
            return _until_complete(ws)

    return scenario


def _complete(world: World, session_id: str) -> None:
    world.post(COMPLETE_MUTATION, {"id": session_id, "paymentMethod": CARD})


def _fail(world: World, session_id: str) -> None:
    world.post(FAIL_MUTATION, {"id": session_id, "reason": "declined"})


def _cancel(world: World, session_id: str) -> None:
    world.post(CANCEL_MUTATION, {"id": session_id})


def _expire(world: World, _session_id: str) -> None:
    world.clock.advance(seconds=600)


def _child_then_cancel(world: World, session_id: str) -> None:
    world.create(parentSessionId=session_id)
    _cancel(world, session_id)


def _completed_by_the_client(world: World) -> list[Any]:
    """The page completes its subscription; nothing more comes for it, and the same id
    subscribes again."""
    session_id = world.create()
    subscribe = {"type": "subscribe", "payload": {"query": PLAIN, "variables": {"id": session_id}}}
    with world.client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        _subscribe(world, ws, PLAIN, {"id": session_id})
        messages = [ws.receive_json()]
        ws.send_json({"id": "1", "type": "complete"})
        world.post(
            CREATE_MUTATION, {"input": {"amount": 1, "currency": "EUR"}}
        )  # a change elsewhere
        ws.send_json({"id": "2", "type": "subscribe", "payload": subscribe["payload"]})
        messages.append(ws.receive_json())
        ws.send_json({"id": "1", **subscribe})
        messages.append(ws.receive_json())
        _cancel(world, session_id)
        ended = [ws.receive_json() for _ in range(4)]  # next, complete; for each id
        # The two subscriptions' messages may interleave either way: each one's, in order.
        return messages + sorted(ended, key=lambda message: message["id"])


SCENARIOS: dict[str, tuple[Scenario, bool]] = {  # and whether the plan runs it
    "plain, completed": (_lifecycle(PLAIN, _complete), True),
    "styled, completed": (_lifecycle(STYLED, _complete), True),
    "styled, condition off, failed": (_lifecycle(STYLED, _fail, withMethod=False), True),
    "literal id, canceled": (_lifecycle(LITERAL, _cancel), True),
    "plain, expired": (_lifecycle(PLAIN, _expire), True),
    "a child, then canceled": (_lifecycle(PLAIN, _child_then_cancel), True),
    "completed by the client, then again": (_completed_by_the_client, True),
    "related session: Strawberry's": (_lifecycle(RELATED, _cancel), False),
    "not a uuid": (_refused(lambda w: {"id": "not-a-uuid"}), False),
    "an Int id": (_refused(lambda w: {"id": 12}), False),
    "no id": (_refused(lambda w: {}), False),
    "unknown session": (_refused(lambda w: {"id": "00000000-0000-4000-8000-000000000000"}), False),
    "another merchant's": (
        _refused(lambda w: {"id": w.create()}, merchantId="00000000-0000-4000-8000-000000000001"),
        False,
    ),
    "a bad condition variable": (
        _refused(lambda w: {"id": w.create(), "withMethod": "yes"}, STYLED),
        False,
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_compiled_and_general_subscriptions_send_alike(
    settings: Settings, tmp_path: Path, name: str
) -> None:
    scenario, planned = SCENARIOS[name]
    with (
        _world(settings, tmp_path / "c.db", compiled=True) as fast,
        _world(settings, tmp_path / "g.db", compiled=False) as general,
    ):
        compiler = _compiler(fast)
        assert compiler is not None
        assert _compiler(general) is None
        before = compiler.renderings.rendered
        answers = [world.normalised(scenario(world)) for world in (fast, general)]
        metrics = [_operations(world) for world in (fast, general)]

    assert answers[0] == answers[1]
    assert metrics[0] == metrics[1]
    assert (compiler.renderings.rendered > before) is planned


def _operations(world: World) -> list[str]:
    text = world.client.get("/metrics").text
    return [
        line
        for line in text.splitlines()
        if line.startswith("gql_checkout_graphql_operations_total{")
    ]


def test_the_subscribers_of_a_session_share_one_rendering_of_each_event(
    settings: Settings, tmp_path: Path
) -> None:
    # given: five pages subscribed to one session with one document
    with _world(settings, tmp_path / "c.db", compiled=True) as world:
        compiler = _compiler(world)
        assert compiler is not None
        session_id = world.create()
        with ExitStack() as stack:
            sockets = [
                stack.enter_context(
                    world.client.websocket_connect("/graphql", subprotocols=PROTOCOL)
                )
                for _ in range(5)
            ]
            for ws in sockets:
                _subscribe(world, ws, PLAIN, {"id": session_id})
                assert ws.receive_json()["type"] == "next"
            before = compiler.renderings.rendered

            # when: the session is canceled
            _cancel(world, session_id)
            events = [ws.receive_json() for ws in sockets]

    # then: every page got the change, rendered once
    canceled = {"id": session_id, "checkoutSessionStatus": "CANCELED", "isExpired": False}
    payloads = [event["payload"] for event in events]
    assert payloads == [{"data": {"checkoutSessionUpdated": canceled}}] * len(sockets)
    assert compiler.renderings.rendered - before == 1


@pytest.mark.parametrize("compiled", [True, False])
def test_a_compiled_subscription_holds_no_task_between_its_events(
    settings: Settings, tmp_path: Path, compiled: bool
) -> None:
    # given: one page's socket, acknowledged
    with _world(settings, tmp_path / "w.db", compiled=compiled) as world:
        ids = [world.create() for _ in range(5)]
        with world.client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
            ws.send_json({"type": "connection_init", "payload": {"merchantId": world.merchant_id}})
            assert ws.receive_json() == {"type": "connection_ack"}
            before = world.client.portal.call(_tasks)  # type: ignore[union-attr]

            # when: it subscribes to five sessions, and each has sent its first event
            for number, session_id in enumerate(ids):
                variables = {"id": session_id}
                payload = {"query": PLAIN, "variables": variables}
                ws.send_json({"id": str(number), "type": "subscribe", "payload": payload})
                assert ws.receive_json()["type"] == "next"
            waiting = world.client.portal.call(_tasks)  # type: ignore[union-attr]
            for session_id in ids:
                _cancel(world, session_id)
            ended = [ws.receive_json()["type"] for _ in range(2 * len(ids))]

    # then: each session has its watcher's task; the compiled subscriptions wait on theirs
    # as callbacks, Strawberry's each as a task of its own
    watchers = len(ids)
    assert waiting - before == watchers + (0 if compiled else len(ids))
    assert ended == ["next", "complete"] * len(ids)


async def _tasks() -> int:
    return len(asyncio.all_tasks())
