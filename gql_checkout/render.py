"""Sessions as JSON values, named as the contract names them: one source for REST and for
the compiled GraphQL plans (whose values must be Strawberry's, byte for byte)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from gql_checkout.domain import Appearance, CheckoutSession, MerchantProfile, PaymentMethod, rfc3339

# A session's scalar fields: (session, now) -> JSON value.
SESSION_SCALARS: dict[str, Callable[[CheckoutSession, datetime], Any]] = {
    "id": lambda session, _now: str(session.id),
    "checkoutSessionStatus": lambda session, _now: session.status.value,
    "isExpired": lambda session, now: session.is_expired(now),
    "createdAt": lambda session, _now: rfc3339(session.created_at),
    "expiresAt": lambda session, _now: rfc3339(session.expires_at),
    "updatedAt": lambda session, _now: rfc3339(session.updated_at),
    "amount": lambda session, _now: session.amount,
    "currency": lambda session, _now: session.currency,
    "merchantReference": lambda session, _now: session.merchant_reference,
    "failureReason": lambda session, _now: session.failure_reason,
}


def payment_method_json(method: PaymentMethod) -> dict[str, Any]:
    return {"type": method.type, "brand": method.brand, "last4": method.last4}


def appearance_json(appearance: Appearance) -> dict[str, Any]:
    return {
        "theme": appearance.theme.value,
        "primaryColor": appearance.primary_color,
        "backgroundColor": appearance.background_color,
        "textColor": appearance.text_color,
        "fontFamily": appearance.font_family,
        "borderRadiusPx": appearance.border_radius_px,
        "logoUrl": appearance.logo_url,
    }


def card_categories_json(profile: MerchantProfile) -> list[str]:
    return [category.value for category in profile.card_categories]
