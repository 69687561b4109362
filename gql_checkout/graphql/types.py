"""Strawberry types: the shapes of schema.graphql, built from domain objects."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import strawberry

from gql_checkout.domain import (
    Appearance,
    CardCategory,
    CheckoutSession,
    CheckoutSessionStatus,
    PaymentMethod,
    Theme,
)
from gql_checkout.graphql.context import Info

# The domain enums become GraphQL enums as they are: one list of values, not two.
strawberry.enum(CheckoutSessionStatus, description="INITIATED until paid, failed or canceled.")
strawberry.enum(CardCategory, description="A card brand a merchant accepts.")
strawberry.enum(Theme, description="Colour scheme of the hosted checkout page.")


@strawberry.type(name="PaymentMethod")
class PaymentMethodType:
    type: str
    brand: str | None
    last4: str | None

    @classmethod
    def from_domain(cls, method: PaymentMethod) -> PaymentMethodType:
        return cls(type=method.type, brand=method.brand, last4=method.last4)


@strawberry.type(name="Appearance", description="How the hosted checkout page looks.")
class AppearanceType:
    theme: Theme
    primary_color: str = strawberry.field(description="CSS hex colour, e.g. #0A66C2.")
    background_color: str
    text_color: str
    font_family: str
    border_radius_px: int
    logo_url: str | None

    @classmethod
    def from_domain(cls, appearance: Appearance) -> AppearanceType:
        return cls(
            theme=appearance.theme,
            primary_color=appearance.primary_color,
            background_color=appearance.background_color,
            text_color=appearance.text_color,
            font_family=appearance.font_family,
            border_radius_px=appearance.border_radius_px,
            logo_url=appearance.logo_url,
        )


@strawberry.type(name="CheckoutSession")
class CheckoutSessionType:
    id: strawberry.ID
    checkout_session_status: CheckoutSessionStatus
    is_expired: bool = strawberry.field(description="INITIATED and past expiresAt.")
    created_at: datetime
    expires_at: datetime = strawberry.field(
        description="Effective expiry: a child session never outlives its parent."
    )
    updated_at: datetime
    amount: int = strawberry.field(description="Amount in minor units (cents).")
    currency: str = strawberry.field(description="ISO 4217 code.")
    merchant_reference: str | None
    payment_method: PaymentMethodType | None
    failure_reason: str | None
    session: strawberry.Private[CheckoutSession]

    @classmethod
    def from_domain(cls, session: CheckoutSession, *, now: datetime) -> CheckoutSessionType:
        return cls(
            id=strawberry.ID(str(session.id)),
            checkout_session_status=session.status,
            is_expired=session.is_expired(now),
            created_at=session.created_at,
            expires_at=session.expires_at,
            updated_at=session.updated_at,
            amount=session.amount,
            currency=session.currency,
            merchant_reference=session.merchant_reference,
            payment_method=(
                PaymentMethodType.from_domain(session.payment_method)
                if session.payment_method
                else None
            ),
            failure_reason=session.failure_reason,
            session=session,
        )

    @strawberry.field(description="The current child session, if any (lazy).")
    async def child_session(self, info: Info) -> CheckoutSessionType | None:
        return await _related(info, self.session.current_child_id)

    @strawberry.field(description="The parent of a child session (lazy).")
    async def parent_session(self, info: Info) -> CheckoutSessionType | None:
        return await _related(info, self.session.parent_id)

    @strawberry.field(description="The merchant's page appearance (lazy).")
    async def appearance(self, info: Info) -> AppearanceType | None:
        profile = await info.context.profiles_by_merchant_id.load(self.session.merchant_id)
        return AppearanceType.from_domain(profile.appearance) if profile else None

    @strawberry.field(description="Card brands the merchant accepts (lazy).")
    async def card_categories(self, info: Info) -> list[CardCategory]:
        profile = await info.context.profiles_by_merchant_id.load(self.session.merchant_id)
        return list(profile.card_categories) if profile else []

    @strawberry.field(
        description="Signed token for the hosted checkout page; works while the session is open."
    )
    def hcp_token(self, info: Info) -> str:
        return info.context.service.hcp_token(self.session)


async def _related(info: Info, checkout_session_id: UUID | None) -> CheckoutSessionType | None:
    if checkout_session_id is None:
        return None
    related = await info.context.sessions_by_id.load(checkout_session_id)
    return CheckoutSessionType.from_domain(related, now=info.context.now) if related else None


@strawberry.input(description="A new checkout session (or a child of one).")
class CreateCheckoutSessionInput:
    amount: int = strawberry.field(description="Minor units, 1 or more.")
    currency: str = strawberry.field(description="ISO 4217 code, e.g. EUR.")
    merchant_reference: str | None = None
    expires_in_seconds: int = strawberry.field(default=3600, description="60 to 86400.")
    parent_session_id: strawberry.ID | None = None
    idempotency_key: str | None = strawberry.field(
        default=None, description="Same key and input return the same session."
    )


@strawberry.input
class PaymentMethodInput:
    type: str = strawberry.field(description="CARD, WALLET or BANK_TRANSFER.")
    brand: str | None = None
    last4: str | None = None
