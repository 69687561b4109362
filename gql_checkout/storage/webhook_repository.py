"""Statements of the webhook tables: endpoints, the event log, deliveries. No rules here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_checkout.domain.webhooks import (
    EVENT_TYPES_BY_VALUE,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventFilter,
)
from gql_checkout.storage.webhook_tables import attempts, deliveries, endpoints, events

_PENDING = WebhookDeliveryStatus.PENDING.value
_ENDPOINT_COLUMNS = (
    endpoints.c.id,
    endpoints.c.merchant_id,
    endpoints.c.url,
    endpoints.c.events,
    endpoints.c.description,
    endpoints.c.enabled,
    endpoints.c.created_at,
)
_EVENT_COLUMNS = (
    events.c.id,
    events.c.merchant_id,
    events.c.checkout_session_id,
    events.c.type,
    events.c.created_at,
)
_DELIVERY_COLUMNS = (
    deliveries.c.id,
    deliveries.c.event_id,
    deliveries.c.endpoint_id,
    deliveries.c.status,
    deliveries.c.attempts,
    deliveries.c.last_response_status,
    deliveries.c.next_attempt_at,
)


def _endpoint(row: Any) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row.id,
        merchant_id=row.merchant_id,
        url=row.url,
        events=tuple(EVENT_TYPES_BY_VALUE[value] for value in row.events),
        description=row.description,
        enabled=row.enabled,
        created_at=row.created_at,
    )


def _event(row: Any) -> WebhookEvent:
    return WebhookEvent(
        id=row.id,
        merchant_id=row.merchant_id,
        checkout_session_id=row.checkout_session_id,
        type=EVENT_TYPES_BY_VALUE[row.type],
        created_at=row.created_at,
    )


def _delivery(row: Any) -> WebhookDelivery:
    status = WebhookDeliveryStatus(row.status)
    return WebhookDelivery(
        id=row.id,
        event_id=row.event_id,
        endpoint_id=row.endpoint_id,
        status=status,
        attempts=row.attempts,
        last_response_status=row.last_response_status,
        next_attempt_at=row.next_attempt_at if status is WebhookDeliveryStatus.PENDING else None,
    )


# --- endpoints ----------------------------------------------------------------------------


async def insert_endpoint(
    conn: AsyncConnection, *, endpoint: WebhookEndpoint, sealed_secret: str
) -> None:
    await conn.execute(
        endpoints.insert().values(
            id=endpoint.id,
            merchant_id=endpoint.merchant_id,
            url=endpoint.url,
            events=[event_type.value for event_type in endpoint.events],
            description=endpoint.description,
            enabled=endpoint.enabled,
            secret=sealed_secret,
            created_at=endpoint.created_at,
            updated_at=endpoint.created_at,
        )
    )


async def get_endpoint(conn: AsyncConnection, *, endpoint_id: UUID) -> WebhookEndpoint | None:
    row = (
        await conn.execute(select(*_ENDPOINT_COLUMNS).where(endpoints.c.id == endpoint_id))
    ).first()
    return _endpoint(row) if row else None


async def list_endpoints(conn: AsyncConnection, *, merchant_id: UUID) -> list[WebhookEndpoint]:
    result = await conn.execute(
        select(*_ENDPOINT_COLUMNS)
        .where(endpoints.c.merchant_id == merchant_id)
        .order_by(endpoints.c.created_at, endpoints.c.id)
    )
    return [_endpoint(row) for row in result]


async def update_endpoint(
    conn: AsyncConnection, *, endpoint_id: UUID, values: dict[str, Any], now: datetime
) -> None:
    await conn.execute(
        update(endpoints).where(endpoints.c.id == endpoint_id).values(**values, updated_at=now)
    )


async def get_endpoint_secrets(
    conn: AsyncConnection, *, endpoint_id: UUID
) -> tuple[str, str | None, datetime | None] | None:
    """The sealed secret, and the previous one with its expiry."""
    row = (
        await conn.execute(
            select(
                endpoints.c.secret,
                endpoints.c.previous_secret,
                endpoints.c.previous_secret_expires_at,
            ).where(endpoints.c.id == endpoint_id)
        )
    ).first()
    return (row[0], row[1], row[2]) if row else None


async def delete_endpoint(conn: AsyncConnection, *, endpoint_id: UUID) -> None:
    """The endpoint, its deliveries and their attempts (ON DELETE CASCADE)."""
    await conn.execute(delete(endpoints).where(endpoints.c.id == endpoint_id))


async def subscribed_endpoints(
    conn: AsyncConnection, *, merchant_ids: Iterable[UUID]
) -> list[tuple[UUID, UUID, list[str]]]:
    """(endpoint id, merchant id, event type values) of the merchants' enabled endpoints."""
    result = await conn.execute(_SUBSCRIBED_ENDPOINTS, {"ids": list(set(merchant_ids))})
    return [(row[0], row[1], list(row[2])) for row in result]


