"""Documents as the gateway admits them: small enough, parsed once, cheap to validate.

Every GraphQL document, whichever path runs it (Strawberry or a compiled plan, over HTTP
or a websocket), is admitted here first:

1. **Size.** A document longer than ``max_bytes`` (comments and white space included:
   graphql-core's token limit counts neither) is refused before it is parsed.
2. **Tokens.** graphql-core's parser stops at ``max_tokens``.
3. **Field-merge work.** graphql-core's ``OverlappingFieldsCanBeMergedRule`` compares
   every pair of fields that share a response name in a selection set, and again
   between their sub-selections: ``{ a { id } a { id } … }`` is quadratic, nesting makes
   it a product, and 490 repeats cost ~0.5-0.9 s. ``field_merge_work`` walks the same
   pairs the rule would, counting them, and stops at ``max_merge_work``: a document over
   that budget is refused before any validation rule runs. Real documents (Apollo's and
   Relay's fragments repeat ``id`` and ``__typename`` a few times) stay far below it.

What passes is remembered, keyed by the SHA-256 of the text (never by the text itself),
in a bounded cache, with the outcome of its validation. The parser's token chain
(doubly linked, so only the cyclic collector could free it) is cut once the document
is parsed: the nodes keep their locations (offsets into the source), and the tokens no
node refers to are freed at once.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations, product
from typing import TypeVar

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Token,
    parse,
)

K = TypeVar("K")
V = TypeVar("V")

MAX_DOCUMENTS = 256  # distinct documents remembered; more are parsed again when they return
MAX_ROOT_FIELDS_COUNTED = 10_000
# The same response key (or fragment spread) written more often than this in one selection
# set is refused before parsing: graphql-core's parser costs ~7 µs a token here, so a
# 2,000-token document of repeats costs ~15 ms to parse, even to refuse it.
MAX_TEXTUAL_REPEATS = 20


class DocumentTooCostly(GraphQLError):
    """A document refused by a limit of this module (validation never ran on it)."""


@dataclass(frozen=True, slots=True)
class Admitted:
    digest: bytes
    document: DocumentNode


class Documents:
    """Admits documents for one set of limits; thread-compatible, not thread-safe (the
    event loop is its one user)."""

    def __init__(self, *, max_bytes: int, max_tokens: int, max_merge_work: int) -> None:
        self.max_bytes = max_bytes
        self.max_tokens = max_tokens
        self.max_merge_work = max_merge_work
        self._parsed: OrderedDict[bytes, DocumentNode | GraphQLError] = OrderedDict()
        # Validation outcomes, by digest and the rules' identity (see ``validated``).
        self._validated: OrderedDict[tuple[bytes, object], list[GraphQLError]] = OrderedDict()

    def admit(self, query: str) -> Admitted:
        """The parsed document, or the GraphQLError that refuses it (raised)."""
        if len(query) > self.max_bytes or len(query.encode()) > self.max_bytes:
            raise DocumentTooCostly(
                f"The document is larger than {self.max_bytes} bytes.",
                extensions={"code": "GRAPHQL_VALIDATION_FAILED"},
            )
        digest = hashlib.sha256(query.encode()).digest()
        found = self._parsed.get(digest)
        if found is None:
            found = self._parse(query)
            self._remember(self._parsed, digest, found)
        else:
            self._parsed.move_to_end(digest)
        if isinstance(found, GraphQLError):
            raise found
        return Admitted(digest, found)

    def validated(self, key: tuple[bytes, object]) -> list[GraphQLError] | None:
        """The errors remembered for ``(digest, rules)``, or None if not validated yet."""
        errors = self._validated.get(key)
        if errors is not None:
            self._validated.move_to_end(key)
        return errors

    def remember_validation(self, key: tuple[bytes, object], errors: list[GraphQLError]) -> None:
        self._remember(self._validated, key, errors)

    def _parse(self, query: str) -> DocumentNode | GraphQLError:
        repeated = repeated_selection(query, limit=MAX_TEXTUAL_REPEATS)
        if repeated is not None:
            return DocumentTooCostly(
                f"The document repeats the selection {repeated[:64]!r} more than "
                f"{MAX_TEXTUAL_REPEATS} times in one selection set.",
                extensions={"code": "GRAPHQL_VALIDATION_FAILED"},
            )
        try:
            document = parse(query, max_tokens=self.max_tokens)
            _cut_token_chain(document)
            work = field_merge_work(document, budget=self.max_merge_work)
        except GraphQLError as error:
            return error
        except RecursionError:  # nesting deeper than the interpreter's stack
            return DocumentTooCostly(
                "The document is nested too deeply.",
                extensions={"code": "GRAPHQL_VALIDATION_FAILED"},
            )
        if work > self.max_merge_work:
            return DocumentTooCostly(
                "The document repeats fields too often to be validated cheaply: "
                f"more than {self.max_merge_work} field pairs to compare.",
                extensions={"code": "GRAPHQL_VALIDATION_FAILED"},
            )
        return document

    @staticmethod
    def _remember(cache: OrderedDict[K, V], key: K, value: V) -> None:
        cache[key] = value
        if len(cache) > MAX_DOCUMENTS:
            cache.popitem(last=False)


# GraphQL's lexical tokens, as far as selection sets need them (block strings, strings
# and comments matched whole, so that what they hold is never read as a selection).
_TOKENS = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*(?:"""|$)'  # block string
    r'|"(?:[^"\\\n\r]|\\.)*"?'  # string
    r"|#[^\n\r]*"  # comment
    r"|\.\.\.|[{}()@:]"  # the punctuators that shape selections
    r"|[_A-Za-z][_0-9A-Za-z]*"  # name
)


