"""Query and Mutation roots, and the schema with its limits and caches."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable
from datetime import datetime
from typing import Any

import strawberry
from graphql import (
    ASTValidationRule,
    GraphQLError,
    NoSchemaIntrospectionCustomRule,
    ValidationContext,
    specified_rules,
)
from strawberry.extensions import AddValidationRules, SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.tools import merge_types
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from gql_checkout.domain.clock import rfc3339
from gql_checkout.domain.errors import ValidationError
from gql_checkout.domain.listing import DEFAULT_PAGE_SIZE, SessionFilter, parse_page_request
from gql_checkout.domain.validation import (
    parse_idempotency_key,
    parse_uuid,
)
from gql_checkout.graphql import mutations
from gql_checkout.graphql.compiled import Compiler
from gql_checkout.graphql.connections import CheckoutSessionConnection, CheckoutSessionFilter
from gql_checkout.graphql.context import Info
from gql_checkout.graphql.documents import Documents
from gql_checkout.graphql.extensions import AdmitDocuments, MarkValidationErrors, code_errors
from gql_checkout.graphql.observability import OperationMetrics
from gql_checkout.graphql.types import (
    CheckoutSessionType,
    CreateCheckoutSessionInput,
    PaymentMethodInput,
)
from gql_checkout.graphql.webhooks import WebhookMutation, WebhookQuery
from gql_checkout.settings import Limits


@strawberry.type
class Query:
    @strawberry.field(description="A session of the calling merchant; same rules as REST.")
    async def checkout_session(self, info: Info, id: strawberry.ID) -> CheckoutSessionType | None:
        context = info.context
        checkout_session_id = parse_uuid(id, field="id")
        reader = await context.reader()
        # Through the loader: several root fields share one query, and their children then
        # fall into one batch too.
        loaded = await context.sessions_by_id.load(checkout_session_id)
        session = context.service.readable(loaded, reader=reader, now=context.now)
        return CheckoutSessionType.from_domain(session, now=context.now)

    @strawberry.field(description="The merchant's sessions, newest first (API key required).")
    async def checkout_sessions(
        self,
        info: Info,
        first: int | None = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: CheckoutSessionFilter | None = None,
    ) -> CheckoutSessionConnection:
        context = info.context
        merchant_id = await context.back_office_reader()
        request = parse_page_request(
            first=first,
            after=after,
            session_filter=filter.to_domain() if filter is not None else SessionFilter(),
        )
        page = await context.service.list_checkout_sessions(
            merchant_id=merchant_id, request=request
        )
        return CheckoutSessionConnection.from_page(page, context)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Creates a session, or a child of an open session.")
    async def create_checkout_session(
        self, info: Info, input: CreateCheckoutSessionInput
    ) -> CheckoutSessionType:
        session = await mutations.create_checkout_session(
            info.context,
            amount=input.amount,
            currency=input.currency,
            merchant_reference=input.merchant_reference,
            expires_in_seconds=input.expires_in_seconds,
            parent_session_id=input.parent_session_id,
            idempotency_key=input.idempotency_key,
            metadata=input.metadata,
        )
        return CheckoutSessionType.from_domain(session, now=info.context.service.clock())

    @strawberry.mutation(description="Cancels an open session (and its open child).")
    async def cancel_checkout_session(self, info: Info, id: strawberry.ID) -> CheckoutSessionType:
        session = await mutations.cancel_checkout_session(info.context, checkout_session_id=id)
        return CheckoutSessionType.from_domain(session, now=info.context.service.clock())

    @strawberry.mutation(description="Completes an open session with its payment method.")
    async def complete_checkout_session(
        self, info: Info, id: strawberry.ID, payment_method: PaymentMethodInput
    ) -> CheckoutSessionType:
        session = await mutations.complete_checkout_session(
            info.context,
            checkout_session_id=id,
            type=payment_method.type,
            brand=payment_method.brand,
            last4=payment_method.last4,
        )
        return CheckoutSessionType.from_domain(session, now=info.context.service.clock())

    @strawberry.mutation(description="Fails an open session; a parent stays open for a retry.")
    async def fail_checkout_session(
        self, info: Info, id: strawberry.ID, reason: str | None = None
    ) -> CheckoutSessionType:
        session = await mutations.fail_checkout_session(
            info.context, checkout_session_id=id, reason=reason
        )
        return CheckoutSessionType.from_domain(session, now=info.context.service.clock())

    @strawberry.mutation(description="Ends an open session now, and its open child with it.")
    async def expire_checkout_session(self, info: Info, id: strawberry.ID) -> CheckoutSessionType:
        context = info.context
        merchant = await context.writer()
        session = await context.service.expire_checkout_session(
            merchant_id=merchant.id, checkout_session_id=parse_uuid(id, field="id")
        )
        return CheckoutSessionType.from_domain(session, now=context.service.clock())

    @strawberry.mutation(
        description="A new open session from an expired one (amount, currency, reference, "
        "metadata); a child's under the same parent, if that is still open."
    )
    async def recover_checkout_session(
        self, info: Info, id: strawberry.ID, idempotency_key: str | None = None
    ) -> CheckoutSessionType:
        context = info.context
        merchant = await context.writer()
        session = await context.service.recover_checkout_session(
            merchant_id=merchant.id,
            checkout_session_id=parse_uuid(id, field="id"),
            idempotency_key=parse_idempotency_key(idempotency_key),
        )
        return CheckoutSessionType.from_domain(session, now=context.service.clock())


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The session now, then every change; completes once it is closed or expired."
    )
    async def checkout_session_updated(
        self, info: Info, id: strawberry.ID
    ) -> AsyncGenerator[CheckoutSessionType, None]:
        context = info.context
        checkout_session_id = parse_uuid(id, field="id")
        merchant_id = await context.subscriber(checkout_session_id)
        watch = context.service.watch_checkout_session(
            merchant_id=merchant_id, checkout_session_id=checkout_session_id
        )
        with context.metrics.subscription():
            async for session in watch:
                context.refresh()
                yield CheckoutSessionType.from_domain(session, now=context.now)


def _parse_datetime(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError.on("DateTime", "must be an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise ValidationError.on("DateTime", "must carry a time zone (e.g. Z)")
    return parsed


DATETIME = strawberry.scalar(
    name="DateTime",
    description="RFC 3339 timestamp in UTC with Z, e.g. 2026-01-01T12:00:00Z.",
    serialize=rfc3339,
    parse_value=_parse_datetime,
)


class GatewaySchema(strawberry.Schema):
    # Set by build_schema: what admits documents (limits, digest-keyed caches), and plans
    # for hot queries validated by this schema's own rules.
    documents: Documents
    compiler: Compiler | None = None

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Strawberry's one hook that sees every error of queries, mutations and
        subscriptions alike: code them here (only unexpected ones are logged)."""
        code_errors(errors)

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Subscriptions run only over websockets (``subscribe``): over HTTP Strawberry
        would execute one as a query and fail with an internal error."""
        allowed = set(allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES)
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed - {OperationType.SUBSCRIPTION},
            operation_extensions,
        )


def _depth_rule(max_depth: int) -> type[ASTValidationRule]:
    """Strawberry's depth rule, made safe for empty selection sets (``{}``), which
    graphql-core parses and Strawberry's depth count crashes on."""
    strawberry_rule = depth_rule(max_depth, None, None)

    class DepthLimit(strawberry_rule):  # type: ignore[valid-type, misc]
        def __init__(self, context: ValidationContext) -> None:
            try:
                super().__init__(context)
            except ValueError:
                context.report_error(GraphQLError("Selection sets must not be empty."))
                ASTValidationRule.__init__(self, context)

    return DepthLimit