# Built once (every transition asks): the merchants' ids bound as an expanding IN.
_SUBSCRIBED_ENDPOINTS = select(endpoints.c.id, endpoints.c.merchant_id, endpoints.c.events).where(
    endpoints.c.merchant_id.in_(bindparam("ids", expanding=True)), endpoints.c.enabled.is_(True)
)


# --- the event log ------------------------------------------------------------------------


async def get_event(conn: AsyncConnection, *, event_id: UUID) -> WebhookEvent | None:
    row = (await conn.execute(select(*_EVENT_COLUMNS).where(events.c.id == event_id))).first()
    return _event(row) if row else None


async def list_events(
    conn: AsyncConnection,
    *,
    merchant_id: UUID,
    event_filter: WebhookEventFilter,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[WebhookEvent]:
    """A merchant's events, newest first (``created_at`` then ``id``), after a keyset."""
    conditions: list[Any] = [events.c.merchant_id == merchant_id]
    if event_filter.types is not None:
        conditions.append(
            events.c.type.in_([event_type.value for event_type in event_filter.types])
        )
    if event_filter.checkout_session_id is not None:
        conditions.append(events.c.checkout_session_id == event_filter.checkout_session_id)
    if event_filter.delivery_status is not None:
        conditions.append(
            exists().where(
                deliveries.c.event_id == events.c.id,
                deliveries.c.status == event_filter.delivery_status.value,
            )
        )
    if after is not None:
        created_at, event_id = after
        conditions.append(
            or_(
                events.c.created_at < created_at,
                and_(events.c.created_at == created_at, events.c.id < event_id),
            )
        )
    result = await conn.execute(
        select(*_EVENT_COLUMNS)
        .where(*conditions)
        .order_by(events.c.created_at.desc(), events.c.id.desc())
        .limit(limit)
    )
    return [_event(row) for row in result]


async def deliveries_of_events(
    conn: AsyncConnection, *, event_ids: Sequence[UUID]
) -> list[WebhookDelivery]:
    if not event_ids:
        return []
    result = await conn.execute(
        select(*_DELIVERY_COLUMNS)
        .where(deliveries.c.event_id.in_(list(event_ids)))
        .order_by(deliveries.c.event_id, deliveries.c.endpoint_id)
    )
    return [_delivery(row) for row in result]


async def get_endpoints(
    conn: AsyncConnection, *, endpoint_ids: Iterable[UUID]
) -> dict[UUID, WebhookEndpoint]:
    ids = list(set(endpoint_ids))
    if not ids:
        return {}
    result = await conn.execute(select(*_ENDPOINT_COLUMNS).where(endpoints.c.id.in_(ids)))
    return {row.id: _endpoint(row) for row in result}


async def schedule_now(
    conn: AsyncConnection, *, delivery_id: UUID, event_id: UUID, endpoint_id: UUID, now: datetime
) -> WebhookDelivery:
    """The event's delivery to the endpoint, PENDING and due now: a new one, or the
    existing one rescheduled with a fresh retry schedule."""
    rescheduled = await conn.execute(
        update(deliveries)
        .where(deliveries.c.event_id == event_id, deliveries.c.endpoint_id == endpoint_id)
        .values(status=_PENDING, round_attempts=0, next_attempt_at=now, claimed_by=None)
        .returning(*_DELIVERY_COLUMNS)
    )
    row = rescheduled.first()
    if row is None:
        await conn.execute(
            deliveries.insert().values(new_delivery(delivery_id, event_id, endpoint_id, now))
        )
        row = (
            await conn.execute(select(*_DELIVERY_COLUMNS).where(deliveries.c.id == delivery_id))
        ).one()
    return _delivery(row)


def new_delivery(
    delivery_id: UUID, event_id: UUID, endpoint_id: UUID, now: datetime
) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "event_id": event_id,
        "endpoint_id": endpoint_id,
        "status": _PENDING,
        "attempts": 0,
        "round_attempts": 0,
        "next_attempt_at": now,
        "claimed_by": None,
        "last_response_status": None,
        "last_attempt_at": None,
    }


# --- the dispatcher's queue ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery a dispatcher holds until its lease ends, with what it sends."""

    delivery_id: UUID
    event_id: UUID
    endpoint_id: UUID
    round_attempts: int
    url: str
    enabled: bool
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    payload: str


async def claim_due(
    conn: AsyncConnection, *, now: datetime, lease_until: datetime, claim: UUID, limit: int
) -> list[UUID]:
    """Takes up to ``limit`` due deliveries for ``claim``, moving them past ``now`` until
    ``lease_until``. PostgreSQL skips rows another claim is taking (SKIP LOCKED); SQLite
    runs the statement under its one write lock, so two claims never take one row."""
    due = (
        select(deliveries.c.id)
        .where(deliveries.c.status == _PENDING, deliveries.c.next_attempt_at <= now)
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(due.scalar_subquery()), deliveries.c.status == _PENDING)
        .values(next_attempt_at=lease_until, claimed_by=claim)
        .returning(deliveries.c.id)
    )
    return list(result.scalars())


