"""The transitions: each one transaction whose state checks are conditional UPDATEs (so
that concurrent attempts cannot both succeed), which records its webhook events and
announces what it changed on the bus. ``CheckoutService`` calls these; nothing else does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from gql_checkout.domain.checkout_sessions import (
    CheckoutSession,
    CheckoutSessionStatus,
    PaymentMethod,
    owned,
)
from gql_checkout.domain.errors import InvalidStateTransition
from gql_checkout.domain.webhooks import EVENT_TYPE_OF_STATUS, SessionChange, WebhookEventType
from gql_checkout.storage import outbox, repository
from gql_checkout.storage.bus import LocalBus
from gql_checkout.storage.writes import Writes


class Transitions:
    def __init__(self, *, writes: Writes, bus: LocalBus) -> None:
        self._writes = writes
        self._bus = bus

    async def close(
        self,
        *,
        merchant_id: UUID,
        checkout_session_id: UUID,
        now: datetime,
        status: CheckoutSessionStatus,
        payment_method: PaymentMethod | None = None,
        failure_reason: str | None = None,
    ) -> CheckoutSession:
        """Moves the merchant's open session to ``status``: a closed parent cancels its
        INITIATED children (not when it fails), and a completed child completes its
        parent. Returns the session as it now is."""
        propagates = status is CheckoutSessionStatus.COMPLETED
        async with self._writes.begin() as conn:
            parent_id: UUID | None = None
            if propagates:
                session = await repository.get_session(
                    conn, checkout_session_id=checkout_session_id
                )
                parent_id = owned(session, merchant_id=merchant_id).parent_id
            if parent_id is not None:
                # Parent before child, as when a parent closes and then cancels its child:
                # the one lock order that keeps the two from deadlocking on PostgreSQL.
                await repository.lock_session(conn, checkout_session_id=parent_id)
            closed = await repository.close_open_session(
                conn,
                checkout_session_id=checkout_session_id,
                merchant_id=merchant_id,
                status=status,
                now=now,
                payment_method=payment_method,
                failure_reason=failure_reason,
                # A child pays for its parent: not once the parent has FAILED.
                parent_must_be_open=propagates,
            )
            if closed is None:
                # Why not: another merchant's, unknown, or not open (a concurrent transition
                # may have just closed it).
                current = await repository.get_session(
                    conn, checkout_session_id=checkout_session_id
                )
                current = owned(current, merchant_id=merchant_id)
                if current.is_open(now):
                    raise InvalidStateTransition(
                        "The parent checkout session is no longer open; its child session "
                        "cannot be completed."
                    )
                raise _refused(current, now, to=f"become {status.value}")
            changes = [SessionChange(closed.id, EVENT_TYPE_OF_STATUS[status])]
            # Only a session that has had a child has children to cancel: a child is made
            # current in the transaction that creates it, and never stops being pointed at.
            if status is not CheckoutSessionStatus.FAILED and closed.current_child_id is not None:
                changes += _canceled(
                    await repository.cancel_initiated_children(conn, parent_id=closed.id, now=now)
                )
            if parent_id is not None and await repository.close_open_session(
                conn,
                checkout_session_id=parent_id,
                merchant_id=merchant_id,
                status=CheckoutSessionStatus.COMPLETED,
                now=now,
                payment_method=payment_method,
            ):
                # A completed parent cancels its other INITIATED (expired) children too.
                changes.append(SessionChange(parent_id, _COMPLETED_EVENT))
                changes += _canceled(
                    await repository.cancel_initiated_children(conn, parent_id=parent_id, now=now)
                )
            changed, now_stored = await self._record_and_announce(
                conn,
                changes=changes,
                parent_id=closed.parent_id,
                now=now,
                known={closed.id: closed},
            )
        await self._bus.committed(changed)
        return now_stored[checkout_session_id]

    async def expire(
        self, *, merchant_id: UUID, checkout_session_id: UUID, now: datetime
    ) -> CheckoutSession:
        """Ends an open session now (its expiry becomes ``now``), and its open child."""
        async with self._writes.begin() as conn:
            session = await repository.get_session(conn, checkout_session_id=checkout_session_id)
            session = owned(session, merchant_id=merchant_id)
            if not await repository.expire_open_session(
                conn, checkout_session_id=checkout_session_id, now=now
            ):
                current = await repository.get_session(
                    conn, checkout_session_id=checkout_session_id
                )
                raise _refused(current or session, now, to="be expired")
            # Every session this expiry ended, known here inside the transaction.
            expired = [session.id]
            expired += await repository.expire_open_children(conn, parent_id=session.id, now=now)
            # Its expired events now, in this transaction (the sweep finds them recorded).
            changed, now_stored = await self._record_and_announce(
                conn,
                changes=[SessionChange(expired_id, _EXPIRED_EVENT) for expired_id in expired],
                parent_id=session.parent_id,
                now=now,
            )
        await self._bus.committed(changed)
        return now_stored[checkout_session_id]

    async def _record_and_announce(
        self,
        conn: AsyncConnection,
        *,
        changes: list[SessionChange],
        parent_id: UUID | None,
        now: datetime,
        known: Mapping[UUID, CheckoutSession] | None = None,
    ) -> tuple[list[UUID], Mapping[UUID, CheckoutSession]]:
        """Inside a transition's transaction: its webhook events (no acknowledged change
        without its own), then the bus announcement of the sessions it changed and of the
        parent whose current child changed with them. Returns the ids for ``committed``,
        and the changed sessions as they now are (``known``, or the events' read)."""
        recorded = await outbox.record(conn, changes=changes, now=now, known=known)
        changed = [change.checkout_session_id for change in changes]
        if parent_id is not None and parent_id not in changed:
            changed.append(parent_id)
        await self._bus.announce(conn, changed)
        return changed, recorded.sessions


_COMPLETED_EVENT = EVENT_TYPE_OF_STATUS[CheckoutSessionStatus.COMPLETED]
_CANCELED_EVENT = EVENT_TYPE_OF_STATUS[CheckoutSessionStatus.CANCELED]
_EXPIRED_EVENT = WebhookEventType.CHECKOUT_SESSION_EXPIRED


def _canceled(checkout_session_ids: Iterable[UUID]) -> list[SessionChange]:
    return [SessionChange(session_id, _CANCELED_EVENT) for session_id in checkout_session_ids]


def _refused(session: CheckoutSession, now: datetime, *, to: str) -> InvalidStateTransition:
    """A transition's refusal of a session that is not open."""
    return InvalidStateTransition(
        f"The checkout session is {session.state(now)}; only an open session can {to}."
    )
