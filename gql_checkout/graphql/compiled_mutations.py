"""Compiled mutations: the hot writes (create, cancel, complete, fail) run without
Strawberry's executor, which costs ~0.8 ms of a create's ~1.8 ms of CPU.

A document compiles when its operation is a mutation of exactly one of those root
fields (no directive on the operation or the field), selecting what the read plans
shape (graphql/compiled_selections.py). Each request first coerces its variables and
the field's arguments with graphql-core's own functions, as the executor does; any error
there, or an @include/@skip variable that is not a boolean, sends the request to
Strawberry before anything ran, and Strawberry reports it. From then on the plan
answers, whatever happens: a write is never run twice. The work itself is the
resolvers' own (graphql/mutations.py); an error it raises is located, coded, masked and
logged by the functions the general path uses, and the operation is counted under the
same labels (graphql/observability.py). tests/graphql/test_compiled_mutations.py holds
both paths to the same responses.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLSchema,
    OperationDefinitionNode,
    located_error,
)
from graphql.execution.values import get_argument_values, get_variable_values

from gql_checkout.domain.checkout_sessions import CheckoutSession
from gql_checkout.graphql import mutations
from gql_checkout.graphql.compiled_selections import (
    Collector,
    Selected,
    Shaper,
    Unsupported,
    all_static,
    merged,
    response_key,
)
from gql_checkout.graphql.context import GraphQLContext
from gql_checkout.graphql.extensions import code_errors
from gql_checkout.graphql.observability import root_fields_label

Write = Callable[[GraphQLContext, Mapping[str, Any]], Awaitable[CheckoutSession]]


def _create(context: GraphQLContext, arguments: Mapping[str, Any]) -> Awaitable[CheckoutSession]:
    given = arguments["input"]
    return mutations.create_checkout_session(
        context,
        amount=given["amount"],
        currency=given["currency"],
        merchant_reference=given.get("merchantReference"),
        expires_in_seconds=given.get("expiresInSeconds"),
        parent_session_id=given.get("parentSessionId"),
        idempotency_key=given.get("idempotencyKey"),
        metadata=given.get("metadata"),
    )


def _cancel(context: GraphQLContext, arguments: Mapping[str, Any]) -> Awaitable[CheckoutSession]:
    return mutations.cancel_checkout_session(context, checkout_session_id=arguments["id"])


def _complete(context: GraphQLContext, arguments: Mapping[str, Any]) -> Awaitable[CheckoutSession]:
    method = arguments["paymentMethod"]
    return mutations.complete_checkout_session(
        context,
        checkout_session_id=arguments["id"],
        type=method["type"],
        brand=method.get("brand"),
        last4=method.get("last4"),
    )


def _fail(context: GraphQLContext, arguments: Mapping[str, Any]) -> Awaitable[CheckoutSession]:
    return mutations.fail_checkout_session(
        context, checkout_session_id=arguments["id"], reason=arguments.get("reason")
    )


WRITES: Mapping[str, Write] = {
    "createCheckoutSession": _create,
    "cancelCheckoutSession": _cancel,
    "completeCheckoutSession": _complete,
    "failCheckoutSession": _fail,
}


@dataclass(frozen=True)
class MutationPlan:
    operation: OperationDefinitionNode
    node: FieldNode  # the one root field
    field: GraphQLField  # its definition: what its arguments coerce against
    key: str
    fields: tuple[Selected, ...]
    booleans: frozenset[str]  # variables of @include/@skip in the selection
    static: bool  # no conditions, fragments or repeated keys: `fields` as they are
    root_fields: str  # the operation metrics' label, as Strawberry's extension gives it


@dataclass(frozen=True)
class Prepared:
    """A request's coerced arguments and selection: nothing can send it elsewhere now."""

    arguments: dict[str, Any]
    fields: tuple[Selected, ...]


def compile_mutation(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> MutationPlan:
    """The plan of a valid document's mutation, or Unsupported."""
    selections = operation.selection_set.selections
    if operation.directives or len(selections) != 1:
        raise Unsupported
    (node,) = selections
    if not isinstance(node, FieldNode) or node.directives or node.name.value not in WRITES:
        raise Unsupported
    assert schema.mutation_type is not None  # the document validated as a mutation
    collector = Collector.of(document)
    fields = collector.session_fields(node.selection_set)
    return MutationPlan(
        operation=operation,
        node=node,
        field=schema.mutation_type.fields[node.name.value],
        key=response_key(node),
        fields=fields,
        booleans=frozenset(collector.booleans_used),
        static=not collector.dynamic and all_static(fields),
        root_fields=root_fields_label(document),
    )


def prepare(plan: MutationPlan, schema: GraphQLSchema, variables: Any) -> Prepared:
    """The request's arguments as the executor coerces them, or Unsupported (any error is
    Strawberry's to report, before anything ran)."""
    if not isinstance(variables, dict | None):
        raise Unsupported
    coerced = get_variable_values(
        schema, plan.operation.variable_definitions or (), variables or {}
    )
    if isinstance(coerced, list):
        raise Unsupported
    try:
        arguments = get_argument_values(plan.field, plan.node, coerced)
    except GraphQLError:
        raise Unsupported from None
    fields = plan.fields
    if not plan.static:
        booleans = {}
        for name in plan.booleans:
            value = coerced.coerced.get(name)
            if not isinstance(value, bool):
                raise Unsupported  # null: the executor's CollectFields reports it
            booleans[name] = value
        fields = merged(fields, booleans)
    return Prepared(arguments, fields)


async def run_mutation(
    plan: MutationPlan, prepared: Prepared, context: GraphQLContext
) -> dict[str, Any]:
    """The response of the write: its data, or its one error as Strawberry gives it."""
    started = time.perf_counter()
    try:
        session = await WRITES[plan.node.name.value](context, prepared.arguments)
        shaper = Shaper(context, {})
        await shaper.load([prepared.fields], [session])
        data = shaper.session(session, prepared.fields, now=context.service.clock())
        result: dict[str, Any] = {"data": {plan.key: data}}
        code = "OK"
    except Exception as raised:
        errors = [located_error(raised, [plan.node], [plan.key])]
        code_errors(errors)  # coded as Strawberry's process_errors codes them; logs the unexpected
        result = {"data": None, "errors": [errors[0].formatted]}
        code = str((errors[0].extensions or {}).get("code"))
    context.metrics.observe_graphql(
        operation_type="mutation", root_fields=plan.root_fields, code=code, started=started
    )
    return result
