"""Checkout sessions: their statuses, payment methods and the validated create request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from gql_checkout.domain.errors import Forbidden, SessionNotFound

# A merchant's own strings on a session (order ids, cart ids): validated in
# ``validation.parse_metadata``, rendered as a JSON object.
Metadata = Mapping[str, str]


class CheckoutSessionStatus(StrEnum):
    INITIATED = "INITIATED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


TERMINAL_STATUSES = frozenset(
    {CheckoutSessionStatus.COMPLETED, CheckoutSessionStatus.FAILED, CheckoutSessionStatus.CANCELED}
)


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
    metadata: Metadata = field(default_factory=dict)
    # The expired session this one was created to recover (``recoverCheckoutSession``).
    recovered_from_id: UUID | None = None

    def is_expired(self, now: datetime) -> bool:
        return self.status is CheckoutSessionStatus.INITIATED and now >= self.expires_at

    def is_open(self, now: datetime) -> bool:
        return self.status is CheckoutSessionStatus.INITIATED and now < self.expires_at

    def state(self, now: datetime) -> str:
        """The session's state as an error message names it: open, expired or its status."""
        if self.is_open(now):
            return "open"
        return "expired" if self.is_expired(now) else self.status.value


def owned(session: CheckoutSession | None, *, merchant_id: UUID) -> CheckoutSession:
    """The session if it is the merchant's: an unknown one is not found (404), another
    merchant's forbidden (403). Every read and write answers this before the state."""
    if session is None:
        raise SessionNotFound
    if session.merchant_id != merchant_id:
        raise Forbidden
    return session


@dataclass(frozen=True, slots=True)
class NewCheckoutSession:
    """A validated create request, defaults applied (what idempotency keys compare)."""

    amount: int
    currency: str
    merchant_reference: str | None
    expires_in_seconds: int
    parent_session_id: UUID | None
    idempotency_key: str | None
    metadata: Metadata = field(default_factory=dict)
    recovered_from_id: UUID | None = None
