"""GET /v1/checkout-sessions/{checkoutSessionId}: the polled REST read.

Parse, call the service, render from the field table. Every rule (access, expiry, order
of checks) is the service's; errors become problem+json through the app's one handler.
"""

from __future__ import annotations

import hashlib
from http import HTTPStatus
from uuid import UUID

import orjson
from starlette.datastructures import QueryParams
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gql_checkout.domain.errors import FieldError, ValidationError
from gql_checkout.domain.session_json import render_session
from gql_checkout.domain.validation import parse_uuid
from gql_checkout.http import raw_asgi
from gql_checkout.services.checkout_sessions import CheckoutService
from gql_checkout.services.merchants import MerchantService

_INIT_VALUES = {"true": True, "false": False}


class SessionEndpoint:
    """GET /v1/checkout-sessions/{checkoutSessionId}, the polled path, as a plain ASGI app.

    It reads the scope's headers once and sends its two messages itself: no Request or
    Response object, no per-endpoint exception wrapper. Errors are raised as before and
    reach the app's one problem+json handler.
    """

    def __init__(self, *, checkout: CheckoutService, merchants: MerchantService) -> None:
        self._checkout = checkout
        self._merchants = merchants

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = raw_asgi.headers(scope, _READ_HEADERS)
        checkout_session_id, merchant_id, init = _parse_read_request(scope, headers)
        service = self._checkout
        reader = await self._merchants.resolve_reader(
            merchant_id=merchant_id,
            authorization=headers.get(b"authorization"),
            client=raw_asgi.client_host(scope),
        )
        now = service.clock()
        session, related = await service.get_checkout_session_with_related(
            reader=reader, checkout_session_id=checkout_session_id, now=now
        )
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
        etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
        cache = [(b"cache-control", b"no-cache, private"), (b"etag", etag)]
        if _etag_matches(headers.get(b"if-none-match"), etag.decode()):
            await raw_asgi.respond(send, HTTPStatus.NOT_MODIFIED.value, cache, b"")
        else:
            await raw_asgi.respond(
                send, HTTPStatus.OK.value, [*cache, *raw_asgi.json_headers(body)], body
            )


_READ_HEADERS = frozenset({b"x-merchant-id", b"authorization", b"if-none-match"})


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


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    # If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored.
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    candidates = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return etag in candidates


def session_route(*, checkout: CheckoutService, merchants: MerchantService) -> Route:
    return Route(
        "/v1/checkout-sessions/{checkoutSessionId}",
        SessionEndpoint(checkout=checkout, merchants=merchants),
        methods=["GET"],
    )
