"""The floor for bench.connections: the least a Starlette app under uvicorn can do to hold
subscriptions and long polls and fan a change out to them.

    uvicorn bench.ws_floor_app:app

It speaks just enough graphql-transport-ws (ack, one constant ``next`` per subscribe)
and holds ``GET /v1/checkout-sessions/{id}`` with ``Prefer: wait``, keyed by session id;
``POST /cancel/{id}`` sends each subscriber of that id a ``next`` and a ``complete`` and
answers its held polls. No database, no GraphQL, no checks: what is left is uvicorn, its
websocket implementation, the event loop and Starlette (a websocket goes straight to its
handler, past Starlette's middleware and router, as the gateway's do).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

SUBSCRIBERS: defaultdict[str, set[tuple[WebSocket, str]]] = defaultdict(set)
HELD: defaultdict[str, set[asyncio.Future[None]]] = defaultdict(set)
EVENT = '{"data":{"checkoutSessionUpdated":{"checkoutSessionStatus":"%s"}}}'


async def graphql(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="graphql-transport-ws")
    watched: list[tuple[str, tuple[WebSocket, str]]] = []
    try:
        while True:
            message = json.loads(await websocket.receive_text())
            if message["type"] == "connection_init":
                await websocket.send_text('{"type":"connection_ack"}')
            elif message["type"] == "subscribe":
                session_id = message["payload"]["variables"]["id"]
                member = (websocket, message["id"])
                SUBSCRIBERS[session_id].add(member)
                watched.append((session_id, member))
                await websocket.send_text(_next(message["id"], "INITIATED"))
    except WebSocketDisconnect:
        pass
    finally:
        for session_id, member in watched:
            SUBSCRIBERS[session_id].discard(member)


async def held_read(request: Request) -> Response:
    session_id = request.path_params["checkoutSessionId"]
    woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    HELD[session_id].add(woken)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await woken
                return Response(EVENT % "CANCELED", media_type="application/json")
    finally:
        HELD[session_id].discard(woken)
    return Response(status_code=304)


async def cancel(request: Request) -> Response:
    session_id = request.path_params["checkoutSessionId"]
    for websocket, operation in list(SUBSCRIBERS.pop(session_id, ())):
        with contextlib.suppress(Exception):
            await websocket.send_text(_next(operation, "CANCELED"))
            await websocket.send_text(f'{{"id":"{operation}","type":"complete"}}')
    for woken in HELD.pop(session_id, ()):
        if not woken.done():
            woken.set_result(None)
    return Response("{}", media_type="application/json")


def _next(operation: str, status: str) -> str:
    return f'{{"id":"{operation}","type":"next","payload":{EVENT % status}}}'


async def root(_request: Request) -> Response:
    return Response("{}", media_type="application/json")


http = Starlette(
    routes=[
        Route("/v1/checkout-sessions/{checkoutSessionId}", held_read, methods=["GET"]),
        Route("/cancel/{checkoutSessionId}", cancel, methods=["POST"]),
        Route("/", root, methods=["GET"]),
    ]
)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await graphql(WebSocket(scope, receive, send))
    else:
        await http(scope, receive, send)
