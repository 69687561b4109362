"""ASGI middleware: request id and last-resort error mask, metrics, time limit, body size."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql_checkout.errors import PayloadTooLarge, RequestTimeout
from gql_checkout.logs import ACCESS_LOGGER
from gql_checkout.metrics import Metrics
from gql_checkout.problems import internal_error_response, problem_response
from gql_checkout.requestctx import request_id_var

REQUEST_ID_HEADER = "x-request-id"
access_log = logging.getLogger(ACCESS_LOGGER)
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestContextMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware): no extra task per request on the hot path.

    It sits outside Starlette's ServerErrorMiddleware's reach on purpose: an unexpected
    error is answered here, so even a 500 carries the request id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = next(
            (value for key, value in scope["headers"] if key == b"x-request-id"), b""
        ).decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.fullmatch(incoming) else os.urandom(16).hex()
        token = request_id_var.set(request_id)

        status: int | None = None
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if status is not None or scope["type"] != "http":
                raise
            await internal_error_response(exc)(scope, receive, send_with_id)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "method": scope.get("method", "WEBSOCKET"),
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - began) * 1000, 2),
                    },
                )
            request_id_var.reset(token)


class MetricsMiddleware:
    """Counts and times HTTP requests by route template (never by raw path)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.observe_request(
                route=getattr(scope.get("route"), "path", "unmatched"),
                method=scope["method"],
                status=status,
                started=started,
            )


class RequestTimeoutMiddleware:
    """Abandons an HTTP request after ``seconds`` (its transaction, if any, rolls back)."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        deadline = asyncio.timeout(self.seconds)
        try:
            async with deadline:
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            if started or not deadline.expired():
                raise
            await problem_response(RequestTimeout())(scope, receive, send)


class BodySizeLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413 before anything parses them.

    Content-Length is checked up front; a chunked body is counted as it streams.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((value for key, value in scope["headers"] if key == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(self._detail)
            return message

        await self.app(scope, counting_receive, send)

    @property
    def _detail(self) -> str:
        return f"The request body exceeds {self.max_bytes} bytes."

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await problem_response(PayloadTooLarge(self._detail))(scope, receive, send)
