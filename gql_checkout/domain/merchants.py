"""Merchants and what the hosted checkout page shows of them: appearance, card brands."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID


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
    primary_color: str = field(
        default="#0A66C2", metadata={"description": "CSS hex colour, e.g. #0A66C2."}
    )
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
class Reader:
    """Who a read acts for: a merchant, and, when an hcpToken was the credential, the one
    checkout session that token opens (it reads no other)."""

    merchant_id: UUID
    checkout_session_id: UUID | None = None
    # The merchant's API key was the credential: what lists (the back office) require.
    by_api_key: bool = False
