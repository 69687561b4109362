"""Compiled polls: the hot `checkoutSession` queries run by a plan instead of the executor.

Payment pages send the same few documents again and again, and even with every cache
hitting, Strawberry's execute costs ~0.3 ms a request. A document is compiled once, when
it is a query whose root fields are all `checkoutSession(id: ...)` selecting fields (no
fragments, no directives): parsed and validated by the schema's own rules, token limit
included, exactly as Strawberry would. The plan then reads through the same service calls
and the same batched statements, and shapes the response itself.

Only success is compiled. Whatever would make an error (a variable of the wrong type, an
unknown session, another merchant's, an expired one, a rate limit) sends the request
down the general path, and Strawberry answers it: it stays the one source of every error.
tests/graphql/test_compiled.py proves both paths give byte-identical responses.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    IntValueNode,
    NamedTypeNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
)
from strawberry.schema.schema import validate_document

from gql_checkout.domain.checkout_sessions import CheckoutSession
from gql_checkout.domain.errors import GatewayError
from gql_checkout.domain.fields import (
    FIELDS_BY_NAME,
    PROFILE_JSON,
    SESSION_JSON,
    Source,
    value_class,
)
from gql_checkout.domain.merchants import MerchantProfile
from gql_checkout.domain.validation import parse_uuid
from gql_checkout.graphql.context import GraphQLContext
from gql_checkout.graphql.documents import Admitted, Documents

MAX_PLANS = 256  # distinct documents kept compiled; a client sending more gets the general path


@dataclass(frozen=True)
class Selected:
    key: str  # the response key: the alias, or the field's name
    name: str
    fields: tuple[Selected, ...] = ()  # the sub-selection of an object field


@dataclass(frozen=True)
class Root:
    key: str
    id_literal: str | None  # `checkoutSession(id: "…")`
    id_variable: str | None  # `checkoutSession(id: $id)`
    fields: tuple[Selected, ...]


@dataclass(frozen=True)
class Plan:
    roots: tuple[Root, ...]
    variables: frozenset[str]  # every one an `ID!`


class Unsupported(Exception):
    """The document (or this request) is not for a plan: Strawberry runs it."""


# --- compiling ----------------------------------------------------------------------------

# The GraphQL type of each object-valued field: a plan writes it for ``__typename``.
_TYPENAMES = {
    name: found.__name__
    for name, field in FIELDS_BY_NAME.items()
    if (found := value_class(field.type)) is not None
}


class Compiler:
    """Documents to plans, for one schema, its validation rules and its token limit."""

    def __init__(self, schema: Any, rules: Sequence[Any], documents: Documents) -> None:
        self._schema = schema
        self._rules = tuple(rules)
        self._documents = documents
        # Plans by the document's digest and the operation's name: never by the text.
        self._plans: OrderedDict[tuple[bytes, str | None], Plan | None] = OrderedDict()
        self.answered = 0  # requests a plan answered (the rest went to Strawberry)

    def plan(self, query: str, operation_name: str | None) -> Plan | None:
        """The plan of a document admitted and valid, or None (Strawberry answers)."""
        try:
            admitted = self._documents.admit(query)
        except GraphQLError:
            return None
        key = (admitted.digest, operation_name)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        plan = self._plan(admitted, operation_name)
        self._plans[key] = plan
        if len(self._plans) > MAX_PLANS:
            self._plans.popitem(last=False)
        return plan

    def _plan(self, admitted: Admitted, operation_name: str | None) -> Plan | None:
        validation = (admitted.digest, self._rules)
        errors = self._documents.validated(validation)
        if errors is None:
            errors = validate_document(self._schema, admitted.document, self._rules)
            self._documents.remember_validation(validation, errors)
        if errors:
            return None
        try:
            return _compile(admitted.document, operation_name)
        except Unsupported:
            return None


def _compile(document: DocumentNode, operation_name: str | None) -> Plan:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != len(document.definitions) or len(operations) != 1:
        raise Unsupported  # fragments, or several operations to choose from
    (operation,) = operations
    if operation.operation is not OperationType.QUERY or operation.directives:
        raise Unsupported
    if operation_name is not None and operation_name != getattr(operation.name, "value", None):
        raise Unsupported  # Strawberry reports the unknown operation
    variables = set()
    for definition in operation.variable_definitions or ():
        type_ = definition.type
        named = type_.type if isinstance(type_, NonNullTypeNode) else None
        if not isinstance(named, NamedTypeNode) or named.name.value != "ID":
            raise Unsupported
        if definition.default_value is not None or definition.directives:
            raise Unsupported
        variables.add(definition.variable.name.value)
    roots = tuple(_root(selection) for selection in _fields(operation.selection_set))
    _unique_keys(roots)
    used = {root.id_variable for root in roots} - {None}
    if used != variables:
        raise Unsupported  # a declared variable no root uses
    return Plan(roots=roots, variables=frozenset(variables))


def _fields(selection_set: SelectionSetNode | None) -> list[FieldNode]:
    if selection_set is None:
        raise Unsupported
    fields = []
    for selection in selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.directives:
            raise Unsupported  # fragments, @skip/@include
        fields.append(selection)
    return fields


def _key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


def _root(node: FieldNode) -> Root:
    arguments = node.arguments or ()
    if node.name.value != "checkoutSession" or len(arguments) != 1:
        raise Unsupported
    value = arguments[0].value
    literal = variable = None
    if isinstance(value, StringValueNode | IntValueNode):
        literal = value.value
    elif isinstance(value, VariableNode):
        variable = value.name.value
    else:
        raise Unsupported
    return Root(_key(node), literal, variable, _session_fields(node.selection_set))


def _session_fields(selection_set: SelectionSetNode | None) -> tuple[Selected, ...]:
    selected = []
    for node in _fields(selection_set):
        name = node.name.value
        if node.arguments or (name not in FIELDS_BY_NAME and name != "__typename"):
            raise Unsupported
        if name in FIELDS_BY_NAME and FIELDS_BY_NAME[name].source is Source.RELATED:
            selected.append(Selected(_key(node), name, _session_fields(node.selection_set)))
        elif node.selection_set is not None:  # a value object: the fields it selects
            inner = tuple(Selected(_key(n), n.name.value) for n in _fields(node.selection_set))
            selected.append(Selected(_key(node), name, inner))
        else:
            selected.append(Selected(_key(node), name))
    return tuple(selected)


def _unique_keys(roots: Sequence[Root]) -> None:
    """Repeated response keys are merged by the executor; plans leave that to it."""

    def check(keys: Sequence[str]) -> None:
        if len(set(keys)) != len(keys):
            raise Unsupported

    def walk(fields: Sequence[Selected]) -> None:
        check([field.key for field in fields])
        for field in fields:
            walk(field.fields)

    check([root.key for root in roots])
    for root in roots:
        walk(root.fields)


# --- running --------------------------------------------------------------------------------


def request_body(body: bytes, content_type: str | None) -> tuple[str, str | None, Any]:
    """(query, operationName, variables) of a plain single-operation JSON body."""
    if content_type is None or not content_type.startswith("application/json"):
        raise Unsupported
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Unsupported from None
    if not isinstance(data, dict) or not set(data) <= {"query", "variables", "operationName"}:
        raise Unsupported
    query, operation_name = data.get("query"), data.get("operationName")
    if not isinstance(query, str) or not isinstance(operation_name, str | None):
        raise Unsupported
    return query, operation_name, data.get("variables")


def _ids(plan: Plan, variables: Any) -> list[str]:
    if not isinstance(variables, dict | None) or (plan.variables and variables is None):
        raise Unsupported
    variables = variables or {}
    ids = []
    for root in plan.roots:
        if root.id_literal is not None:
            ids.append(root.id_literal)
            continue
        value = variables.get(root.id_variable)
        # ID's input coercion: a string, or an integer (bool is not one).
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise Unsupported
        ids.append(value)
    return ids


async def run_plan(plan: Plan, variables: Any, context: GraphQLContext) -> dict[str, Any]:
    """The plan's response (``{"data": ...}``), or Unsupported for anything but a plain
    success."""
    started = time.perf_counter()
    raw_ids = _ids(plan, variables)
    try:
        ids = [parse_uuid(raw, field="id") for raw in raw_ids]
        reader = await context.reader()
        service = context.service
        found = await service.get_checkout_sessions(checkout_session_ids=ids)
        roots = [service.readable(found.get(i), reader=reader, now=context.now) for i in ids]
    except GatewayError:
        raise Unsupported from None
    shaper = _Shaper(context, found)
    await shaper.load(plan, roots)
    data = {
        root.key: shaper.session(session, root.fields)
        for root, session in zip(plan.roots, roots, strict=True)
    }
    context.metrics.observe_graphql(
        operation_type="query", root_fields="checkoutSession", code="OK", started=started
    )
    return {"data": data}


class _Shaper:
    def __init__(self, context: GraphQLContext, found: dict[UUID, CheckoutSession]) -> None:
        self.context = context
        self.now: datetime = context.now
        self._sessions = found
        self._profiles: dict[UUID, MerchantProfile] = {}

    async def load(self, plan: Plan, roots: Sequence[CheckoutSession]) -> None:
        """Related sessions and profiles, level by level, as the DataLoaders would batch."""
        level: list[tuple[CheckoutSession, tuple[Selected, ...]]] = list(
            zip(roots, (root.fields for root in plan.roots), strict=True)
        )
        while level:
            wanted: set[UUID] = set()
            merchants: set[UUID] = set()
            following = []
            for session, fields in level:
                for selected in fields:
                    field = FIELDS_BY_NAME.get(selected.name)
                    if field is None:  # __typename
                        continue
                    if field.source is Source.PROFILE:
                        merchants.add(session.merchant_id)
                    elif field.source is Source.RELATED:
                        related = field.value(session)
                        if related is not None:
                            wanted.add(related)
                            following.append((related, selected.fields))
            missing = wanted - set(self._sessions)
            if missing:
                self._sessions.update(
                    await self.context.service.get_checkout_sessions(checkout_session_ids=missing)
                )
            missing_profiles = merchants - set(self._profiles)
            if missing_profiles:
                self._profiles.update(
                    await self.context.service.get_merchant_profiles(merchant_ids=missing_profiles)
                )
            level = [(self._sessions[i], fields) for i, fields in following if i in self._sessions]

    def session(self, session: CheckoutSession, fields: Sequence[Selected]) -> dict[str, Any]:
        return {field.key: self._value(session, field) for field in fields}

    def _value(self, session: CheckoutSession, selected: Selected) -> Any:
        name = selected.name
        if name == "__typename":
            return "CheckoutSession"
        field = FIELDS_BY_NAME[name]
        source = field.source
        if source is Source.SESSION:
            value = SESSION_JSON[name](session, self.now)
        elif source is Source.PROFILE:
            value = PROFILE_JSON[name](self._profiles.get(session.merchant_id))
        elif source is Source.RELATED:
            related_id = field.value(session)
            related = self._sessions.get(related_id) if related_id else None
            return self.session(related, selected.fields) if related else None
        else:
            return self.context.service.hcp_token(session)
        if selected.fields and value is not None:
            return _object(selected, value, _TYPENAMES[name])
        return value


def _object(field: Selected, values: Mapping[str, Any], typename: str) -> dict[str, Any]:
    values = {**values, "__typename": typename}
    if not all(inner.name in values for inner in field.fields):
        raise Unsupported  # a field the value object does not have: Strawberry's error
    return {inner.key: values[inner.name] for inner in field.fields}
