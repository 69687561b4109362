"""Enums and frozen dataclasses of the checkout domain; no transport, no database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from uuid import UUID

import orjson


class CheckoutSessionStatus(StrEnum):
    INITIATED = "INITIATED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


TERMINAL_STATUSES = frozenset(
    {CheckoutSessionStatus.COMPLETED, CheckoutSessionStatus.FAILED, CheckoutSessionStatus.CANCELED}
)


class CardCategory(StrEnum):
    """Card brands a merchant accepts on its hosted checkout page."""

    VISA = "VISA"
    MASTERCARD = "MASTERCARD"
    AMERICAN_EXPRESS = "AMERICAN_EXPRESS"
    DISCOVER = "DISCOVER"
    DINERS_CLUB = "DINERS_CLUB"
    JCB = "JCB"
    UNIONPAY = "UNIONPAY"
    MAESTRO = "MAESTRO"
    CARTES_BANCAIRES = "CARTES_BANCAIRES"


DEFAULT_CARD_CATEGORIES: tuple[CardCategory, ...] = (
    CardCategory.VISA,
    CardCategory.MASTERCARD,
    CardCategory.AMERICAN_EXPRESS,
)


class Theme(StrEnum):
    LIGHT = "LIGHT"
    DARK = "DARK"
    AUTO = "AUTO"


@dataclass(frozen=True, slots=True)
class Appearance:
    """How the hosted checkout page looks for one merchant."""

    theme: Theme = Theme.LIGHT
    primary_color: str = "#0A66C2"
    background_color: str = "#FFFFFF"
    text_color: str = "#1A1A1A"
    font_family: str = "system-ui, sans-serif"
    border_radius_px: int = 8
    logo_url: str | None = None


@dataclass(frozen=True, slots=True)
class MerchantProfile:
    """What the page needs of the merchant: loaded lazily, once per request per merchant."""

    merchant_id: UUID
    appearance: Appearance
    card_categories: tuple[CardCategory, ...]


@dataclass(frozen=True, slots=True)
class Merchant:
    id: UUID
    name: str


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    type: str
    brand: str | None = None
    last4: str | None = None


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    id: UUID
    merchant_id: UUID
    status: CheckoutSessionStatus
    amount: int
    currency: str
    merchant_reference: str | None
    created_at: datetime
    # Effective expiry: a child's is min(own, parent's), fixed when it is created.
    expires_at: datetime
    updated_at: datetime
    version: int
    payment_method: PaymentMethod | None
    failure_reason: str | None
    parent_id: UUID | None
    current_child_id: UUID | None
    # As signed when the session was created (None on rows older than that): a bearer
    # credential, kept out of repr and so out of logs. ``service.hcp_token`` answers it.
    hcp_token: str | None = field(repr=False)

    def is_expired(self, now: datetime) -> bool:
        return self.status is CheckoutSessionStatus.INITIATED and now >= self.expires_at

    def is_open(self, now: datetime) -> bool:
        return self.status is CheckoutSessionStatus.INITIATED and now < self.expires_at


@dataclass(frozen=True, slots=True)
class NewCheckoutSession:
    """A validated create request, defaults applied (what idempotency keys compare)."""

    amount: int
    currency: str
    merchant_reference: str | None
    expires_in_seconds: int
    parent_session_id: UUID | None
    idempotency_key: str | None


def rfc3339(moment: datetime) -> str:
    """The one timestamp form of the API, REST and GraphQL alike: UTC, whole seconds
    (truncated), with ``Z``.

    orjson writes it in C: 0.44 µs, against 1.48 for ``isoformat`` and slicing. Cheap
    enough to need no memo: with one, a timestamp not rendered lately cost ~2 µs (1.48
    and the memo's ~0.5), and a repeated one saved 0.3.
    """
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return _dumps(moment, option=_RFC3339)[1:-1].decode()


_dumps = orjson.dumps
_RFC3339 = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS
