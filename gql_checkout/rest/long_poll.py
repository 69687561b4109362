"""Long polling on the REST read: ``If-None-Match`` + ``Prefer: wait=N`` (RFC 7240).

A read whose ETag still matches is held on the session's shared watcher (services/
watching.py) until the session changes, the wait ends, or the server begins to shut
down; it costs one future and one timer while it waits, and reads nothing. The request
time limit is suspended while it waits (``Deadlines.suspended``): waiting is not work.
"""

from __future__ import annotations

import asyncio

from gql_checkout.http.shutdown import Shutdown
from gql_checkout.services.watching import SessionWatcher, Snapshot

MAX_WAIT_SECONDS = 30


def requested_wait(values: list[str]) -> int | None:
    """The ``wait`` preference of the request's ``Prefer`` header values, in seconds.

    RFC 7240: only the first instance of a preference counts, and one the server does not
    understand (``wait=soon``) is ignored, as if absent."""
    for value in values:
        for preference in value.split(","):
            name, _, rest = preference.partition(";")[0].partition("=")
            if name.strip().lower() != "wait":
                continue
            seconds = rest.strip().strip('"')
            if not (seconds.isascii() and seconds.isdigit()):
                return None
            # delta-seconds has no upper bound: a long one is simply more than the cap.
            return MAX_WAIT_SECONDS + 1 if len(seconds) > 6 else int(seconds)
    return None


async def hold(
    watcher: SessionWatcher, since: Snapshot, *, seconds: float, shutdown: Shutdown
) -> Snapshot | None:
    """The watcher's next snapshot after ``since``, or None at the end of ``seconds`` or
    when the shutdown begins, whichever comes first."""
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()
    timer = loop.call_later(seconds, _wake, woken)
    watcher.add_waiter(woken)
    shutdown.add_waiter(woken)
    try:
        # The watcher resolves it only at a change it can show: no spurious wake-ups.
        await woken
    finally:
        timer.cancel()
        watcher.discard_waiter(woken)
        shutdown.discard_waiter(woken)
    return None if watcher.snapshot is since else watcher.snapshot


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
