"""graphql/documents.py: the lexical repeat scan agrees with the parsed document, the merge
work counts what the overlap rule compares, and the caches stay bounded."""

from __future__ import annotations

from collections import Counter

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
    parse,
    visit,
)
from graphql.language import Visitor
from hypothesis import given
from hypothesis import strategies as st

from gql_checkout.graphql.documents import (
    MAX_DOCUMENTS,
    Documents,
    field_merge_work,
    repeated_selection,
)

NAMES = st.sampled_from(["id", "a", "b", "on", "query", "fragment", "__typename"])
ARGUMENTS = st.sampled_from(
    ["", "(x: 1)", '(x: "{ a a a }")', '(x: {y: {z: [1, "}"]}})', '(x: """ { """)', "(x: $v)"]
)
DIRECTIVES = st.sampled_from(["", " @include(if: true)", " @skip(if: $v) @deprecated"])
COMMENTS = st.sampled_from(["", " # a a a { }\n", "\n"])


@st.composite
def _selection_sets(draw: st.DrawFn, depth: int = 0) -> str:
    items = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        kind = draw(st.sampled_from(["field", "field", "alias", "spread", "inline"]))
        inner = ""
        if depth < 3 and draw(st.booleans()):
            inner = " " + draw(_selection_sets(depth + 1))
        name = draw(NAMES)
        if kind == "spread":
            items.append(f"...F{draw(st.integers(0, 2))}{draw(DIRECTIVES)}")
        elif kind == "inline":
            body = inner or "{ id }"
            items.append(f"... on T{draw(DIRECTIVES)} {body}")
        else:
            alias = f"{draw(NAMES)}: " if kind == "alias" else ""
            items.append(f"{alias}{name}{draw(ARGUMENTS)}{draw(DIRECTIVES)}{inner}")
        items.append(draw(COMMENTS))
    return "{ " + " ".join(items) + " }"


def _most_repeated(document: str) -> int:
    """The largest count of one key (or spread) written in one selection set, from the AST."""
    most = 0

    class Sets(Visitor):
        def enter_selection_set(self, node: SelectionSetNode, *_args: object) -> None:
            nonlocal most
            keys: Counter[str] = Counter()
            for selection in node.selections:
                if isinstance(selection, FieldNode):
                    keys[selection.alias.value if selection.alias else selection.name.value] += 1
                elif isinstance(selection, FragmentSpreadNode):
                    keys["..." + selection.name.value] += 1
                else:
                    assert isinstance(selection, InlineFragmentNode)
            most = max([most, *keys.values()])

    visit(parse(document), Sets())
    return most


@given(selections=_selection_sets(), limit=st.integers(min_value=1, max_value=3))
def test_the_lexical_scan_agrees_with_the_parsed_document(selections: str, limit: int) -> None:
    document = f"query Q($v: Boolean = true) {selections}"

    found = repeated_selection(document, limit=limit)

    assert (found is not None) == (_most_repeated(document) > limit), found


def test_field_merge_work_counts_pairs_and_stops_at_its_budget() -> None:
    flat = parse("{ a { id } a { id } a { id } }")
    wide = parse("{ " + "a { id } " * 100 + "}")

    # 3 fields collected; 3 pairs, each one step, two collected ids and one pair of them;
    # then each sub-selection's own id collected
    assert field_merge_work(flat, budget=1_000) == 3 + 3 * (1 + 2 + 1) + 3
    assert field_merge_work(wide, budget=1_000) == 1_001


def test_documents_are_remembered_by_digest_boundedly_without_their_token_chains() -> None:
    documents = Documents(max_bytes=65_536, max_tokens=2_000, max_merge_work=2_000)

    first = documents.admit("{ a }")
    again = documents.admit("{ a }")
    for number in range(MAX_DOCUMENTS):
        documents.admit(f"# {number}\n{{ a }}")
    evicted = documents.admit("{ a }")

    assert again.document is first.document
    assert evicted.document is not first.document
    assert first.document.loc is not None
    assert first.document.loc.start_token.next is None
