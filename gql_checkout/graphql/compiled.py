"""Compiled polls: the hot `checkoutSession` queries run by a plan instead of the executor.

Payment pages send the same few documents again and again, and even with every cache
hitting, Strawberry's execute costs ~0.3 ms a request. A document is compiled once, when
it is a query whose root fields are `checkoutSession(id: ...)` (or `__typename`)
selecting the session's fields, in any of the styles clients send: named and inline
fragments, `__typename` anywhere, several operations with `operationName` choosing one,
`@include`/`@skip` on literals or `Boolean` variables, fields repeated under one key.
It is admitted, parsed and validated by the schema's own rules exactly as Strawberry
would. Fragments are spread at compile time; conditions are evaluated, and repeated keys
merged, per request, as the executor's CollectFields does (a plain document skips that).
The plan then reads through the same service calls and the same batched statements, and
shapes the response itself.

Only success is compiled. Whatever would make an error (a variable of the wrong type, an
unknown session, another merchant's, an expired one, a rate limit) sends the request
down the general path, and Strawberry answers it: it stays the one source of every error.
tests/graphql/test_compiled.py proves both paths give byte-identical responses.

The hot mutations compile too (graphql/compiled_mutations.py): the compiler hands back
their plans, which answer their own errors, since a write cannot be run a second time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
from graphql import (
    DocumentNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
)
from strawberry.schema.schema import validate_document

from gql_checkout.domain.checkout_sessions import CheckoutSession
from gql_checkout.domain.errors import GatewayError
from gql_checkout.domain.validation import parse_uuid
from gql_checkout.graphql.compiled_mutations import MutationPlan, compile_mutation
from gql_checkout.graphql.compiled_selections import (
    Collector,
    Root,
    Shaper,
    Unsupported,
    all_static,
    booleans_of,
    ids_of,
    merged,
    variables_of,
)
from gql_checkout.graphql.compiled_subscriptions import (
    Renderings,
    SubscriptionPlan,
    compile_subscription,
)
from gql_checkout.graphql.context import GraphQLContext
from gql_checkout.graphql.documents import Admitted, Documents

MAX_PLANS = 256  # distinct documents kept compiled; a client sending more gets the general path


@dataclass(frozen=True)
class Plan:
    roots: tuple[Root, ...]
    variables: frozenset[str]  # every one an `ID!`
    # `Boolean` variables of @include/@skip, and their defaults (None: none).
    booleans: Mapping[str, bool | None]
    # Without conditions, repeated response keys or fragments, the roots are the answer's
    # shape as they are; else each request evaluates and merges them (as CollectFields).
    static: bool
    cost: int  # distinct `checkoutSession` root keys: what the rate limit counts


AnyPlan = Plan | MutationPlan | SubscriptionPlan


class Compiler:
    """Documents to plans, for one schema, its validation rules and its token limit."""

    def __init__(self, schema: Any, rules: Sequence[Any], documents: Documents) -> None:
        self._schema = schema
        self._rules = tuple(rules)
        self._documents = documents
        # Plans by the document's digest and the operation's name: never by the text.
        self._plans: OrderedDict[tuple[bytes, str | None], AnyPlan | None] = OrderedDict()
        self.answered = 0  # requests a plan answered (the rest went to Strawberry)
        self.written = 0  # mutations a plan answered
        self.renderings = Renderings()  # subscription events, shared by their subscribers

    def plan(self, query: str, operation_name: str | None) -> AnyPlan | None:
        """The plan of a document admitted and valid, or None (Strawberry answers)."""
        try:
            admitted = self._documents.admit(query)
        except GraphQLError:
            return None
        return self.plan_for(admitted, operation_name)

    def plan_for(self, admitted: Admitted, operation_name: str | None) -> AnyPlan | None:
        """``plan`` for a document the caller has admitted already."""
        key = (admitted.digest, operation_name)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        plan = self._plan(admitted, operation_name)
        self._plans[key] = plan
        if len(self._plans) > MAX_PLANS:
            self._plans.popitem(last=False)
        return plan

    def _plan(self, admitted: Admitted, operation_name: str | None) -> AnyPlan | None:
        validation = (admitted.digest, self._rules)
        errors = self._documents.validated(validation)
        if errors is None:
            errors = validate_document(self._schema, admitted.document, self._rules)
            self._documents.remember_validation(validation, errors)
        if errors:
            return None
        try:
            operation = _operation(admitted.document, operation_name)
            if operation.operation is OperationType.MUTATION:
                return compile_mutation(self._schema, admitted.document, operation)
            if operation.operation is OperationType.SUBSCRIPTION:
                return compile_subscription(admitted.document, operation)
            return _compile(admitted.document, operation)
        except Unsupported:
            return None


def _operation(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        if len(operations) != 1:
            raise Unsupported  # the admission reports the missing choice
        (operation,) = operations
    else:
        named = [o for o in operations if o.name and o.name.value == operation_name]
        if not named:
            raise Unsupported
        operation = named[0]
    return operation


def _compile(document: DocumentNode, operation: OperationDefinitionNode) -> Plan:
    if operation.operation is not OperationType.QUERY or operation.directives:
        raise Unsupported
    ids, booleans = variables_of(operation)
    collector = Collector.of(document)
    roots = tuple(collector.roots(operation.selection_set))
    used = {root.id_variable for root in roots} - {None}
    if used != ids or not collector.booleans_used <= set(booleans):
        raise Unsupported  # a declared variable no root uses (or one not declared)
    keys = [root.key for root in roots]
    static = not collector.dynamic and len(set(keys)) == len(keys)
    cost = len({root.key for root in roots if root.name == "checkoutSession"})
    return Plan(roots, frozenset(ids), booleans, static and all_static(roots), cost)


# --- running --------------------------------------------------------------------------------


def request_body(body: bytes, content_type: str | None) -> tuple[str, str | None, Any]:
    """(query, operationName, variables) of a single-operation JSON body (its
    ``extensions``, such as Apollo Client's ``clientLibrary``, change nothing here; a
    persisted query's hash is left to the general path)."""
    if content_type is None or not content_type.startswith("application/json"):
        raise Unsupported
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Unsupported from None
    if not isinstance(data, dict) or not set(data) <= _BODY_KEYS:
        raise Unsupported
    extensions = data.get("extensions")
    if extensions is not None and (
        not isinstance(extensions, dict) or "persistedQuery" in extensions
    ):
        raise Unsupported
    query, operation_name = data.get("query"), data.get("operationName")
    if not isinstance(query, str) or not isinstance(operation_name, str | None):
        raise Unsupported
    return query, operation_name, data.get("variables")


_BODY_KEYS = frozenset({"query", "variables", "operationName", "extensions"})


async def run_plan(plan: Plan, variables: Any, context: GraphQLContext) -> dict[str, Any]:
    """The plan's response (``{"data": ...}``), or Unsupported for anything but a plain
    success."""
    started = time.perf_counter()
    if not isinstance(variables, dict | None) or (
        (plan.variables or plan.booleans) and variables is None
    ):
        raise Unsupported
    variables = variables or {}
    all_roots = plan.roots
    if not plan.static:
        all_roots = merged(plan.roots, booleans_of(plan.booleans, variables))
    roots_read = [root for root in all_roots if root.name == "checkoutSession"]
    raw_ids = ids_of(roots_read, variables)
    found: dict[UUID, CheckoutSession] = {}
    roots: list[CheckoutSession] = []
    if raw_ids:  # only `__typename` at the root: nothing to read, nobody to check
        try:
            ids = [parse_uuid(raw, field="id") for raw in raw_ids]
            reader = await context.reader()
            service = context.service
            found = await service.get_checkout_sessions(checkout_session_ids=ids)
            roots = [service.readable(found.get(i), reader=reader, now=context.now) for i in ids]
        except GatewayError:
            raise Unsupported from None
    shaper = Shaper(context, found)
    await shaper.load([root.fields for root in roots_read], roots)
    read = iter(roots)
    data = {
        root.key: "Query" if root.name == "__typename" else shaper.session(next(read), root.fields)
        for root in all_roots
    }
    context.metrics.observe_graphql(
        operation_type="query", root_fields="checkoutSession", code="OK", started=started
    )
    return {"data": data}
