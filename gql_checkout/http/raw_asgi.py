"""What the polled endpoints read from an ASGI scope and send back, done directly.

Starlette's Request and Response build a header list, a body stream and a header map per
request; a poll needs four headers, one body chunk and two messages, so these helpers
take them from the scope and ``receive`` themselves (the same values Starlette would
give: the first header of a name, latin-1) and send the answer.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send


def headers(scope: Scope, wanted: frozenset[bytes]) -> dict[bytes, str]:
    """The first value of each ``wanted`` header (ASGI servers lower-case the names)."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in wanted and name not in found:
            found[name] = value.decode("latin-1")
    return found


def client_host(scope: Scope) -> str:
    """The caller's address (behind nginx, uvicorn takes it from X-Forwarded-For)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` for a request whose body was already read: the body, then the rest."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def json_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]


async def respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
