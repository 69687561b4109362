"""The rules: access, expiry, transitions, child sessions, idempotency, hcpTokens.

REST and GraphQL both call these methods and nothing else; neither touches the
database. Every write is one transaction whose state checks are conditional
UPDATEs, so concurrent attempts cannot both succeed; the transitions' transactions
are services/transitions.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
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
    owned,
)
from gql_checkout.domain.clock import Clock, stamp, utc_now
from gql_checkout.domain.errors import (
    Forbidden,
    IdempotencyKeyReused,
    InvalidStateTransition,
    SessionCanceled,
    SessionExpired,
    Unauthenticated,
    ValidationError,
)
from gql_checkout.domain.listing import PageRequest
from gql_checkout.domain.merchants import MerchantProfile, Reader
from gql_checkout.domain.validation import DEFAULT_EXPIRES_IN_SECONDS
from gql_checkout.services.hcp_tokens import HcpTokens
from gql_checkout.services.transitions import Transitions
from gql_checkout.services.watching import Following, SessionWatcher, Watchers
from gql_checkout.storage import listing, repository
from gql_checkout.storage.bus import LocalBus
from gql_checkout.storage.coalesce import Coalescer
from gql_checkout.storage.reads import Reads
from gql_checkout.storage.writes import Writes


@dataclass(frozen=True, slots=True)
class SessionPage:
    sessions: list[CheckoutSession]  # in list order
    related: Mapping[UUID, CheckoutSession]  # read with them: their current children
    has_next_page: bool
    now: datetime  # the instant the page was read at (``isExpired``)


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
        writes: Writes,
        resync_seconds: float = RESYNC_SECONDS,
    ) -> None:
        self._engine = engine
        self._writes = writes
        self._tokens = tokens
        self._bus = bus or LocalBus()
        self.clock = clock
        # Reads outside transactions: the requests that ask while a query runs (or in the
        # same loop iteration) share the next one.
        self._sessions = Coalescer[UUID, CheckoutSession](
            reads.sessions, related=attrgetter("current_child_id")
        ).get_many
        self._profiles = Coalescer[UUID, MerchantProfile](reads.profiles).get_many
        self._transitions = Transitions(writes=writes, bus=self._bus)
        self._watchers = Watchers(
            bus=self._bus, read=self._sessions, clock=clock, resync_seconds=resync_seconds
        )

    async def ping(self) -> None:
        """Raises if the database does not answer."""
        async with self._engine.connect() as conn:
            await repository.ping(conn)

    def _now(self) -> datetime:
        """The instant a write records: the clock's, to the stored precision."""
        return stamp(self.clock())

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
        session = owned(session, merchant_id=reader.merchant_id)
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

    async def list_checkout_sessions(
        self, *, merchant_id: UUID, request: PageRequest
    ) -> SessionPage:
        """A page of the merchant's sessions, every state, newest first (one statement)."""
        now = self.clock()
        async with self._engine.connect() as conn:
            listed, found = await listing.list_sessions(
                conn, merchant_id=merchant_id, request=request, now=now, limit=request.first + 1
            )
        return SessionPage(
            sessions=listed[: request.first],
            related=found,
            has_next_page=len(listed) > request.first,
            now=now,
        )

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

    def watch_checkout_session(
        self, *, merchant_id: UUID, checkout_session_id: UUID
    ) -> AsyncGenerator[CheckoutSession, None]:
        """The session now (same rules as a read), then every change of it or of its
        current child; ends when it closes or expires, after sending that last state."""
        return self._watchers.changes(checkout_session_id, check=self._check_for(merchant_id))

    async def follow_checkout_session(
        self,
        *,
        merchant_id: UUID,
        checkout_session_id: UUID,
        on_change: Callable[[CheckoutSession, bool], None],
    ) -> Following:
        """``watch_checkout_session`` as callbacks: ``on_change(session, last)`` at each
        change after ``first``, with no task held between them."""
        return await self._watchers.follow(
            checkout_session_id, check=self._check_for(merchant_id), on_change=on_change
        )

    def _check_for(self, merchant_id: UUID) -> Callable[[CheckoutSession | None], CheckoutSession]:
        reader = Reader(merchant_id)
        return lambda session: self.readable(session, reader=reader, now=self.clock())

    @property
    def watched_sessions(self) -> int:
        """How many sessions this process watches for subscribers and long polls."""
        return len(self._watchers)

    def watching(
        self, *, checkout_session_id: UUID
    ) -> contextlib.AbstractAsyncContextManager[SessionWatcher]:
        """The session's shared watcher, for a held long poll: its snapshots pass through
        ``readable`` as a read would."""
        return self._watchers.watching(checkout_session_id)

    # --- writes ---------------------------------------------------------------------------

    async def create_checkout_session(
        self, *, merchant_id: UUID, request: NewCheckoutSession
    ) -> CheckoutSession:
        """Creates a session (or a child of one); the same idempotency key returns the same one."""
        # Only a keyed create is ever compared (~20 µs of JSON and SHA-256 otherwise).
        fingerprint = _fingerprint(request) if request.idempotency_key is not None else None
        if request.idempotency_key is not None:
            assert fingerprint is not None
            replayed = await self._replay(merchant_id, request.idempotency_key, fingerprint)
            if replayed is not None:
                return replayed
        now = self._now()
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
            metadata=request.metadata,
            recovered_from_id=request.recovered_from_id,
        )
        # Signed as every read without a stored token signs it: one source for the claims.
        session = replace(session, hcp_token=self.hcp_token(session))
        # A session alone is one INSERT (its idempotency key a unique index of that row).
        write = self._writes.begin() if parent is not None else self._writes.one_statement()
        try:
            async with write as conn:
                # The INSERT comes first: on SQLite the transaction then holds the write lock
                # before it checks the parent, so the check and the update cannot interleave.
                await repository.insert_session(
                    conn,
                    session=session,
                    idempotency_key=request.idempotency_key,
                    idempotency_fingerprint=fingerprint,
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
            if request.idempotency_key is None or fingerprint is None:
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
        return await self._transitions.close(
            merchant_id=merchant_id,
            checkout_session_id=checkout_session_id,
            now=self._now(),
            status=CheckoutSessionStatus.CANCELED,
        )

    async def complete_checkout_session(
        self, *, merchant_id: UUID, checkout_session_id: UUID, payment_method: PaymentMethod
    ) -> CheckoutSession:
        """Completes an open session; a child completes its parent with the same payment method."""
        return await self._transitions.close(
            merchant_id=merchant_id,
            checkout_session_id=checkout_session_id,
            now=self._now(),
            status=CheckoutSessionStatus.COMPLETED,
            payment_method=payment_method,
        )

    async def fail_checkout_session(
        self, *, merchant_id: UUID, checkout_session_id: UUID, reason: str | None
    ) -> CheckoutSession:
        """Fails an open session; a failed child leaves its parent open for a retry."""
        return await self._transitions.close(
            merchant_id=merchant_id,
            checkout_session_id=checkout_session_id,
            now=self._now(),
            status=CheckoutSessionStatus.FAILED,
            failure_reason=reason,
        )

    async def expire_checkout_session(
        self, *, merchant_id: UUID, checkout_session_id: UUID
    ) -> CheckoutSession:
        """Ends an open session now, and its open child with it."""
        return await self._transitions.expire(
            merchant_id=merchant_id, checkout_session_id=checkout_session_id, now=self._now()
        )

    async def recover_checkout_session(
        self, *, merchant_id: UUID, checkout_session_id: UUID, idempotency_key: str | None
    ) -> CheckoutSession:
        """A new open session from an expired one: same amount, currency, reference and
        metadata, the default lifetime; a child's under the same parent, if it is open."""
        async with self._engine.connect() as conn:
            source = await repository.get_session(conn, checkout_session_id=checkout_session_id)
        source = owned(source, merchant_id=merchant_id)
        # Everything the request copies is fixed at creation: a retry builds the same one.
        request = NewCheckoutSession(
            amount=source.amount,
            currency=source.currency,
            merchant_reference=source.merchant_reference,
            expires_in_seconds=DEFAULT_EXPIRES_IN_SECONDS,
            parent_session_id=source.parent_id,
            idempotency_key=idempotency_key,
            metadata=source.metadata,
            recovered_from_id=source.id,
        )
        if idempotency_key is not None:
            # Before the state check: an expired child may be canceled since (its parent
            # closed), and a retry must still answer the session the first call created.
            replayed = await self._replay(merchant_id, idempotency_key, _fingerprint(request))
            if replayed is not None:
                return replayed
        now = self.clock()
        if not source.is_expired(now):
            raise InvalidStateTransition(
                f"The checkout session is {source.state(now)}; only an expired session can be "
                "recovered."
            )
        return await self.create_checkout_session(merchant_id=merchant_id, request=request)

    # --- helpers --------------------------------------------------------------------------

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
        parent = owned(parent, merchant_id=merchant_id)
        if parent.parent_id is not None:
            raise ValidationError.on(
                "parentSessionId", "is a child session; a child session cannot have children"
            )
        if not parent.is_open(now):
            raise InvalidStateTransition(
                "The parent session is not open (INITIATED and unexpired)."
            )
        return parent


def _fingerprint(request: NewCheckoutSession) -> str:
    canonical = {key: value for key, value in asdict(request).items() if key != "idempotency_key"}
    canonical["parent_session_id"] = (
        str(request.parent_session_id) if request.parent_session_id else None
    )
    # Absent when empty, as before they existed: keys stored earlier still replay.
    if not request.metadata:
        del canonical["metadata"]
    if request.recovered_from_id is None:
        del canonical["recovered_from_id"]
    else:
        canonical["recovered_from_id"] = str(request.recovered_from_id)
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()