def build_schema(
    *,
    limits: Limits | None = None,
    production: bool = False,
    tracing: bool = False,
    compiled: bool = True,
) -> GatewaySchema:
    limits = limits or Limits()
    # The rule classes are built once: the validation cache keys on them, so a rule class
    # made per request would never hit (strawberry issue 4635).
    rules: list[type[ASTValidationRule]] = [
        _depth_rule(limits.max_depth),
        alias_rule(limits.max_aliases),
    ]
    if production:
        rules.append(NoSchemaIntrospectionCustomRule)

    def validation_rules() -> SchemaExtension:
        return AddValidationRules(rules)

    # One for the schema: its caches serve every request, and the compiled plans too.
    documents = Documents(
        max_bytes=limits.max_document_bytes,
        max_tokens=limits.max_tokens,
        max_merge_work=limits.max_merge_work,
    )

    def admit_documents() -> SchemaExtension:
        return AdmitDocuments(documents)

    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        OperationMetrics,
        MarkValidationErrors,
        validation_rules,
        admit_documents,
    ]
    if tracing:
        # Imported only when asked for: OpenTelemetry is an optional extra.
        from strawberry.extensions.tracing import OpenTelemetryExtension

        extensions.append(OpenTelemetryExtension)
    schema = GatewaySchema(
        query=merge_types("Query", (Query, WebhookQuery)),
        mutation=merge_types("Mutation", (Mutation, WebhookMutation)),
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(
            scalar_map={datetime: DATETIME},
            disable_field_suggestions=production,
            batching_config={"max_operations": limits.max_batch},
        ),
    )
    schema.documents = documents
    if compiled and not tracing:  # a plan runs no resolvers: it would have no spans
        # Strawberry's rules for a request: graphql-core's, then those added above.
        schema.compiler = Compiler(schema._schema, (*specified_rules, *rules), documents)
    return schema
