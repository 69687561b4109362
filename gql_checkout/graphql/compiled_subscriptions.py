"""Compiled subscriptions: a `checkoutSessionUpdated` event rendered once per document and
session state, and the same bytes sent to every subscriber.

Strawberry runs a subscription's selection through graphql-core for every subscriber and
every event (~200 µs each under a burst, bench.connections), and holds for each operation
an iterator, an executor and the extension hooks (~18 KiB). A subscription whose selection
is the session's own fields (no related session, profile or hcpToken: nothing more to
read) compiles as the polls do: admitted and validated by the schema's own rules, the same
Collector (fragments, @include/@skip, repeated keys). The websocket handler
(graphql/websockets.py) then starts it: the same identity check as the resolver, and the
same watch (``follow_checkout_session``, which the resolver's iterator is built on), but
as a callback of the session's watcher: between events it holds no task, no iterator, no
coroutine frame. Each event is shaped from the field table and memoized per (plan,
conditions, session, expiry), so that the twenty subscribers of one session share one
rendering.

Only success is compiled, as for the polls. Anything that would be an error before the
first event (a variable of the wrong type, a bad id, credentials, another merchant's or an
unknown session) hands the operation to Strawberry before a message is sent, and
Strawberry reports it; the identity check is not counted twice for it
(``GraphQLContext.subscriber`` remembers its answer). tests/graphql/
test_compiled_subscriptions.py holds both paths to the same messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    GraphQLError,
    OperationDefinitionNode,
)

from gql_checkout.domain.checkout_sessions import CheckoutSession
from gql_checkout.domain.fields import FIELDS_BY_NAME, Source
from gql_checkout.domain.validation import parse_uuid
from gql_checkout.graphql.compiled_selections import (
    Collector,
    Root,
    Selected,
    Shaper,
    Unsupported,
    all_static,
    booleans_of,
    ids_of,
    merged,
    variables_of,
)
from gql_checkout.graphql.context import GraphQLContext
from gql_checkout.graphql.extensions import code_errors
from gql_checkout.services.watching import Following

ROOT_FIELD = "checkoutSessionUpdated"
RENDERINGS = 4096  # events kept rendered: far more than the sessions changing at once


@dataclass(frozen=True, eq=False)
class SubscriptionPlan:
    root: Root
    variables: frozenset[str]  # every one an `ID!`
    booleans: Mapping[str, bool | None]  # of @include/@skip, with their defaults
    static: bool  # no conditions, repeated keys or fragments: the fields as they are


def compile_subscription(
    document: DocumentNode, operation: OperationDefinitionNode
) -> SubscriptionPlan:
    if operation.directives:
        raise Unsupported
    ids, booleans = variables_of(operation)
    collector = Collector.of(document)
    roots = collector.roots(operation.selection_set, on="Subscription", field=ROOT_FIELD)
    if len(roots) != 1 or roots[0].name != ROOT_FIELD or roots[0].conditions:
        raise Unsupported
    root = roots[0]
    if not all(_own(field) for field in root.fields):
        raise Unsupported  # something more to read per event: Strawberry's loaders do it
    if {root.id_variable} - {None} != ids or not collector.booleans_used <= set(booleans):
        raise Unsupported
    static = not collector.dynamic and all_static(root.fields)
    return SubscriptionPlan(root, frozenset(ids), booleans, static)


def _own(selected: Selected) -> bool:
    field = FIELDS_BY_NAME.get(selected.name)
    return field is None or field.source is Source.SESSION  # None: __typename


@dataclass(frozen=True)
class Subscribed:
    """One subscription to a plan: the id as sent, the fields its conditions select."""

    raw_id: str
    fields: tuple[Selected, ...]
    booleans: tuple[tuple[str, bool], ...]


def subscribed(plan: SubscriptionPlan, variables: Any) -> Subscribed:
    """Unsupported for variables Strawberry must report."""
    if not isinstance(variables, dict | None) or (
        (plan.variables or plan.booleans) and variables is None
    ):
        raise Unsupported
    variables = variables or {}
    booleans = booleans_of(plan.booleans, variables)
    fields = plan.root.fields if plan.static else merged(plan.root.fields, booleans)
    (raw_id,) = ids_of([plan.root], variables)
    return Subscribed(raw_id, fields, tuple(sorted(booleans.items())))


class Renderings:
    """Event payloads (``{"data": …}`` as JSON) by plan, conditions, session and expiry:
    the subscribers of one session are handed the watcher's one snapshot object, so the
    first of them renders and the others reuse it."""

    def __init__(self, size: int = RENDERINGS) -> None:
        self._size = size
        self.rendered = 0  # events rendered (the rest were shared)
        self._kept: OrderedDict[tuple[object, ...], tuple[CheckoutSession, bytes]] = OrderedDict()

    def payload(
        self,
        plan: SubscriptionPlan,
        subscription: Subscribed,
        session: CheckoutSession,
        context: GraphQLContext,
    ) -> bytes:
        now: datetime = context.now
        # isExpired is the one field of the session's own that the instant changes.
        key = (plan, subscription.booleans, id(session), session.is_expired(now))
        kept = self._kept.get(key)
        if kept is not None and kept[0] is session:
            self._kept.move_to_end(key)
            return kept[1]
        data = {plan.root.key: Shaper(context, {}).session(session, subscription.fields)}
        rendered = orjson.dumps({"data": data})
        self.rendered += 1
        self._kept[key] = (session, rendered)  # the session held: its id is not reused
        if len(self._kept) > self._size:
            self._kept.popitem(last=False)
        return rendered


async def start_subscription(
    plan: SubscriptionPlan,
    renderings: Renderings,
    operation: Any,  # Strawberry's graphql-transport-ws Operation
    context: GraphQLContext,
) -> Delivery | None:
    """Starts the operation as ``Subscription.checkout_session_updated`` would: its first
    event is on its way, the others follow the session's watcher. None (nothing sent) for
    Strawberry to run it and report the error."""
    started = time.perf_counter()
    try:
        subscription = subscribed(plan, operation.variables)
        checkout_session_id = parse_uuid(subscription.raw_id, field="id")
        merchant_id = await context.subscriber(checkout_session_id)
    except Exception:  # any error before the first event is Strawberry's to report
        return None
    delivery = Delivery(plan, subscription, renderings, operation, context, started)
    try:
        following = await context.service.follow_checkout_session(
            merchant_id=merchant_id,
            checkout_session_id=checkout_session_id,
            on_change=delivery.changed,
        )
    except Exception:  # Strawberry tries again, and reports what it meets
        return None
    delivery.begin(following)
    return delivery


class Delivery:
    """A compiled subscription once started: the watcher calls ``changed`` (no task waits
    for it), and one short task sends what changed, the newest state if a send was still
    under way, then ``complete`` after the last. ``stop``: the client's complete, or its
    socket closed."""

    __slots__ = (
        "_context",
        "_following",
        "_newest",
        "_plan",
        "_renderings",
        "_sending",
        "_started",
        "_subscription",
        "operation",
    )

    def __init__(
        self,
        plan: SubscriptionPlan,
        subscription: Subscribed,
        renderings: Renderings,
        operation: Any,
        context: GraphQLContext,
        started: float,
    ) -> None:
        self._plan = plan
        self._subscription = subscription
        self._renderings = renderings
        self.operation = operation
        self._context = context
        self._started = started
        self._following: Following | None = None
        self._newest: tuple[CheckoutSession, bool] | None = None
        self._sending: asyncio.Task[None] | None = None

    def begin(self, following: Following) -> None:
        self._following = following
        self._context.metrics.subscriptions_open.inc()
        self.changed(following.first, following.ended)

    def changed(self, session: CheckoutSession, last: bool) -> None:
        self._newest = (session, last)
        if self._sending is None and self._following is not None:
            self._sending = asyncio.get_running_loop().create_task(self._send())

    def stop(self) -> None:
        following, self._following = self._following, None
        if following is None:
            return
        following.stop()
        if self._sending is not None:
            self._sending.cancel()
        self._context.metrics.subscriptions_open.dec()

    async def _send(self) -> None:
        operation, context = self.operation, self._context
        code = None
        try:
            while self._newest is not None and self._following is not None:
                (session, last), self._newest = self._newest, None
                context.refresh()
                payload = self._renderings.payload(self._plan, self._subscription, session, context)
                await operation.send_operation_message(
                    {"id": operation.id, "type": "next", "payload": orjson.Fragment(payload)}
                )
                if last:
                    code = "OK"
                    break
        except Exception as error:  # as Strawberry answers one mid-stream
            errors = [GraphQLError(str(error), original_error=error)]
            code_errors(errors)
            code = str((errors[0].extensions or {}).get("code"))
            with contextlib.suppress(Exception):  # the socket may be what failed
                await operation.send_operation_message(
                    {
                        "id": operation.id,
                        "type": "next",
                        "payload": {"data": None, "errors": [e.formatted for e in errors]},
                    }
                )
        finally:
            self._sending = None
        if code is None:
            return  # sent all there was: the next change starts another send
        self.stop()
        with contextlib.suppress(Exception):
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        context.metrics.observe_graphql(
            operation_type="subscription", root_fields=ROOT_FIELD, code=code, started=self._started
        )
