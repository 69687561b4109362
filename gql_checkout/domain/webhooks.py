"""Webhooks: event types, endpoints, events and their deliveries (CONTRACT section 11)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from uuid import UUID

from gql_checkout.domain.checkout_sessions import CheckoutSessionStatus
from gql_checkout.domain.errors import ValidationError

MAX_DESCRIPTION_LENGTH = 500


class WebhookEventType(Enum):
    """The GraphQL name is the member's; the value is the ``type`` of the delivered body."""

    CHECKOUT_SESSION_COMPLETED = "checkout_session.completed"
    CHECKOUT_SESSION_FAILED = "checkout_session.failed"
    CHECKOUT_SESSION_CANCELED = "checkout_session.canceled"
    CHECKOUT_SESSION_EXPIRED = "checkout_session.expired"


EVENT_TYPE_OF_STATUS = {
    CheckoutSessionStatus.COMPLETED: WebhookEventType.CHECKOUT_SESSION_COMPLETED,
    CheckoutSessionStatus.FAILED: WebhookEventType.CHECKOUT_SESSION_FAILED,
    CheckoutSessionStatus.CANCELED: WebhookEventType.CHECKOUT_SESSION_CANCELED,
}
EVENT_TYPES_BY_VALUE = {event_type.value: event_type for event_type in WebhookEventType}


class WebhookDeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class SessionChange:
    """A session a transaction moved, and the event that reports it."""

    checkout_session_id: UUID
    type: WebhookEventType


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: UUID
    merchant_id: UUID
    url: str
    events: tuple[WebhookEventType, ...]
    description: str | None
    enabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewWebhookEndpoint:
    """A validated endpoint to register."""

    url: str
    events: tuple[WebhookEventType, ...]
    description: str | None


@dataclass(frozen=True, slots=True)
class WebhookEndpointChange:
    """A validated update: None leaves a value as it is."""

    url: str | None = None
    events: tuple[WebhookEventType, ...] | None = None
    description: str | None = None
    enabled: bool | None = None


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    id: UUID
    event_id: UUID
    endpoint_id: UUID
    status: WebhookDeliveryStatus
    attempts: int
    last_response_status: int | None
    # While PENDING, when the next attempt is due (during an attempt: the end of its lease).
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: UUID
    merchant_id: UUID
    checkout_session_id: UUID
    type: WebhookEventType
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WebhookEventFilter:
    types: tuple[WebhookEventType, ...] | None = None
    delivery_status: WebhookDeliveryStatus | None = None
    checkout_session_id: UUID | None = None


def message_id(event_id: UUID) -> str:
    """``webhook-id``: one per event, the same on every attempt and every endpoint, so a
    receiver can drop the duplicates at-least-once delivery makes."""
    return f"msg_{event_id.hex}"


def parse_event_types(
    values: list[WebhookEventType], *, field: str = "events"
) -> tuple[WebhookEventType, ...]:
    """At least one type; repeats dropped, in the order given."""
    if not values:
        raise ValidationError.on(field, "must name at least one event type")
    return tuple(dict.fromkeys(values))


def parse_description(value: str | None, *, field: str = "description") -> str | None:
    if value is not None and len(value) > MAX_DESCRIPTION_LENGTH:
        raise ValidationError.on(field, f"must have at most {MAX_DESCRIPTION_LENGTH} characters")
    return value or None
