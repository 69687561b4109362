"""The transactional outbox: a transition's events are rows of its own transaction.

``record`` is called inside the writing transaction with the sessions it changed. It
renders each event's body then (the REST object of the session as it now is), and adds a
delivery for every enabled endpoint of the merchant that subscribes to the event's type.
An acknowledged transition therefore always has its event, and a rolled-back one never
does. ``sweep_expired`` finds sessions past their expiry and records their one
``checkout_session.expired`` event (the unique index makes a repeat, from another
process or a manual expiry, a no-op).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_checkout.domain.checkout_sessions import CheckoutSession, CheckoutSessionStatus
from gql_checkout.domain.clock import rfc3339
from gql_checkout.domain.session_json import render_session
from gql_checkout.domain.webhooks import SessionChange, WebhookEventType
from gql_checkout.storage import repository
from gql_checkout.storage.repository import sessions
from gql_checkout.storage.webhook_repository import new_delivery, subscribed_endpoints
from gql_checkout.storage.webhook_tables import deliveries, events, sweeps

_EXPIRED = WebhookEventType.CHECKOUT_SESSION_EXPIRED
_SWEEP = "expired"
# A sweep also looks this far behind its mark: a session whose expiry a concurrent
# transaction wrote (a manual expiry) with an instant just before the mark is not missed.
SWEEP_OVERLAP = timedelta(minutes=5)
SWEEP_BATCH = 500


@dataclass(frozen=True, slots=True)
class Recorded:
    deliveries: int  # how many deliveries the events made (0: no dispatcher to wake)
    # The changed sessions as the events show them (read in the transaction, after the
    # change), with their current children: the writer answers with them, no second read.
    sessions: Mapping[UUID, CheckoutSession]


async def record(
    conn: AsyncConnection,
    *,
    changes: Sequence[SessionChange],
    now: datetime,
    known: Mapping[UUID, CheckoutSession] | None = None,
) -> Recorded:
    """Records the events of the sessions a transaction changed. ``known``: sessions the
    transaction already has as they now are (an UPDATE's RETURNING); when they are all the
    changed ones and none has a child to show, they are not read again."""
    if not changes:
        return Recorded(deliveries=0, sessions={})
    ids = [change.checkout_session_id for change in changes]
    found = known if known is not None and _complete(known, ids) else None
    if found is None:
        found = await repository.get_sessions_with_current_children(conn, checkout_session_ids=ids)
    rows: list[dict[str, Any]] = []
    for change in changes:
        session = found[change.checkout_session_id]
        body = {
            "type": change.type.value,
            "timestamp": rfc3339(now),
            "data": {"checkoutSession": render_session(session, now=now, related=found)},
        }
        rows.append(
            {
                "id": uuid.uuid4(),
                "merchant_id": session.merchant_id,
                "checkout_session_id": session.id,
                "type": change.type.value,
                "created_at": now,
                "payload": orjson.dumps(body).decode(),
            }
        )
    inserted = await conn.execute(_insert_ignoring_repeats(conn.dialect.name), rows)
    recorded = inserted.all()
    if not recorded:
        return Recorded(deliveries=0, sessions=found)
    subscribed = await subscribed_endpoints(conn, merchant_ids={row[1] for row in recorded})
    new = [
        new_delivery(uuid.uuid4(), event_id, endpoint_id, now)
        for event_id, merchant_id, event_type in recorded
        for endpoint_id, owner, types in subscribed
        if owner == merchant_id and event_type in types
    ]
    if new:
        await conn.execute(deliveries.insert(), new)
    return Recorded(deliveries=len(new), sessions=found)


def _complete(known: Mapping[UUID, CheckoutSession], ids: Sequence[UUID]) -> bool:
    """Whether ``known`` renders the events of ``ids``: each there, none with a child (the
    REST object shows the current child, which only a read gives)."""
    return all(
        (session := known.get(session_id)) is not None and session.current_child_id is None
        for session_id in ids
    )


@functools.cache
def _insert_ignoring_repeats(dialect_name: str) -> Any:
    """The events' INSERT for a dialect, built once: a repeat (the sweep's expired event for
    a session whose expiry was recorded) is skipped; the inserted ones are returned."""
    insert = postgresql_insert if dialect_name == "postgresql" else sqlite_insert
    return (
        insert(events)
        .on_conflict_do_nothing(index_elements=["checkout_session_id", "type"])
        .returning(events.c.id, events.c.merchant_id, events.c.type)
    )


async def sweep_expired(conn: AsyncConnection, *, now: datetime) -> tuple[int, bool]:
    """Records the expired event of sessions that expired since the last sweep (a batch of
    them); returns the deliveries made and whether more may be left."""
    mark = await conn.scalar(select(sweeps.c.swept_until).where(sweeps.c.name == _SWEEP))
    expired = sessions.c.expires_at <= now
    window = expired if mark is None else expired & (sessions.c.expires_at > mark - SWEEP_OVERLAP)
    unreported = ~(
        select(events.c.id)
        .where(events.c.checkout_session_id == sessions.c.id, events.c.type == _EXPIRED.value)
        .exists()
    )
    candidates = (
        await conn.execute(
            select(sessions.c.id, sessions.c.expires_at)
            .where(sessions.c.status == CheckoutSessionStatus.INITIATED.value, window, unreported)
            .order_by(sessions.c.expires_at)
            .limit(SWEEP_BATCH)
        )
    ).all()
    made = (
        await record(conn, changes=[SessionChange(row[0], _EXPIRED) for row in candidates], now=now)
    ).deliveries
    more = len(candidates) == SWEEP_BATCH
    # The mark moves to what was covered: all of it, or up to the batch's last expiry.
    covered = candidates[-1][1] if more else now
    if mark is None:
        await conn.execute(_insert_sweep(conn).values(name=_SWEEP, swept_until=covered))
    elif covered > mark:
        await conn.execute(
            update(sweeps)
            .where(sweeps.c.name == _SWEEP, sweeps.c.swept_until < covered)
            .values(swept_until=covered)
        )
    return made, more


def _insert_sweep(conn: AsyncConnection) -> Any:
    insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    return insert(sweeps).on_conflict_do_nothing(index_elements=["name"])
