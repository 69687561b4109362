"""The webhook outbox's tables (migrations/versions/0005)."""

from __future__ import annotations

from datetime import datetime
from typing import cast
from uuid import UUID

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from gql_checkout.storage.tables import Base

_PENDING = text("status = 'PENDING'")


class WebhookEndpointRow(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    merchant_id: Mapped[UUID] = mapped_column(ForeignKey("merchants.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(String(500))
    enabled: Mapped[bool]
    # AES-GCM under a key derived from the hcpToken secret (services/webhook_secrets.py):
    # the signing secret itself must be at hand to sign, so it cannot be only hashed.
    secret: Mapped[str] = mapped_column(String(200))
    # After a rotation the old secret signs too, until it expires (24 h).
    previous_secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookEventRow(Base):
    __tablename__ = "webhook_events"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    merchant_id: Mapped[UUID] = mapped_column(ForeignKey("merchants.id"))
    checkout_session_id: Mapped[UUID] = mapped_column(ForeignKey("checkout_sessions.id"))
    type: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
    # The body every attempt sends, written with the transition: retries and redeliveries
    # send the same bytes, whatever the session became since.
    payload: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        # Transitions are terminal and expiry happens once: one event per session and type,
        # which makes the expiry sweeper (and a manual expiry racing it) safe to repeat.
        UniqueConstraint("checkout_session_id", "type", name="uq_webhook_events_session_type"),
        # The event log: a merchant's events, newest first, by keyset.
        Index("ix_webhook_events_merchant_created", "merchant_id", "created_at", "id"),
    )


class WebhookDeliveryRow(Base):
    __tablename__ = "webhook_deliveries"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    event_id: Mapped[UUID] = mapped_column(ForeignKey("webhook_events.id"))
    endpoint_id: Mapped[UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int]
    # Attempts since the delivery was (re)scheduled: the position in the retry schedule.
    round_attempts: Mapped[int]
    # While PENDING: when the next attempt is due. A claim moves it to the end of its lease,
    # so a claim whose process died is due again then.
    next_attempt_at: Mapped[datetime | None]
    claimed_by: Mapped[UUID | None]
    last_response_status: Mapped[int | None]
    last_attempt_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
        # Only pending deliveries are ever claimed: the index holds them alone.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            sqlite_where=_PENDING,
            postgresql_where=_PENDING,
        ),
    )


class WebhookAttemptRow(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    delivery_id: Mapped[UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime]
    response_status: Mapped[int | None]
    duration_ms: Mapped[int]
    error: Mapped[str | None] = mapped_column(String(500))


class WebhookSweepRow(Base):
    """How far the expiry sweeper got: it looks only at sessions that expired since."""

    __tablename__ = "webhook_sweeps"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    swept_until: Mapped[datetime]


endpoints = cast(Table, WebhookEndpointRow.__table__)
events = cast(Table, WebhookEventRow.__table__)
deliveries = cast(Table, WebhookDeliveryRow.__table__)
attempts = cast(Table, WebhookAttemptRow.__table__)
sweeps = cast(Table, WebhookSweepRow.__table__)
