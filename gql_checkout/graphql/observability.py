"""Per-operation metrics for Prometheus."""

from __future__ import annotations

import time
from collections.abc import Iterator

from graphql import DocumentNode, FieldNode, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from gql_checkout.graphql.context import GraphQLContext
from gql_checkout.graphql.extensions import PARSE_FAILED, VALIDATION_FAILED

UNLABELLED = "invalid"


class OperationMetrics(SchemaExtension):
    """Labels stay bounded: root fields are named only once the document validated (so
    they are the schema's), and fragments at the root are not followed."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        if not isinstance(context.context, GraphQLContext):
            return  # executed outside the app (e.g. a schema test)
        errors = context.result.errors if context.result is not None else None
        code = str((errors[0].extensions or {}).get("code")) if errors else "OK"
        valid = code not in {PARSE_FAILED, VALIDATION_FAILED}
        context.context.metrics.observe_graphql(
            operation_type=context.operation_type.value if valid else UNLABELLED,
            root_fields=self._root_fields() if valid else UNLABELLED,
            code=code,
            started=started,
        )

    def _root_fields(self) -> str:
        document = self.execution_context.graphql_document
        return UNLABELLED if document is None else root_fields_label(document)


def root_fields_label(document: DocumentNode) -> str:
    """The ``root_fields`` label of a valid document: its operations' root field names."""
    names = {
        selection.name.value if isinstance(selection, FieldNode) else "fragment"
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
        for selection in definition.selection_set.selections
    }
    return ",".join(sorted(names))
