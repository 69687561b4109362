"""The REST shim: GET /v1/checkout-sessions/{id} and GET /v1/hcp/auth.

Parse, call the service, render. Every rule (access, expiry, order of checks)
is the service's; errors become problem+json through the app's one handler.
"""

from __future__ import annotations

import hashlib
from http import HTTPStatus
from typing import Any
from uuid import UUID

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gql_checkout import http_scope
from gql_checkout.domain import CheckoutSession, MerchantProfile
from gql_checkout.errors import FieldError, Unauthenticated, ValidationError
from gql_checkout.render import (
    SESSION_SCALARS,
    appearance_json,
    card_categories_json,
    payment_method_json,
)
from gql_checkout.services import Services
from gql_checkout.state import services
from gql_checkout.validation import parse_bearer, parse_uuid

_INIT_VALUES = {"true": True, "false": False}


class SessionEndpoint:
    """GET /v1/checkout-sessions/{checkoutSessionId}, the polled path, as a plain ASGI app.

    It reads the scope's headers once and sends its two messages itself: no Request or
    Response object, no per-endpoint exception wrapper. Errors are raised as before and
    reach the app's one problem+json handler.
    """

    def __init__(self, wired: Services) -> None:
        self._checkout = wired.checkout
        self._merchants = wired.merchants

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = http_scope.headers(scope, _READ_HEADERS)
        checkout_session_id, merchant_id, init = _parse_read_request(scope, headers)
        service = self._checkout
        merchant_id = await self._merchants.resolve_reader(
            merchant_id=merchant_id,
            authorization=headers.get(b"authorization"),
            client=http_scope.client_host(scope),
        )
        now = service.clock()
        session, child = await service.get_checkout_session_with_child(
            merchant_id=merchant_id, checkout_session_id=checkout_session_id, now=now
        )
        profile = None
        if init:
            profiles = await service.get_merchant_profiles(merchant_ids=[session.merchant_id])
            profile = profiles[session.merchant_id]
        body = orjson.dumps(
            {
                "data": {
                    "checkoutSession": _render_session(
                        session, now=now, child=child, profile=profile
                    ),
                    "hcpToken": service.hcp_token(session),
                }
            }
        )
        etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
        cache = [(b"cache-control", b"no-cache, private"), (b"etag", etag)]
        if _etag_matches(headers.get(b"if-none-match"), etag.decode()):
            await http_scope.respond(send, HTTPStatus.NOT_MODIFIED.value, cache, b"")
        else:
            await http_scope.respond(
                send, HTTPStatus.OK.value, [*cache, *http_scope.json_headers(body)], body
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


async def hcp_auth(request: Request) -> Response:
    """For nginx auth_request: 204 with the session's ids, or 401."""
    authorization = request.headers.get("authorization")
    if authorization is None:
        raise Unauthenticated("An hcpToken is required: Authorization: Bearer <hcpToken>.")
    session = await services(request).checkout.authorize_hcp_token(
        token=parse_bearer(authorization)
    )
    return Response(
        status_code=HTTPStatus.NO_CONTENT,
        headers={
            "X-Checkout-Session-Id": str(session.id),
            "X-Merchant-Id": str(session.merchant_id),
            "Cache-Control": "no-store",
        },
    )


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    # If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored.
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    candidates = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return etag in candidates


# The REST shape's session fields, in the contract's order.
_REST_SCALARS = (
    "id",
    "checkoutSessionStatus",
    "isExpired",
    "createdAt",
    "expiresAt",
    "amount",
    "currency",
    "merchantReference",
)


def _render_session(
    session: CheckoutSession,
    *,
    now: Any,
    child: CheckoutSession | None = None,
    profile: MerchantProfile | None = None,
) -> dict[str, Any]:
    rendered: dict[str, Any] = {name: SESSION_SCALARS[name](session, now) for name in _REST_SCALARS}
    method = session.payment_method
    rendered["paymentMethod"] = payment_method_json(method) if method else None
    rendered["childSession"] = _render_session(child, now=now) if child else None
    if profile is not None:
        rendered["appearance"] = appearance_json(profile.appearance)
        rendered["cardCategories"] = card_categories_json(profile)
    return rendered


def session_route(wired: Services) -> Route:
    return Route(
        "/v1/checkout-sessions/{checkoutSessionId}", SessionEndpoint(wired), methods=["GET"]
    )


other_routes = [Route("/v1/hcp/auth", hcp_auth, methods=["GET"])]