def repeated_selection(query: str, *, limit: int) -> str | None:
    """A response key (or ``...Fragment``) that one selection set of ``query`` writes more
    than ``limit`` times, found by a lexical scan (no parse); None if there is none.

    Inside parentheses (arguments, variable definitions, their object values) nothing is
    a selection; a name after ``@`` is a directive, after ``...`` a spread (or ``on`` and
    a type), and a name followed by ``:`` an alias, whose field name follows."""
    sets: list[dict[str, int]] = []
    parens = 0
    skip_next_name = False
    previous = ""
    pending: str | None = None  # a name that may yet turn out to be an alias
    lexemes: list[str] = _TOKENS.findall(query)
    for lexeme in lexemes:
        first = lexeme[0]
        if first in '"#':
            previous = lexeme
            continue
        if parens:
            parens += (lexeme == "(") - (lexeme == ")")
            previous = lexeme
            continue
        if pending is not None:
            if lexeme == ":":  # an alias: the field's own name comes next, uncounted
                skip_next_name = True
                previous = lexeme
                continue
            key, pending = pending, None
            if sets and _count(sets[-1], key) > limit:
                return key
        if lexeme == "(":
            parens = 1
        elif lexeme == "{":
            sets.append({})
        elif lexeme == "}":
            if sets:
                sets.pop()
        elif lexeme[0] == "_" or lexeme[0].isalpha():
            if previous == "@" or skip_next_name:
                skip_next_name = False
            elif previous == "...":
                if lexeme != "on":  # an inline fragment's type condition follows "on"
                    if sets and _count(sets[-1], "..." + lexeme) > limit:
                        return "..." + lexeme
                else:
                    skip_next_name = True
            elif sets:
                pending = lexeme
        previous = lexeme
    if pending is not None and sets and _count(sets[-1], pending) > limit:
        return pending
    return None


def _count(counts: dict[str, int], key: str) -> int:
    counts[key] = counts.get(key, 0) + 1
    return counts[key]


def _cut_token_chain(document: DocumentNode) -> None:
    loc = document.loc
    if loc is None:
        return
    token: Token | None = loc.start_token
    while token is not None:
        following = token.next
        token.prev = token.next = None
        token = following


# --- field-merge work -------------------------------------------------------------------


class _OverBudget(Exception):
    pass


def field_merge_work(document: DocumentNode, *, budget: int) -> int:
    """The field pairs graphql-core's overlap rule would compare, counted up to just past
    ``budget`` (the walk stops there, so it costs at most about ``budget`` steps).

    Fragments are expanded where they are spread, which counts at least the rule's work
    (it remembers fragment pairs it has compared; this does not)."""
    counter = _MergeWork(document, budget)
    try:
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
                counter.within(definition.selection_set)
    except _OverBudget:
        return budget + 1
    return counter.work


class _MergeWork:
    def __init__(self, document: DocumentNode, budget: int) -> None:
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self.budget = budget
        self.work = 0

    def _count(self, steps: int = 1) -> None:
        self.work += steps
        if self.work > self.budget:
            raise _OverBudget

    def within(self, selection_set: SelectionSetNode) -> None:
        """Pairs inside one selection set, then inside every sub-selection below it."""
        by_key = self.collect(selection_set)
        for fields in by_key.values():
            for first, second in combinations(fields, 2):
                self._between(first, second)
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                self.within(selection.selection_set)

    def _between(self, first: FieldNode, second: FieldNode) -> None:
        self._count()
        if first.selection_set is None or second.selection_set is None:
            return
        left = self.collect(first.selection_set)
        right = self.collect(second.selection_set)
        for key, fields in left.items():
            for pair in product(fields, right.get(key, ())):
                self._between(*pair)

    def collect(self, selection_set: SelectionSetNode) -> dict[str, list[FieldNode]]:
        by_key: dict[str, list[FieldNode]] = {}
        for field in self._fields(selection_set, frozenset()):
            self._count()
            key = field.alias.value if field.alias else field.name.value
            by_key.setdefault(key, []).append(field)
        return by_key

    def _fields(
        self, selection_set: SelectionSetNode, spreading: frozenset[str]
    ) -> Iterator[FieldNode]:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                yield from self._fields(selection.selection_set, spreading)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in spreading:  # cycles: the rules' error
                    yield from self._fields(fragment.selection_set, spreading | {name})


# --- what an operation costs ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RootFields:
    """How many root fields an operation has (by response key: fields merged under one
    key run once), the count the rate limits charge."""

    operation: OperationType
    count: int


def root_fields(document: DocumentNode, operation_name: str | None) -> RootFields | None:
    """The root fields of the operation ``operation_name`` picks (fragments at the root
    expanded, ``@skip``/``@include`` ignored: an upper bound), or None if it picks none;
    ``__typename`` is free."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        chosen = operations[0] if len(operations) == 1 else None
    else:
        named = [d for d in operations if d.name and d.name.value == operation_name]
        chosen = named[0] if named else None
    if chosen is None:
        return None
    try:
        by_key = _MergeWork(document, MAX_ROOT_FIELDS_COUNTED).collect(chosen.selection_set)
    except _OverBudget:
        return RootFields(chosen.operation, MAX_ROOT_FIELDS_COUNTED)
    return RootFields(chosen.operation, len(by_key.keys() - {"__typename"}))
