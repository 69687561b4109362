"""Error codes and masking, and a parser cache that reports like Strawberry.

Every GraphQL error gets ``extensions.code``; anything unexpected is masked and logged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import ParserCache, SchemaExtension

from gql_checkout.domain.errors import GatewayError, InternalError, ValidationError
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
            error.extensions = {**(error.extensions or {}), "code": VALIDATION_FAILED}


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
