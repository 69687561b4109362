"""One watcher per watched session, shared by its subscribers and its held long polls.

A watcher listens on the change bus once, re-reads its session when told of a change (or
every ``resync_seconds``, should a message have been lost), and wakes its members only
when what they show has changed: the session's version, its current child's, an expiry.
Members never read the database themselves: twenty subscribers of one session cost one
read per change, not twenty, and a held long poll reads nothing while it waits. A member
waits as a future (a held long poll) or is called back (``Following``: a subscriber, which
holds no task between its events). An expiry needs no read at all: the watcher's timer
recomputes the state from what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from gql_checkout.domain.checkout_sessions import CheckoutSession
from gql_checkout.domain.clock import Clock
from gql_checkout.storage.bus import LocalBus

logger = logging.getLogger(__name__)

# The session's version, its current child's (0: none), whether that child has expired,
# whether the session has: what a subscriber or a long poll sees change.
WatchedState = tuple[int, int, bool, bool]
ReadSessions = Callable[[Collection[UUID]], Awaitable[dict[UUID, CheckoutSession]]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The session as last read (None: there is none), and the sessions read with it."""

    session: CheckoutSession | None
    related: Mapping[UUID, CheckoutSession]
    state: WatchedState | None


def watched_state(
    session: CheckoutSession | None, related: Mapping[UUID, CheckoutSession], now: datetime
) -> WatchedState | None:
    if session is None:
        return None
    child_id = session.current_child_id
    child = related.get(child_id) if child_id is not None else None
    if child is None:
        return session.version, 0, False, session.is_expired(now)
    return session.version, child.version, child.is_expired(now), session.is_expired(now)


class SessionWatcher:
    """The shared view of one session; members wait on it, never on the database."""

    def __init__(
        self, checkout_session_id: UUID, *, watchers: Watchers, read: ReadSessions
    ) -> None:
        self.checkout_session_id = checkout_session_id
        self.snapshot: Snapshot | None = None
        self.members = 0
        self._watchers = watchers
        self._read = read
        # Futures of members waiting for the next change, resolved together when it comes.
        self._waiting: set[asyncio.Future[None]] = set()
        # Members waiting for a snapshot no known change has outdated.
        self._settling: set[asyncio.Future[None]] = set()
        # Members called with each new snapshot instead (a compiled subscription: no task).
        self._followers: set[Callable[[Snapshot], None]] = set()
        self._failure: Exception | None = None
        self._changes: asyncio.Queue[None] | None = None
        self._reading = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for future in (*self._waiting, *self._settling):
            future.cancel()

    async def current(self) -> Snapshot:
        """The session as of a read made after every change announced so far."""
        while not self._is_current():
            future = asyncio.get_running_loop().create_future()
            self._settling.add(future)
            try:
                await future
            finally:
                self._settling.discard(future)
            if self._failure is not None:
                raise self._failure
        assert self.snapshot is not None
        return self.snapshot

    def add_waiter(self, future: asyncio.Future[None]) -> None:
        """``future`` gets a result at the next change (a long poll adds its own timer and
        shutdown to the same future, so a held request costs one future, no task)."""
        self._waiting.add(future)

    def discard_waiter(self, future: asyncio.Future[None]) -> None:
        self._waiting.discard(future)

    def follow(self, follower: Callable[[Snapshot], None]) -> None:
        """``follower`` is called with each snapshot that differs from the one before, as
        it is published: a member that holds no task while it waits."""
        self._followers.add(follower)

    def unfollow(self, follower: Callable[[Snapshot], None]) -> None:
        self._followers.discard(follower)

    def _is_current(self) -> bool:
        if self.snapshot is None or self._reading:
            return False
        return self._changes is not None and self._changes.empty()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        async with self._watchers.bus.listen(self.checkout_session_id) as changes:
            # Listening before the first read: a change in between is not lost.
            self._changes = changes
            while True:
                await self._refresh()
                resync_at = loop.time() + self._watchers.resync_seconds
                while True:
                    wake_in = min(resync_at - loop.time(), self._seconds_to_next_expiry())
                    try:
                        async with asyncio.timeout(max(0.0, wake_in)):
                            await changes.get()
                        break  # a change: read it
                    except TimeoutError:
                        if loop.time() >= resync_at:
                            break
                        # An expiry: what it changes is computed, not read.
                        assert self.snapshot is not None
                        self._publish(self.snapshot.session, self.snapshot.related)

    async def _refresh(self) -> None:
        self._reading = True
        try:
            found = await self._read((self.checkout_session_id,))
        except Exception as error:  # kept and retried at the next resync; members are told
            logger.warning("watching session %s: read failed: %s", self.checkout_session_id, error)
            self._failure = error
        else:
            self._failure = None
            self._publish(found.get(self.checkout_session_id), found)
        finally:
            self._reading = False
        _resolve(self._settling)

    def _publish(
        self, session: CheckoutSession | None, related: Mapping[UUID, CheckoutSession]
    ) -> None:
        state = watched_state(session, related, self._watchers.clock())
        if self.snapshot is not None and self.snapshot.state == state:
            return
        self.snapshot = snapshot = Snapshot(session=session, related=related, state=state)
        _resolve(self._waiting)
        for follower in tuple(self._followers):
            try:
                follower(snapshot)
            except Exception:  # one member's failure is its own, not the watcher's
                logger.exception("watching session %s: a follower failed", self.checkout_session_id)

    def _seconds_to_next_expiry(self) -> float:
        """Until the session or its current child expires, if one is still to."""
        snapshot = self.snapshot
        if snapshot is None or snapshot.session is None:
            return float("inf")
        now = self._watchers.clock()
        session = snapshot.session
        instants = [session.expires_at] if session.is_open(now) else []
        child_id = session.current_child_id
        child = snapshot.related.get(child_id) if child_id is not None else None
        if child is not None and child.is_open(now):
            instants.append(child.expires_at)
        if not instants:
            return float("inf")
        return max(0.0, (min(instants) - now).total_seconds())


