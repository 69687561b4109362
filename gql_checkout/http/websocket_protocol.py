"""uvicorn's websocket protocol, less what a held connection need not keep.

`gql-checkout serve` runs uvicorn's sans-I/O websocket protocol (the websockets library's
state machine, ~7 KiB lighter per connection than uvicorn's other one). A page holds its
socket for minutes and one worker holds thousands, so what each keeps counts
(bench.connections --tracemalloc, per connection):

- the handshake's request and response, with their header objects (~2.5 KiB), though
  nothing reads them once the response is sent: uvicorn keeps both, and the websockets
  parser, a generator, keeps the request in its frame until the connection ends. They are
  let go, and the request's headers emptied, once the handshake is complete (the ASGI
  scope has its own copy of the headers);
- an ``asyncio.Queue`` for the messages to the app (three deques, ~2.6 KiB) and an
  ``asyncio.Event`` for write flow control (a deque, ~0.7 KiB), where one reader and at
  most one waiting writer need a list and a future made when one waits.

It relies on uvicorn's attribute names (``queue``, ``writable``, ``request``,
``response``): pyproject.toml takes uvicorn's minor versions one at a time, and the
websocket tests (real clients, a real server) run through this class.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

NAME = f"{__name__}:WebSocketProtocol"  # uvicorn's ``ws`` setting


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            self.request.headers.clear()
            self.request = self.response = None  # type: ignore[assignment]


class Inbox:
    """``asyncio.Queue``'s ``put_nowait``, ``get`` and ``empty`` for a single reader."""

    __slots__ = ("_items", "_reader")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._reader: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class Flag:
    """``asyncio.Event``'s ``set``, ``clear`` and ``wait``, with no deque until one waits."""

    __slots__ = ("_is_set", "_waiters")

    def __init__(self) -> None:
        self._is_set = True  # uvicorn sets it at once: the transport starts writable
        self._waiters: list[asyncio.Future[None]] = []

    def set(self) -> None:
        self._is_set = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._is_set = False

    async def wait(self) -> None:
        if self._is_set:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter
