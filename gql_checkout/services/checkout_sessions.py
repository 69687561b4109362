"""The rules: access, expiry, transitions, child sessions, idempotency, hcpTokens.

REST and GraphQL both call these methods and nothing else; neither touches the
database. Every write is one transaction whose state checks are conditional
UPDATEs, so concurrent attempts cannot both succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from operator import attrgetter
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_checkout.domain.checkout_sessions import (
    CheckoutSession,
    CheckoutSessionStatus,
    NewCheckoutSession,
    PaymentMethod,
)
from gql_checkout.domain.clock import Clock, stamp, utc_now
from gql_checkout.domain.errors import (
    Forbidden,
    IdempotencyKeyReused,
    InvalidStateTransition,
    SessionCanceled,
    SessionExpired,
    SessionNotFound,
    Unauthenticated,
    ValidationError,
)
from gql_checkout.domain.merchants import MerchantProfile, Reader
from gql_checkout.domain.webhooks import EVENT_TYPE_OF_STATUS, SessionChange
from gql_checkout.services.hcp_tokens import HcpTokens
from gql_checkout.storage import outbox, repository
from gql_checkout.storage.bus import LocalBus
from gql_checkout.storage.coalesce import Coalescer
from gql_checkout.storage.reads import Reads

# A watcher re-reads its session at least this often even without a bus message: the
# bound on staleness should a message ever be lost (e.g. while a replica reconnects).
RESYNC_SECONDS = 5.0


class CheckoutService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        tokens: HcpTokens,
        bus: LocalBus | None = None,
        clock: Clock = utc_now,
        reads: Reads,
        resync_seconds: float = RESYNC_SECONDS,
    ) -> None:
        self._engine = engine
        self._tokens = tokens
        self._bus = bus or LocalBus()
        self.clock = clock
        self._resync_seconds = resync_seconds
        # Reads outside transactions: the requests that ask while a query runs (or in the
        # same loop iteration) share the next one.
        self._sessions = Coalescer[UUID, CheckoutSession](
            reads.sessions, related=attrgetter("current_child_id")
        ).get_many
        self._profiles = Coalescer[UUID, MerchantProfile](reads.profiles).get_many

    async def ping(self) -> None:
        """Raises if the database does not answer."""
        async with self._engine.connect() as conn:
            await repository.ping(conn)

    # --- reads ----------------------------------------------------------------------------

    async def get_checkout_session(
        self, *, merchant_id: UUID, checkout_session_id: UUID
    ) -> CheckoutSession:
        """A session as its merchant may read it: 404, 403, 410 canceled, 401 expired."""
        found = await self._sessions((checkout_session_id,))
        return self.readable(
            found.get(checkout_session_id), reader=Reader(merchant_id), now=self.clock()
        )

    async def get_checkout_session_with_related(
        self, *, reader: Reader, checkout_session_id: UUID, now: datetime
    ) -> tuple[CheckoutSession, Mapping[UUID, CheckoutSession]]:
        """As ``get_checkout_session`` at ``now``, with the sessions read in the same query
        (its current child)."""
        found = await self._sessions((checkout_session_id,))
        session = self.readable(found.get(checkout_session_id), reader=reader, now=now)
        return session, found

    def readable(
        self, session: CheckoutSession | None, *, reader: Reader, now: datetime
    ) -> CheckoutSession:
        """The read rules, in the contract's order, for a session loaded by the caller.

        ``now`` is the instant the caller also renders at (``isExpired``): a session that
        passes here is never shown as expired in the same answer."""
        session = self._owned(session, merchant_id=reader.merchant_id)
        if reader.checkout_session_id not in (None, session.id):
            raise Forbidden("The hcpToken grants access to another checkout session.")
        if session.status is CheckoutSessionStatus.CANCELED:
            raise SessionCanceled
        if session.is_expired(now):
            raise SessionExpired
        return session

    async def get_checkout_sessions(
        self, *, checkout_session_ids: Iterable[UUID]
    ) -> dict[UUID, CheckoutSession]:
        """Sessions by id as stored, with their current children: roots then go through
        ``readable``; related sessions are shown as they are, their root's access checked."""
        return await self._sessions(tuple(checkout_session_ids))

    async def get_merchant_profiles(
        self, *, merchant_ids: Iterable[UUID]
    ) -> dict[UUID, MerchantProfile]:
        return await self._profiles(tuple(merchant_ids))

    def hcp_token(self, session: CheckoutSession) -> str:
        """The token stored with the session if the current key signed it, else signed now
        (a row older than migration 0003, or a key rotated since): the same bytes."""
        stored = session.hcp_token
        if stored is not None and self._tokens.signed_with_current_key(stored):
            return stored
        return self._tokens.sign(
            checkout_session_id=session.id,
            merchant_id=session.merchant_id,
            expires_at=session.expires_at,
        )

    async def authorize_hcp_token(self, *, token: str) -> CheckoutSession:
        """The open session an hcpToken grants; Unauthenticated once it is closed or expired."""
        now = self.clock()
        claims = self._tokens.verify(token, now=now)
        found = await self._sessions((claims.checkout_session_id,))
        session = found.get(claims.checkout_session_id)
        if session is None or session.merchant_id != claims.merchant_id or not session.is_open(now):
            raise Unauthenticated("The hcpToken's checkout session is no longer open.")
        return session

    async def watch_checkout_session(
        self, *, merchant_id: UUID, checkout_session_id: UUID
    ) -> AsyncIterator[CheckoutSession]:
        """The session now (same rules as a read), then every change of it or of its
        current child; ends when it closes or expires, after sending that last state."""
        async with self._bus.listen(checkout_session_id) as changes:
            # Listening before the first read: a change in between is not lost.
            found = await self._sessions((checkout_session_id,))
            session = self.readable(
                found.get(checkout_session_id), reader=Reader(merchant_id), now=self.clock()
            )
            state = _watched_state(session, found, self.clock())
            yield session
            while session.status is CheckoutSessionStatus.INITIATED:
                now = self.clock()
                remaining = (session.expires_at - now).total_seconds()
                if remaining <= 0:
                    yield session  # the expiry is the last event
                    return
                # A current child that expires first is an event too: wake up for it.
                child = found.get(session.current_child_id) if session.current_child_id else None
                if child is not None and child.is_open(now):
                    remaining = min(remaining, (child.expires_at - now).total_seconds())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, min(remaining, self._resync_seconds))):
                        await changes.get()
                found = await self._sessions((checkout_session_id,))
                latest = found[checkout_session_id]  # sessions are never deleted
                latest_state = _watched_state(latest, found, self.clock())
                if latest_state != state:
                    session, state = latest, latest_state
                    yield session

    # --- writes ---------------------------------------------------------------------------

    async def create_checkout_session(
        self, *, merchant_id: UUID, request: NewCheckoutSession
    ) -> CheckoutSession:
        """Creates a session (or a child of one); the same idempotency key returns the same one."""
        fingerprint = _fingerprint(request)
        if request.idempotency_key is not None:
            replayed = await self._replay(merchant_id, request.idempotency_key, fingerprint)
            if replayed is not None:
                return replayed
        now = stamp(self.clock())
        expires_at = now + timedelta(seconds=request.expires_in_seconds)
        parent: CheckoutSession | None = None
        if request.parent_session_id is not None:
            parent = await self._parent_for_child(merchant_id, request.parent_session_id, now)
            expires_at = min(expires_at, parent.expires_at)
        session = CheckoutSession(
            id=uuid.uuid4(),
            merchant_id=merchant_id,
            status=CheckoutSessionStatus.INITIATED,
            amount=request.amount,
            currency=request.currency,
            merchant_reference=request.merchant_reference,
            created_at=now,
            expires_at=expires_at,
            updated_at=now,
            version=1,
            payment_method=None,
            failure_reason=None,
            parent_id=parent.id if parent else None,
            current_child_id=None,
            hcp_token=None,
        )
        # Signed as every read without a stored token signs it: one source for the claims.
        session = replace(session, hcp_token=self.hcp_token(session))
        try:
            async with self._engine.begin() as conn:
                # The INSERT comes first: on SQLite the transaction then holds the write lock
                # before it checks the parent, so the check and the update cannot interleave.
                await repository.insert_session(
                    conn,
                    session=session,
                    idempotency_key=request.idempotency_key,
                    idempotency_fingerprint=fingerprint if request.idempotency_key else None,
                )
                if parent is not None:
                    if not await repository.make_current_child(
                        conn, parent_id=parent.id, child_id=session.id, now=now
                    ):
                        raise InvalidStateTransition(
                            "The parent session already has an open child session, or is not open."
                        )
                    await self._bus.announce(conn, [parent.id])
        except IntegrityError:
            # A concurrent create with the same idempotency key won the unique index.
            if request.idempotency_key is None:
                raise
            replayed = await self._replay(merchant_id, request.idempotency_key, fingerprint)
            if replayed is None:
                raise
            return replayed
        if parent is not None:
            await self._bus.committed([parent.id])
        return session

    async def cancel_checkout_session(
        self, *, merchant_id: UUID, checkout_session_id: UUID
    ) -> CheckoutSession:
        """Cancels an open session and its open child."""
        return await self._close(
            merchant_id=merchant_id,
            checkout_session_id=checkout_session_id,
            status=CheckoutSessionStatus.CANCELED,
        )

    async def complete_checkout_session(
        self, *, merchant_id: UUID, checkout_session_id: UUID, payment_method: PaymentMethod
    ) -> CheckoutSession:
        """Completes an open session; a child completes its parent with the same payment method."""
        return await self._close(
            merchant_id=merchant_id,
            checkout_session_id=checkout_session_id,
            status=CheckoutSessionStatus.COMPLETED,
            payment_method=payment_method,
        )

    async def fail_checkout_session(
        self, *, merchant_id: UUID, checkout_session_id: UUID, reason: str | None
    ) -> CheckoutSession:
        """Fails an open session; a failed child leaves its parent open for a retry."""
        return await self._close(
            merchant_id=merchant_id,
            checkout_session_id=checkout_session_id,
            status=CheckoutSessionStatus.FAILED,
            failure_reason=reason,
        )

    # --- helpers --------------------------------------------------------------------------

    @staticmethod
    def _owned(session: CheckoutSession | None, *, merchant_id: UUID) -> CheckoutSession:
        if session is None:
            raise SessionNotFound
        if session.merchant_id != merchant_id:
            raise Forbidden
        return session

    async def _replay(
        self, merchant_id: UUID, idempotency_key: str, fingerprint: str
    ) -> CheckoutSession | None:
        async with self._engine.connect() as conn:
            found = await repository.get_session_id_by_idempotency_key(
                conn, merchant_id=merchant_id, idempotency_key=idempotency_key
            )
            if found is None:
                return None
            session_id, stored_fingerprint = found
            if stored_fingerprint is None or not hmac.compare_digest(
                stored_fingerprint, fingerprint
            ):
                raise IdempotencyKeyReused
            session = await repository.get_session(conn, checkout_session_id=session_id)
        assert session is not None  # sessions are never deleted
        return session

    async def _parent_for_child(
        self, merchant_id: UUID, parent_id: UUID, now: datetime
    ) -> CheckoutSession:
        async with self._engine.connect() as conn:
            parent = await repository.get_session(conn, checkout_session_id=parent_id)
        parent = self._owned(parent, merchant_id=merchant_id)
        if parent.parent_id is not None:
            raise ValidationError.on(
                "parentSessionId", "is a child session; a child session cannot have children"
            )
        if not parent.is_open(now):
            raise InvalidStateTransition(
                "The parent session is not open (INITIATED and unexpired)."
            )
        return parent

    async def _close(
        self,
        *,
        merchant_id: UUID,
        checkout_session_id: UUID,
        status: CheckoutSessionStatus,
        payment_method: PaymentMethod | None = None,
        failure_reason: str | None = None,
    ) -> CheckoutSession:
        now = stamp(self.clock())
        propagates = status is CheckoutSessionStatus.COMPLETED
        async with self._engine.begin() as conn:
            session = await repository.get_session(conn, checkout_session_id=checkout_session_id)
            session = self._owned(session, merchant_id=merchant_id)
            parent_id = session.parent_id if propagates else None
            if parent_id is not None:
                # Parent before child, as when a parent closes and then cancels its child:
                # the one lock order that keeps the two from deadlocking on PostgreSQL.
                await repository.lock_session(conn, checkout_session_id=parent_id)
            closed = await repository.close_open_session(
                conn,
                checkout_session_id=checkout_session_id,
                status=status,
                now=now,
                payment_method=payment_method,
                failure_reason=failure_reason,
                # A child pays for its parent: not once the parent has FAILED.
                parent_must_be_open=propagates,
            )
            if not closed:
                # Read again: a concurrent transition may have just closed it.
                current = await repository.get_session(
                    conn, checkout_session_id=checkout_session_id
                )
                session = current or session
                if session.is_open(now):
                    raise InvalidStateTransition(
                        "The parent checkout session is no longer open; its child session "
                        "cannot be completed."
                    )
                state = "expired" if session.is_expired(now) else session.status.value
                raise InvalidStateTransition(
                    f"The checkout session is {state}; only an open session can become "
                    f"{status.value}."
                )
            changes = [SessionChange(session.id, EVENT_TYPE_OF_STATUS[status])]
            if status is not CheckoutSessionStatus.FAILED:
                changes += _canceled(
                    await repository.cancel_initiated_children(conn, parent_id=session.id, now=now)
                )
            if parent_id is not None and await repository.close_open_session(
                conn,
                checkout_session_id=parent_id,
                status=CheckoutSessionStatus.COMPLETED,
                now=now,
                payment_method=payment_method,
            ):
                # A completed parent cancels its other INITIATED (expired) children too.
                changes.append(SessionChange(parent_id, _COMPLETED_EVENT))
                changes += _canceled(
                    await repository.cancel_initiated_children(conn, parent_id=parent_id, now=now)
                )
            # The webhook events, in this transaction: no acknowledged change without its own.
            await outbox.record(conn, changes=changes, now=now)
            changed = [change.checkout_session_id for change in changes]
            if session.parent_id is not None and session.parent_id not in changed:
                # The parent's current child changed: news for its subscribers too.
                changed.append(session.parent_id)
            await self._bus.announce(conn, changed)
            updated = await repository.get_session(conn, checkout_session_id=checkout_session_id)
        await self._bus.committed(changed)
        assert updated is not None
        return updated


_COMPLETED_EVENT = EVENT_TYPE_OF_STATUS[CheckoutSessionStatus.COMPLETED]
_CANCELED_EVENT = EVENT_TYPE_OF_STATUS[CheckoutSessionStatus.CANCELED]


def _canceled(checkout_session_ids: Iterable[UUID]) -> list[SessionChange]:
    return [SessionChange(session_id, _CANCELED_EVENT) for session_id in checkout_session_ids]


def _fingerprint(request: NewCheckoutSession) -> str:
    canonical = {key: value for key, value in asdict(request).items() if key != "idempotency_key"}
    canonical["parent_session_id"] = (
        str(request.parent_session_id) if request.parent_session_id else None
    )
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def _watched_state(
    session: CheckoutSession, found: Mapping[UUID, CheckoutSession], now: datetime
) -> tuple[int, int | None, bool]:
    """What a subscriber sees change: the session's version, and its current child's
    (read in the same statement) and whether that child has expired."""
    child_id = session.current_child_id
    child = found.get(child_id) if child_id is not None else None
    if child is None:
        return session.version, None, False
    return session.version, child.version, child.is_expired(now)
