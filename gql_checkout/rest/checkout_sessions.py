"""GET /v1/checkout-sessions/{checkoutSessionId}: the polled REST read, and its long poll.

Parse, call the service, render from the field table. Every rule (access, expiry, order
of checks) is the service's; errors become problem+json through the app's one handler.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from datetime import datetime
from http import HTTPStatus
from uuid import UUID

import orjson
from starlette.datastructures import QueryParams
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gql_checkout.domain.checkout_sessions import CheckoutSession
from gql_checkout.domain.errors import FieldError, GatewayError, ValidationError
from gql_checkout.domain.merchants import Reader
from gql_checkout.domain.session_json import render_session
from gql_checkout.domain.validation import parse_uuid
from gql_checkout.http import raw_asgi
from gql_checkout.http.deadlines import Deadlines
from gql_checkout.http.problems import problem_response
from gql_checkout.http.shutdown import Shutdown
from gql_checkout.rest import long_poll
from gql_checkout.services.checkout_sessions import CheckoutService
from gql_checkout.services.merchants import MerchantService

_INIT_VALUES = {"true": True, "false": False}


class SessionEndpoint:
    """GET /v1/checkout-sessions/{checkoutSessionId}, the polled path, as a plain ASGI app.

    It reads the scope's headers once and sends its two messages itself: no Request or
    Response object, no per-endpoint exception wrapper. Errors are raised as before and
    reach the app's one problem+json handler.
    """

    def __init__(
        self,
        *,
        checkout: CheckoutService,
        merchants: MerchantService,
        shutdown: Shutdown | None = None,
        deadlines: Deadlines | None = None,
    ) -> None:
        self._checkout = checkout
        self._merchants = merchants
        self._shutdown = shutdown or Shutdown()
        # The request time limit, suspended while a long poll is held (None: no limit).
        self._deadlines = deadlines

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = raw_asgi.headers(scope, _READ_HEADERS)
        checkout_session_id, merchant_id, init = _parse_read_request(scope, headers)
        service = self._checkout
        reader = await self._merchants.resolve_reader(
            merchant_id=merchant_id,
            authorization=headers.get(b"authorization"),
            client=raw_asgi.client_host(scope),
        )
        if_none_match = headers.get(b"if-none-match")
        if if_none_match and b"prefer" in headers:  # polls send neither: no more work
            wait = long_poll.requested_wait(_all_values(scope, b"prefer"))
            if wait and not self._shutdown.begun:
                await self._long_poll(
                    scope,
                    receive,
                    send,
                    reader=reader,
                    checkout_session_id=checkout_session_id,
                    init=init,
                    if_none_match=if_none_match,
                    wait=min(wait, long_poll.MAX_WAIT_SECONDS),
                )
                return
        now = service.clock()
        session, related = await service.get_checkout_session_with_related(
            reader=reader, checkout_session_id=checkout_session_id, now=now
        )
        body, etag = await self._render(session, related=related, now=now, init=init)
        await _answer(send, body, etag, not_modified=_etag_matches(if_none_match, etag))

    async def _long_poll(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        reader: Reader,
        checkout_session_id: UUID,
        init: bool,
        if_none_match: str,
        wait: int,
    ) -> None:
        """Answers as a plain read would, now or, while the ETag still matches, at the
        session's next change; 304 at the end of ``wait`` or when the server shuts down."""
        service = self._checkout
        applied = [(b"preference-applied", f"wait={wait}".encode())]
        until = asyncio.get_running_loop().time() + wait
        held = False
        async with service.watching(checkout_session_id=checkout_session_id) as watcher:
            snapshot = await watcher.current()
            while True:
                now = service.clock()
                try:
                    session = service.readable(snapshot.session, reader=reader, now=now)
                except GatewayError as error:
                    if not held:
                        raise  # answered at once, as a plain read
                    problem = problem_response(error)
                    problem.headers["preference-applied"] = f"wait={wait}"
                    await problem(scope, receive, send)
                    return
                body, etag = await self._render(
                    session, related=snapshot.related, now=now, init=init
                )
                if not _etag_matches(if_none_match, etag):
                    await _answer(send, body, etag, not_modified=False, extra=applied * held)
                    return
                held = True
                remaining = until - asyncio.get_running_loop().time()
                changed = None
                if remaining > 0 and not self._shutdown.begun:
                    held_on = long_poll.hold(
                        watcher, snapshot, seconds=remaining, shutdown=self._shutdown
                    )
                    changed = await (
                        self._deadlines.suspended(held_on) if self._deadlines else held_on
                    )
                if changed is None:
                    break
                snapshot = changed
        await _answer(send, b"", etag, not_modified=True, extra=applied)

    async def _render(
        self,
        session: CheckoutSession,
        *,
        related: Mapping[UUID, CheckoutSession],
        now: datetime,
        init: bool,
    ) -> tuple[bytes, bytes]:
        """The body of a read and its strong ETag."""
        service = self._checkout
        profile = None
        if init:
            profiles = await service.get_merchant_profiles(merchant_ids=[session.merchant_id])
            profile = profiles.get(session.merchant_id)
        rendered = render_session(
            session,
            now=now,
            related=related,
            hcp_token=service.hcp_token,
            profile=profile,
            init=init,
        )
        body = orjson.dumps(
            {"data": {"checkoutSession": rendered, "hcpToken": service.hcp_token(session)}}
        )
        return body, b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'


async def _answer(
    send: Send,
    body: bytes,
    etag: bytes,
    *,
    not_modified: bool,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"cache-control", b"no-cache, private"), (b"etag", etag), *(extra or ())]
    if not_modified:
        await raw_asgi.respond(send, HTTPStatus.NOT_MODIFIED.value, headers, b"")
    else:
        await raw_asgi.respond(
            send, HTTPStatus.OK.value, [*headers, *raw_asgi.json_headers(body)], body
        )


def _all_values(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope["headers"] if key == name]


_READ_HEADERS = frozenset({b"x-merchant-id", b"authorization", b"if-none-match", b"prefer"})


def _parse_read_request(scope: Scope, headers: dict[bytes, str]) -> tuple[UUID, UUID, bool]:
    """All of the request's validation errors at once, in one 400."""
    errors: list[FieldError] = []
    checkout_session_id = merchant_id = None
    try:
        checkout_session_id = parse_uuid(
            scope["path_params"]["checkoutSessionId"], field="checkoutSessionId"
        )
    except ValidationError as error:
        errors.extend(error.field_errors)
    try:
        merchant_id = parse_uuid(headers.get(b"x-merchant-id"), field="X-Merchant-Id")
    except ValidationError as error:
        errors.extend(error.field_errors)
    init: bool | None = False
    if scope["query_string"]:  # polls carry none: skip parsing one
        init = _INIT_VALUES.get(QueryParams(scope["query_string"]).get("init", "false").lower())
    if init is None:
        errors.append(FieldError("init", "must be true or false"))
    if errors or checkout_session_id is None or merchant_id is None or init is None:
        raise ValidationError(*errors)
    return checkout_session_id, merchant_id, init


def _etag_matches(if_none_match: str | None, etag: bytes) -> bool:
    # If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored.
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    candidates = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return etag.decode() in candidates


def session_route(
    *,
    checkout: CheckoutService,
    merchants: MerchantService,
    shutdown: Shutdown | None = None,
    deadlines: Deadlines | None = None,
) -> Route:
    return Route(
        "/v1/checkout-sessions/{checkoutSessionId}",
        SessionEndpoint(
            checkout=checkout,
            merchants=merchants,
            shutdown=shutdown,
            deadlines=deadlines,
        ),
        methods=["GET"],
    )
