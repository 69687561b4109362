"""Error codes and masking, and the admission of documents (graphql/documents.py) as a
Strawberry extension.

Every GraphQL error gets ``extensions.code``; anything unexpected is masked and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    parse,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.schema.schema import validate_document

from gql_checkout.domain.errors import GatewayError, InternalError, ValidationError
from gql_checkout.graphql.documents import Documents
from gql_checkout.http.request_id import current_request_id

logger = logging.getLogger(__name__)

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
# graphql-core reports its token limit as a syntax error; to clients it is a limit.
_TOKEN_LIMIT_PREFIX = "Syntax Error: Document contains more than"  # noqa: S105 (not a secret)


class MarkValidationErrors(SchemaExtension):
    """Tags the document's validation errors, which look like any other error later on."""

    def on_validate(self) -> Iterator[None]:
        yield
        for error in self.execution_context.pre_execution_errors or ():
            if isinstance(error, GraphQLSyntaxError):
                continue  # a refused document's parse error: coded as one by code_errors
            error.extensions = {"code": VALIDATION_FAILED, **(error.extensions or {})}


def code_errors(errors: list[GraphQLError]) -> None:
    """Gives every error its ``extensions.code`` in place; masks and logs unexpected ones.

    In place, because Strawberry hands the same list on to HTTP and websocket results.
    """
    errors[:] = [_coded(error) for error in errors]


def _coded(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, GatewayError):
        return _with_extensions(error, original.detail, _gateway_extensions(original))
    if original is None or isinstance(original, GraphQLError):
        if error.extensions and "code" in error.extensions:
            return error
        if isinstance(error, GraphQLSyntaxError):
            limit = error.message.startswith(_TOKEN_LIMIT_PREFIX)
            code = VALIDATION_FAILED if limit else PARSE_FAILED
        else:
            # From execution, without a cause of ours: variables that do not coerce.
            code = ValidationError.code
        return _with_extensions(error, error.message, {"code": code})
    logger.error(
        "unhandled error in GraphQL resolver",
        exc_info=original,
        extra={"request_id": current_request_id()},
    )
    return _with_extensions(error, InternalError.default_detail, {"code": InternalError.code})


def _gateway_extensions(error: GatewayError) -> dict[str, object]:
    extensions: dict[str, object] = {"code": error.code}
    if isinstance(error, ValidationError) and error.field_errors:
        extensions["errors"] = [
            {"field": field_error.field, "message": field_error.message}
            for field_error in error.field_errors
        ]
    return extensions


def _with_extensions(
    error: GraphQLError, message: str, extensions: dict[str, object]
) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


class OperationNotChosen(CannotGetOperationTypeError, ValidationError):
    """The request names no operation of its document, or none when it has several: a
    request error (400 over HTTP, a coded error over a websocket), never an echo of
    kilobytes of the name it sent."""

    def __init__(self, reason: str) -> None:
        ValidationError.__init__(self, detail=reason)
        self.operation_name = None

    def as_http_error_reason(self) -> str:
        return self.detail


_NAME_SHOWN = 64  # characters of an unknown operationName repeated in the error


def check_operation_choice(document: DocumentNode, operation_name: str | None) -> None:
    """Raises OperationNotChosen unless ``operation_name`` picks one operation (or the
    document has exactly one and no name is given)."""
    names = [
        definition.name.value if definition.name else None
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    ]
    if operation_name is None:
        if len(names) > 1:
            raise OperationNotChosen(
                "The document has several operations: operationName must name the one to run."
            )
    elif operation_name not in names:
        shown = operation_name[:_NAME_SHOWN] + ("…" if len(operation_name) > _NAME_SHOWN else "")
        raise OperationNotChosen(f'Unknown operation named "{shown}".')


# A valid document put in place of a refused one: Strawberry then neither parses nor
# validates, and reports the refusal (set as its pre-execution errors) as a result.
_REFUSED = parse("{ __typename }")


class AdmitDocuments(SchemaExtension):
    """Parsing and validation through ``Documents``: its limits first (size, tokens,
    field-merge work), then its digest-keyed caches of parsed documents and of their
    validation; the operation the request names is checked before anything runs."""

    def __init__(self, documents: Documents) -> None:
        super().__init__()
        self._documents = documents
        self._digest: bytes | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None and context.graphql_document is None:
            try:
                if not isinstance(context.query, str):  # a websocket's payload, unchecked
                    raise ValidationError.on("query", "must be a string")
                admitted = self._documents.admit(context.query)
            except ValidationError as error:
                context.graphql_document = _REFUSED
                context.pre_execution_errors = [GraphQLError(error.detail, original_error=error)]
            except GraphQLError as error:
                context.graphql_document = _REFUSED
                context.pre_execution_errors = [error]
            else:
                check_operation_choice(admitted.document, context.operation_name)
                self._digest = admitted.digest
                context.graphql_document = admitted.document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if self._digest is not None and context.pre_execution_errors is None:
            key = (self._digest, tuple(context.validation_rules))
            errors = self._documents.validated(key)
            if errors is None:
                assert context.graphql_document is not None
                errors = validate_document(
                    context.schema._schema, context.graphql_document, context.validation_rules
                )
                self._documents.remember_validation(key, errors)
            # A copy: the errors are coded in place later, and the cache keeps the originals.
            context.pre_execution_errors = list(errors)
        yield
