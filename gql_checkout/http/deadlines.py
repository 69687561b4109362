"""The request time limit: one timer for all requests in flight, not one each.

``asyncio.timeout`` costs ~4 µs a request here (a timer handle to create and cancel, and
the running-loop lookups around it); registering the task in a dict costs ~0.4 µs. Every
request gets the same limit, so requests expire in the order they started: the timer only
ever waits for the oldest, and when it fires it cancels those past their deadline, as
``asyncio.timeout`` would (the task's cancellation is taken back when the request is
answered with 503, so only the request ends, not whatever else awaited it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Expired(Exception):
    """The awaitable ran past the time limit and was cancelled."""


class Deadlines:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        # Tasks by deadline, oldest first (insertion order: one limit for all).
        self._running: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        # The pending timer's loop (None: no timer). Tests may drive one app from
        # several loops in turn; a server has one.
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Awaits ``awaitable`` in the current task; Expired if it is still running after
        the limit (it was cancelled then)."""
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        deadline = loop.time() + self.seconds
        self._running[task] = deadline
        if self._timer_loop is not loop:
            self._timer_loop = loop
            loop.call_at(deadline, self._expire, loop)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if task not in self._expired or task.uncancel() > 0:
                raise  # cancelled by someone else as well: theirs to handle
            raise Expired from None
        finally:
            del self._running[task]
            self._expired.discard(task)

    async def suspended(self, awaitable: Awaitable[T]) -> T:
        """Awaits ``awaitable`` outside the time limit, which then starts afresh: a held
        long poll waits, it does not work, and its answer gets a whole limit of its own."""
        task = asyncio.current_task()
        assert task is not None
        held = self._running.pop(task, None) is not None
        try:
            return await awaitable
        finally:
            if held:
                loop = task.get_loop()
                # Appended, so insertion order is still deadline order (one limit for all).
                self._running[task] = loop.time() + self.seconds
                if self._timer_loop is not loop:
                    self._timer_loop = loop
                    loop.call_at(self._running[task], self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer_loop is loop:
            self._timer_loop = None
        now = loop.time()
        for task, deadline in list(self._running.items()):
            if task.get_loop() is not loop:
                continue
            if deadline > now:
                self._timer_loop = loop
                loop.call_at(deadline, self._expire, loop)
                return
            if task not in self._expired:
                self._expired.add(task)
                task.cancel()
