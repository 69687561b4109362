"""The moment a graceful shutdown begins, for requests that would otherwise wait it out.

uvicorn's shutdown stops accepting, then waits (up to its graceful timeout) for the
requests in flight, and only then runs the lifespan's shutdown: a held long poll would
keep the process up for its whole wait, and be cut off if the wait outlasts the timeout.
uvicorn tells the app nothing before the lifespan, so this chains itself in front of the
signal handlers uvicorn installs (it installs them with ``signal.signal`` before the
lifespan starts, and puts the previous ones back when it is done), and wakes every held
request on the event loop as uvicorn starts shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Shutdown:
    def __init__(self) -> None:
        self.begun = False
        self._waiting: set[asyncio.Future[None]] = set()

    @property
    def waiting(self) -> int:
        """How many requests it would answer now (the held long polls)."""
        return len(self._waiting)

    def add_waiter(self, future: asyncio.Future[None]) -> None:
        """``future`` gets a result when the shutdown begins."""
        self._waiting.add(future)

    def discard_waiter(self, future: asyncio.Future[None]) -> None:
        self._waiting.discard(future)

    def begin(self) -> None:
        self.begun = True
        for future in self._waiting:
            if not future.done():
                future.set_result(None)
        self._waiting.clear()

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[None]:
        """While the block runs, SIGINT and SIGTERM begin the shutdown, then go on to the
        handler in place before (uvicorn's). Outside the main thread (an app driven in
        process by tests) signals are not the app's to take: nothing is chained."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in SIGNALS}

        def chained(sig: int, frame: FrameType | None) -> None:
            # A signal handler runs between two bytecodes of whatever the loop was doing:
            # the futures are resolved on the loop, not here.
            loop.call_soon_threadsafe(self.begin)
            _call(previous[sig], sig, frame)

        installed = {sig: signal.signal(sig, chained) for sig in SIGNALS}
        try:
            yield
        finally:
            for sig, handler in installed.items():
                # Only if still ours: uvicorn may have put its predecessor back already.
                if signal.getsignal(sig) is chained:
                    signal.signal(sig, handler)


def _call(handler: Any, sig: int, frame: FrameType | None) -> None:
    if callable(handler):
        handler(sig, frame)
    elif handler == signal.SIG_DFL:
        # What the signal would have done without us (SIGTERM: end the process).
        signal.signal(sig, signal.SIG_DFL)
        signal.raise_signal(sig)