async def any_due(conn: AsyncConnection, *, now: datetime) -> bool:
    """Whether a delivery is due: a read on the pending deliveries' index, which spares
    the claim's write transaction when a wake-up finds nothing (a transition of a merchant
    without endpoints wakes every dispatcher too)."""
    due = select(deliveries.c.id).where(
        deliveries.c.status == _PENDING, deliveries.c.next_attempt_at <= now
    )
    return await conn.scalar(select(due.exists())) is True


async def claimed(conn: AsyncConnection, *, delivery_ids: Sequence[UUID]) -> list[Claimed]:
    if not delivery_ids:
        return []
    result = await conn.execute(
        select(
            deliveries.c.id,
            deliveries.c.event_id,
            deliveries.c.endpoint_id,
            deliveries.c.round_attempts,
            endpoints.c.url,
            endpoints.c.enabled,
            endpoints.c.secret,
            endpoints.c.previous_secret,
            endpoints.c.previous_secret_expires_at,
            events.c.payload,
        )
        .join(endpoints, endpoints.c.id == deliveries.c.endpoint_id)
        .join(events, events.c.id == deliveries.c.event_id)
        .where(deliveries.c.id.in_(list(delivery_ids)))
    )
    return [
        Claimed(
            delivery_id=row[0],
            event_id=row[1],
            endpoint_id=row[2],
            round_attempts=row[3],
            url=row[4],
            enabled=row[5],
            secret=row[6],
            previous_secret=row[7],
            previous_secret_expires_at=row[8],
            payload=row[9],
        )
        for row in result
    ]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to, as the dispatcher records it."""

    delivery_id: UUID
    attempt_id: UUID
    claim: UUID
    attempted_at: datetime
    response_status: int | None
    duration_ms: int
    error: str | None
    status: WebhookDeliveryStatus
    next_attempt_at: datetime | None
    round_attempts: int
    disable_endpoint: UUID | None = None


def _typed(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


# Built once: a busy dispatcher records a batch of attempts at a time, one UPDATE each.
_RECORD_OUTCOME = (
    update(deliveries)
    .where(
        deliveries.c.id == _typed("delivery_id", deliveries.c.id),
        deliveries.c.claimed_by == _typed("claim", deliveries.c.claimed_by),
    )
    .values(
        status=_typed("new_status", deliveries.c.status),
        attempts=deliveries.c.attempts + 1,
        round_attempts=_typed("new_round_attempts", deliveries.c.round_attempts),
        next_attempt_at=_typed("new_next_attempt_at", deliveries.c.next_attempt_at),
        claimed_by=None,
        last_response_status=_typed("new_response_status", deliveries.c.last_response_status),
        last_attempt_at=_typed("new_attempted_at", deliveries.c.last_attempt_at),
    )
)


async def record_outcomes(conn: AsyncConnection, *, outcomes: Sequence[Outcome]) -> int:
    """Each attempt and its delivery's new state, if the claim still holds it (a claim
    whose lease ended may have been retried by another process: that one records)."""
    recorded: list[Outcome] = []
    for outcome in outcomes:
        result = await conn.execute(
            _RECORD_OUTCOME,
            {
                "delivery_id": outcome.delivery_id,
                "claim": outcome.claim,
                "new_status": outcome.status.value,
                "new_round_attempts": outcome.round_attempts,
                "new_next_attempt_at": outcome.next_attempt_at,
                "new_response_status": outcome.response_status,
                "new_attempted_at": outcome.attempted_at,
            },
        )
        if result.rowcount == 1:
            recorded.append(outcome)
    if recorded:
        await conn.execute(
            attempts.insert(),
            [
                {
                    "id": outcome.attempt_id,
                    "delivery_id": outcome.delivery_id,
                    "attempted_at": outcome.attempted_at,
                    "response_status": outcome.response_status,
                    "duration_ms": outcome.duration_ms,
                    "error": outcome.error[:500] if outcome.error else None,
                }
                for outcome in recorded
            ],
        )
    gone = {outcome.disable_endpoint for outcome in recorded if outcome.disable_endpoint}
    if gone:
        await conn.execute(
            update(endpoints).where(endpoints.c.id.in_(list(gone))).values(enabled=False)
        )
    return len(recorded)


async def due_backlog(conn: AsyncConnection, *, now: datetime) -> tuple[int, datetime | None]:
    """How many deliveries are due, and since when the oldest has been."""
    row = (
        await conn.execute(
            select(func.count(), func.min(deliveries.c.next_attempt_at)).where(
                deliveries.c.status == _PENDING, deliveries.c.next_attempt_at <= now
            )
        )
    ).one()
    return int(row[0]), row[1]
