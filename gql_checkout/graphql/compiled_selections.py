"""What compiled plans share: selection sets as the executor collects them (fragments
spread, @include/@skip kept as conditions, repeated keys merged per request), and the
shaping of a session's answer from the field table, loading related sessions and
profiles level by level as the DataLoaders would batch them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from graphql import (
    BooleanValueNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    NamedTypeNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
)

from gql_checkout.domain.checkout_sessions import CheckoutSession
from gql_checkout.domain.fields import (
    FIELDS_BY_NAME,
    PROFILE_JSON,
    SESSION_JSON,
    Source,
    value_class,
)
from gql_checkout.domain.merchants import MerchantProfile
from gql_checkout.graphql.context import GraphQLContext


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


F = TypeVar("F", Root, Selected)


class Unsupported(Exception):
    """The document (or this request) is not for a plan: Strawberry runs it."""


# The GraphQL type of each object-valued field: a plan writes it for ``__typename``.
_TYPENAMES = {
    name: found.__name__
    for name, field in FIELDS_BY_NAME.items()
    if (found := value_class(field.type)) is not None
}


def all_static(fields: Sequence[Root | Selected]) -> bool:
    keys = [field.key for field in fields]
    return len(set(keys)) == len(keys) and all(all_static(field.fields) for field in fields)


def response_key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


class Collector:
    """Selections as the executor collects them: fragments (named and inline) spread in
    place when their type is the one selected, @include/@skip kept as conditions."""

    def __init__(self, fragments: Mapping[str, FragmentDefinitionNode]) -> None:
        self._fragments = fragments
        self.booleans_used: set[str] = set()
        self.dynamic = False  # fragments or conditions seen: merge per request

    @classmethod
    def of(cls, document: DocumentNode) -> Collector:
        """A collector of the document's named fragments."""
        return cls(
            {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        )

    def roots(
        self, selection_set: SelectionSetNode, *, on: str = "Query", field: str = "checkoutSession"
    ) -> list[Root]:
        """The root ``field``s (with their one ``id`` argument) of an operation on the
        type ``on``, and ``__typename``."""
        roots = []
        for node, conditions in self._flatten(selection_set, on, ()):
            if node.name.value == "__typename" and not node.arguments:
                roots.append(Root(response_key(node), "__typename", None, None, (), conditions))
                continue
            arguments = node.arguments or ()
            if node.name.value != field or len(arguments) != 1:
                raise Unsupported
            value = arguments[0].value
            literal = variable = None
            if isinstance(value, StringValueNode | IntValueNode):
                literal = value.value
            elif isinstance(value, VariableNode):
                variable = value.name.value
            else:
                raise Unsupported
            fields = self.session_fields(node.selection_set)
            roots.append(
                Root(response_key(node), node.name.value, literal, variable, fields, conditions)
            )
        return roots

    def session_fields(self, selection_set: SelectionSetNode | None) -> tuple[Selected, ...]:
        if selection_set is None:
            raise Unsupported
        selected = []
        for node, conditions in self._flatten(selection_set, "CheckoutSession", ()):
            name = node.name.value
            if node.arguments or (name not in FIELDS_BY_NAME and name != "__typename"):
                raise Unsupported
            field = FIELDS_BY_NAME.get(name)
            if field is not None and field.source is Source.RELATED:
                inner = self.session_fields(node.selection_set)
            elif node.selection_set is not None:  # a value object: the fields it selects
                inner = self._value_fields(node.selection_set, _TYPENAMES.get(name))
            else:
                inner = ()
            selected.append(Selected(response_key(node), name, inner, conditions))
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
            selected.append(Selected(response_key(node), node.name.value, (), conditions))
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


def merged(fields: Sequence[F], booleans: Mapping[str, bool]) -> tuple[F, ...]:
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
        replace(field, fields=merged(field.fields, booleans), conditions=())
        for field in by_key.values()
    )


class Shaper:
    def __init__(self, context: GraphQLContext, found: dict[UUID, CheckoutSession]) -> None:
        self.context = context
        self.now: datetime = context.now
        self._sessions = found
        self._profiles: dict[UUID, MerchantProfile] = {}

    async def load(
        self, selections: Sequence[tuple[Selected, ...]], roots: Sequence[CheckoutSession]
    ) -> None:
        """Related sessions and profiles, level by level, as the DataLoaders would batch."""
        level: list[tuple[CheckoutSession, tuple[Selected, ...]]] = list(
            zip(roots, selections, strict=True)
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

    def session(
        self,
        session: CheckoutSession,
        fields: Sequence[Selected],
        *,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """The session's answer; ``now`` for a mutation's root, shown as at its write
        (its related sessions are read as at the request's start, as the loaders do)."""
        now = self.now if now is None else now
        return {field.key: self._value(session, field, now) for field in fields}

    def _value(self, session: CheckoutSession, selected: Selected, now: datetime) -> Any:
        name = selected.name
        if name == "__typename":
            return "CheckoutSession"
        field = FIELDS_BY_NAME[name]
        source = field.source
        if source is Source.SESSION:
            value = SESSION_JSON[name](session, now)
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


def variables_of(operation: OperationDefinitionNode) -> tuple[set[str], dict[str, bool | None]]:
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


def booleans_of(declared: Mapping[str, bool | None], variables: dict[str, Any]) -> dict[str, bool]:
    """The @include/@skip variables' values, as the executor would coerce them (anything
    but a boolean, or a missing one without default, is Strawberry's to report)."""
    booleans = {}
    for name, default in declared.items():
        value = variables.get(name, default)
        if not isinstance(value, bool):
            raise Unsupported
        booleans[name] = value
    return booleans


def ids_of(roots: Sequence[Root], variables: dict[str, Any]) -> list[str]:
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
