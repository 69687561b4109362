"""The hot mutations' work, one function each, from arguments as GraphQL coerced them to
the session written: Strawberry's resolvers and the compiled mutations
(graphql/compiled_mutations.py) both call these, so the credential check, the parsing
rules and the service call exist once."""

from __future__ import annotations

from typing import Any

from gql_checkout.domain.checkout_sessions import CheckoutSession
from gql_checkout.domain.validation import (
    parse_failure_reason,
    parse_new_checkout_session,
    parse_payment_method,
    parse_uuid,
)
from gql_checkout.graphql.context import GraphQLContext


async def create_checkout_session(
    context: GraphQLContext,
    *,
    amount: int,
    currency: str,
    merchant_reference: str | None,
    expires_in_seconds: int | None,
    parent_session_id: str | None,
    idempotency_key: str | None,
    metadata: Any,
) -> CheckoutSession:
    """``createCheckoutSession``: the API key's merchant creates a session."""
    merchant = await context.writer()
    request = parse_new_checkout_session(
        amount=amount,
        currency=currency,
        merchant_reference=merchant_reference,
        expires_in_seconds=expires_in_seconds,
        parent_session_id=parent_session_id,
        idempotency_key=idempotency_key,
        metadata=metadata,
    )
    return await context.service.create_checkout_session(merchant_id=merchant.id, request=request)


async def cancel_checkout_session(
    context: GraphQLContext, *, checkout_session_id: str
) -> CheckoutSession:
    """``cancelCheckoutSession``."""
    merchant = await context.writer()
    return await context.service.cancel_checkout_session(
        merchant_id=merchant.id, checkout_session_id=parse_uuid(checkout_session_id, field="id")
    )


async def complete_checkout_session(
    context: GraphQLContext,
    *,
    checkout_session_id: str,
    type: str,
    brand: str | None,
    last4: str | None,
) -> CheckoutSession:
    """``completeCheckoutSession``, with the payment method's fields."""
    merchant = await context.writer()
    return await context.service.complete_checkout_session(
        merchant_id=merchant.id,
        checkout_session_id=parse_uuid(checkout_session_id, field="id"),
        payment_method=parse_payment_method(type=type, brand=brand, last4=last4),
    )


async def fail_checkout_session(
    context: GraphQLContext, *, checkout_session_id: str, reason: str | None
) -> CheckoutSession:
    """``failCheckoutSession``."""
    merchant = await context.writer()
    return await context.service.fail_checkout_session(
        merchant_id=merchant.id,
        checkout_session_id=parse_uuid(checkout_session_id, field="id"),
        reason=parse_failure_reason(reason),
    )
