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
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import orjson
from graphql import (
    BooleanValueNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
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
class Condition:
    """``@include(if: …)`` (``include``) or ``@skip(if: …)``, on a literal or a variable."""

    include: bool
    literal: bool | None
    variable: str | None

    def holds(self, booleans: Mapping[str, bool]) -> bool:
        value = self.literal if self.variable is None else booleans[self.variable]
        return value is self.include


@dataclass(frozen=True)
class Selected:
    key: str  # the response key: the alias, or the field's name
    name: str
    fields: tuple[Selected, ...] = ()  # the sub-selection of an object field
    conditions: tuple[Condition, ...] = ()  # all must hold for the field to be selected


@dataclass(frozen=True)
class Root:
    key: str
    name: str  # `checkoutSession`, or `__typename`
    id_literal: str | None  # `checkoutSession(id: "…")`
    id_variable: str | None  # `checkoutSession(id: $id)`
    fields: tuple[Selected, ...]
    conditions: tuple[Condition, ...] = ()


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


F = TypeVar("F", Root, Selected)


class Unsupported(Exception):
    """The document (or this request) is not for a plan: Strawberry runs it."""


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
        return self.plan_for(admitted, operation_name)

    def plan_for(self, admitted: Admitted, operation_name: str | None) -> Plan | None:
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
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    if operation_name is None:
        if len(operations) != 1:
            raise Unsupported  # the admission reports the missing choice
        (operation,) = operations
    else:
        named = [o for o in operations if o.name and o.name.value == operation_name]
        if not named:
            raise Unsupported
        operation = named[0]
    if operation.operation is not OperationType.QUERY or operation.directives:
        raise Unsupported
    ids, booleans = _variables(operation)
    collector = _Collector(fragments)
    roots = tuple(collector.roots(operation.selection_set))
    used = {root.id_variable for root in roots} - {None}
    if used != ids or not collector.booleans_used <= set(booleans):
        raise Unsupported  # a declared variable no root uses (or one not declared)
    keys = [root.key for root in roots]
    static = not collector.dynamic and len(set(keys)) == len(keys)
    cost = len({root.key for root in roots if root.name == "checkoutSession"})
    return Plan(roots, frozenset(ids), booleans, static and _static(roots), cost)


def _variables(operation: OperationDefinitionNode) -> tuple[set[str], dict[str, bool | None]]:
    """The operation's `ID!` variables, and its `Boolean`s with their defaults."""
    ids, booleans = set(), {}
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        type_ = definition.type
        named = type_.type if isinstance(type_, NonNullTypeNode) else type_
        if definition.directives or not isinstance(named, NamedTypeNode):
            raise Unsupported
        default = definition.default_value
        if named.name.value == "ID" and type_ is not named and default is None:
            ids.add(name)
        elif named.name.value == "Boolean" and (
            default is None or isinstance(default, BooleanValueNode)
        ):
            booleans[name] = default.value if isinstance(default, BooleanValueNode) else None
        else:
            raise Unsupported
    return ids, booleans


def _static(fields: Sequence[Root | Selected]) -> bool:
    keys = [field.key for field in fields]
    return len(set(keys)) == len(keys) and all(_static(field.fields) for field in fields)


def _key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


class _Collector:
    """Selections as the executor collects them: fragments (named and inline) spread in
    place when their type is the one selected, @include/@skip kept as conditions."""

    def __init__(self, fragments: Mapping[str, FragmentDefinitionNode]) -> None:
        self._fragments = fragments
        self.booleans_used: set[str] = set()
        self.dynamic = False  # fragments or conditions seen: merge per request

    def roots(self, selection_set: SelectionSetNode) -> list[Root]:
        roots = []
        for node, conditions in self._flatten(selection_set, "Query", ()):
            if node.name.value == "__typename" and not node.arguments:
                roots.append(Root(_key(node), "__typename", None, None, (), conditions))
                continue
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
            fields = self._session_fields(node.selection_set)
            roots.append(Root(_key(node), node.name.value, literal, variable, fields, conditions))
        return roots

    def _session_fields(self, selection_set: SelectionSetNode | None) -> tuple[Selected, ...]:
        if selection_set is None:
            raise Unsupported
        selected = []
        for node, conditions in self._flatten(selection_set, "CheckoutSession", ()):
            name = node.name.value
            if node.arguments or (name not in FIELDS_BY_NAME and name != "__typename"):
                raise Unsupported
            field = FIELDS_BY_NAME.get(name)
            if field is not None and field.source is Source.RELATED:
                inner = self._session_fields(node.selection_set)
            elif node.selection_set is not None:  # a value object: the fields it selects
                inner = self._value_fields(node.selection_set, _TYPENAMES.get(name))
            else:
                inner = ()
            selected.append(Selected(_key(node), name, inner, conditions))
        return tuple(selected)

    def _value_fields(
        self, selection_set: SelectionSetNode, typename: str | None
    ) -> tuple[Selected, ...]:
        if typename is None:
            raise Unsupported
        selected = []
        for node, conditions in self._flatten(selection_set, typename, ()):
            if node.selection_set or node.arguments:
                raise Unsupported
            selected.append(Selected(_key(node), node.name.value, (), conditions))
        return tuple(selected)

    def _flatten(
        self, selection_set: SelectionSetNode, typename: str, conditions: tuple[Condition, ...]
    ) -> Iterator[tuple[FieldNode, tuple[Condition, ...]]]:
        for selection in selection_set.selections:
            own = conditions + self._conditions(selection.directives)
            if isinstance(selection, FieldNode):
                yield selection, own
                continue
            self.dynamic = True
            if isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = selection.selection_set
            else:
                assert isinstance(selection, FragmentSpreadNode)
                fragment = self._fragments.get(selection.name.value)
                if fragment is None:
                    raise Unsupported
                condition, inner = fragment.type_condition, fragment.selection_set
            if condition is not None and condition.name.value != typename:
                raise Unsupported  # a fragment on another type: the executor's business
            yield from self._flatten(inner, typename, own)

    def _conditions(self, directives: Sequence[DirectiveNode] | None) -> tuple[Condition, ...]:
        conditions = []
        for directive in directives or ():
            name = directive.name.value
            arguments = directive.arguments or ()
            if name not in ("include", "skip") or len(arguments) != 1:
                raise Unsupported
            value = arguments[0].value
            if isinstance(value, BooleanValueNode):
                conditions.append(Condition(name == "include", value.value, None))
            elif isinstance(value, VariableNode):
                self.booleans_used.add(value.name.value)
                conditions.append(Condition(name == "include", None, value.name.value))
            else:
                raise Unsupported
            self.dynamic = True
        return tuple(conditions)


def _merged(fields: Sequence[F], booleans: Mapping[str, bool]) -> tuple[F, ...]:
    """The fields (or roots) selected, merged by response key in first-seen order, as the
    executor's CollectFields does: a field whose conditions fail is not selected at all,
    and the same field again (validation: same name and arguments) adds its selections."""
    by_key: dict[str, F] = {}
    for field in fields:
        if not all(condition.holds(booleans) for condition in field.conditions):
            continue
        seen = by_key.get(field.key)
        by_key[field.key] = (
            field if seen is None else replace(seen, fields=seen.fields + field.fields)
        )
    return tuple(
        replace(field, fields=_merged(field.fields, booleans), conditions=())
        for field in by_key.values()
    )


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


def _booleans(plan: Plan, variables: dict[str, Any]) -> dict[str, bool]:
    """The @include/@skip variables' values, as the executor would coerce them (anything
    but a boolean, or a missing one without default, is Strawberry's to report)."""
    booleans = {}
    for name, default in plan.booleans.items():
        value = variables.get(name, default)
        if not isinstance(value, bool):
            raise Unsupported
        booleans[name] = value
    return booleans


def _ids(roots: Sequence[Root], variables: dict[str, Any]) -> list[str]:
    ids = []
    for root in roots:
        if root.id_variable is None:
            assert root.id_literal is not None
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
    if not isinstance(variables, dict | None) or (
        (plan.variables or plan.booleans) and variables is None
    ):
        raise Unsupported
    variables = variables or {}
    all_roots = plan.roots
    if not plan.static:
        all_roots = _merged(plan.roots, _booleans(plan, variables))
    roots_read = [root for root in all_roots if root.name == "checkoutSession"]
    raw_ids = _ids(roots_read, variables)
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
    shaper = _Shaper(context, found)
    await shaper.load(roots_read, roots)
    read = iter(roots)
    data = {
        root.key: "Query" if root.name == "__typename" else shaper.session(next(read), root.fields)
        for root in all_roots
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

    async def load(self, plan_roots: Sequence[Root], roots: Sequence[CheckoutSession]) -> None:
        """Related sessions and profiles, level by level, as the DataLoaders would batch."""
        level: list[tuple[CheckoutSession, tuple[Selected, ...]]] = list(
            zip(roots, (root.fields for root in plan_roots), strict=True)
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