def _resolve(futures: set[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)
    futures.clear()


class Following:
    """A member of a session's watcher that is called back with each change (``last``:
    the session has closed or expired, and the following has stopped) rather than waiting
    on it: a subscriber holds no task between events. ``first`` is the session as of
    joining, through the caller's check, and ``ended`` says it is already the last (no
    change follows); ``stop`` ends the following (again: no-op)."""

    __slots__ = ("_on_change", "_watcher", "_watchers", "ended", "first")

    def __init__(
        self,
        first: CheckoutSession,
        *,
        watcher: SessionWatcher,
        watchers: Watchers,
        on_change: Callable[[CheckoutSession, bool], None],
    ) -> None:
        self.first = first
        self.ended = not first.is_open(watchers.clock())
        self._on_change = on_change
        self._watchers = watchers
        self._watcher: SessionWatcher | None = watcher
        if self.ended:
            self.stop()
        else:
            watcher.follow(self._changed)

    def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.unfollow(self._changed)
            self._watchers.leave(watcher)

    def _changed(self, snapshot: Snapshot) -> None:
        session = snapshot.session
        assert session is not None  # sessions are never deleted
        last = not session.is_open(self._watchers.clock())  # a change, or the expiry
        if last:
            self.stop()
        self._on_change(session, last)


class Watchers:
    """The watchers of one process, by session id: created by the first member, gone
    with the last."""

    def __init__(
        self, *, bus: LocalBus, read: ReadSessions, clock: Clock, resync_seconds: float
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.resync_seconds = resync_seconds
        self._read = read
        self._watching: dict[UUID, SessionWatcher] = {}

    def __len__(self) -> int:
        return len(self._watching)

    @contextlib.asynccontextmanager
    async def watching(self, checkout_session_id: UUID) -> AsyncIterator[SessionWatcher]:
        watcher = self.join(checkout_session_id)
        try:
            yield watcher
        finally:
            self.leave(watcher)

    async def follow(
        self,
        checkout_session_id: UUID,
        *,
        check: Callable[[CheckoutSession | None], CheckoutSession],
        on_change: Callable[[CheckoutSession, bool], None],
    ) -> Following:
        """Follows the session from a read made after every change announced so far;
        ``check`` passes that first read as a read would (or raises, and nothing is
        followed)."""
        watcher = self.join(checkout_session_id)
        try:
            first = check((await watcher.current()).session)
        except BaseException:
            self.leave(watcher)
            raise
        # No await since the read: no change can fall between it and the following.
        return Following(first, watcher=watcher, watchers=self, on_change=on_change)

    async def changes(
        self,
        checkout_session_id: UUID,
        *,
        check: Callable[[CheckoutSession | None], CheckoutSession],
    ) -> AsyncGenerator[CheckoutSession, None]:
        """``follow`` as an iterator: the first read, then each change; ends after the
        last. A consumer slower than the changes is handed the newest one."""
        newest: list[tuple[CheckoutSession, bool]] = []
        changed = asyncio.Event()

        def on_change(session: CheckoutSession, last: bool) -> None:
            newest[:] = [(session, last)]
            changed.set()

        following = await self.follow(checkout_session_id, check=check, on_change=on_change)
        try:
            yield following.first
            last = following.ended
            while not last:
                await changed.wait()
                changed.clear()
                session, last = newest.pop()
                yield session
        finally:
            following.stop()

    def join(self, checkout_session_id: UUID) -> SessionWatcher:
        """The session's watcher, with one member more: ``leave`` it once."""
        watcher = self._watching.get(checkout_session_id)
        if watcher is None:
            watcher = SessionWatcher(checkout_session_id, watchers=self, read=self._read)
            self._watching[checkout_session_id] = watcher
            watcher.start()
        watcher.members += 1
        return watcher

    def leave(self, watcher: SessionWatcher) -> None:
        watcher.members -= 1
        if watcher.members == 0:
            del self._watching[watcher.checkout_session_id]
            watcher.stop()
