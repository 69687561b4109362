"""Schema extensions: error codes and masking, and a parser cache that reports like Strawberry.

Every GraphQL error gets ``extensions.code``; anything unexpected is masked and logged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import ParserCache, SchemaExtension

from gql_checkout.errors import GatewayError, InternalError, ValidationError
from gql_checkout.requestctx import current_request_id

logger = logging.getLogger(__name__)

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
# graphql-core reports its token limit as a syntax error; to clients it is a limit.
_TOKEN_LIMIT_PREFIX = "Syntax Error: Document contains more than"  # noqa: S105 (not a secret)


class ErrorCodes(SchemaExtension):
    """Created per operation (passed to the schema as a class), so it may keep state."""

    def __init__(self) -> None:
        self._validation_errors: list[GraphQLError] = []

    def on_validate(self) -> Iterator[None]:
        yield
        self._validation_errors = list(self.execution_context.pre_execution_errors or ())

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [self._coded(error) for error in result.errors]

    def _coded(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, GatewayError):
            return _with_extensions(error, original.detail, _gateway_extensions(original))
        if original is None or isinstance(original, GraphQLError):
            if isinstance(error, GraphQLSyntaxError):
                code = (
                    VALIDATION_FAILED
                    if error.message.startswith(_TOKEN_LIMIT_PREFIX)
                    else (PARSE_FAILED)
                )
            elif any(error is seen for seen in self._validation_errors):
                code = VALIDATION_FAILED
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


class ReportingParserCache(ParserCache):
    """Strawberry's ParserCache, except that a document that does not parse is not cached.

    Strawberry's own ParserCache raises syntax errors from inside its hook, which skips
    every extension's ``on_operation`` exit (so ErrorCodes could not code them). Here
    the failure is left to Strawberry's parser, which reports it as a normal result.
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        # On failure Strawberry parses again, fails the same way, and reports it as a result.
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        yield
