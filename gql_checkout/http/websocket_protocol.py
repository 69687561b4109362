"""uvicorn's websocket protocol, less what it keeps of the handshake once it is over.

`gql-checkout serve` runs uvicorn's sans-I/O websocket protocol (the websockets library's
state machine, ~7 KiB lighter per connection than uvicorn's other one). It keeps the
upgrade request and the response it built for as long as the socket is open, each with its
header objects: ~4 KiB of a ~26 KiB connection (bench.connections --tracemalloc:
websockets/datastructures.py and http11.py), used only until the response is sent. A page
holds its socket for minutes; here they are dropped once the handshake is complete.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

NAME = f"{__name__}:WebSocketProtocol"  # uvicorn's ``ws`` setting


class WebSocketProtocol(WebSocketsSansIOProtocol):
    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and getattr(self, "response", None) is not None:
            self.request = self.response = None  # type: ignore[assignment]
