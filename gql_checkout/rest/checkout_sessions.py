"""GET /v1/checkout-sessions/{checkoutSessionId}: the polled REST read.

Parse, call the service, render from the field table. Every rule (access, expiry, order
of checks) is the service's; errors become problem+json through the app's one handler.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any
from uuid import UUID

import orjson
from starlette.datastructures import QueryParams
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gql_checkout.domain.checkout_sessions import CheckoutSession
from gql_checkout.domain.errors import FieldError, ValidationError
from gql_checkout.domain.fields import PROFILE_JSON, SESSION_FIELDS, SESSION_JSON, Rest, Source
from gql_checkout.domain.merchants import MerchantProfile
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
        rendered = _render_session(
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


# The REST shape: the table's REST fields, in its order; the heavy ones with init=true.
# The session's own fields are rendered in one pass, then the rest (related sessions,
# the profile's), which the table lists after them (asserted: the keys keep its order).
_ALWAYS = tuple(field for field in SESSION_FIELDS if field.rest is Rest.ALWAYS)
_WITH_INIT = tuple(field for field in SESSION_FIELDS if field.rest is not Rest.NEVER)
_OWN = tuple((f.name, SESSION_JSON[f.name]) for f in _ALWAYS if f.source is Source.SESSION)
_OTHERS = tuple(field for field in _ALWAYS if field.source is not Source.SESSION)
_OTHERS_WITH_INIT = tuple(field for field in _WITH_INIT if field.source is not Source.SESSION)
assert _WITH_INIT[: len(_OWN)] == tuple(f for f in _WITH_INIT if f.source is Source.SESSION)


def _render_session(
    session: CheckoutSession,
    *,
    now: datetime,
    related: Mapping[UUID, CheckoutSession],
    hcp_token: Callable[[CheckoutSession], str],
    profile: MerchantProfile | None = None,
    init: bool = False,
) -> dict[str, Any]:
    """The session as REST shows it; ``related`` holds the sessions its RELATED fields may
    name (a missing one is null)."""
    rendered: dict[str, Any] = {name: json(session, now) for name, json in _OWN}
    for field in _OTHERS_WITH_INIT if init else _OTHERS:
        name = field.name
        if field.source is Source.RELATED:
            related_id = field.value(session)
            other = related.get(related_id) if related_id is not None else None
            rendered[name] = (
                _render_session(other, now=now, related=related, hcp_token=hcp_token)
                if other is not None
                else None
            )
        elif field.source is Source.PROFILE:
            rendered[name] = PROFILE_JSON[name](profile)
        else:
            rendered[name] = hcp_token(session)
    return rendered


def session_route(*, checkout: CheckoutService, merchants: MerchantService) -> Route:
    return Route(
        "/v1/checkout-sessions/{checkoutSessionId}",
        SessionEndpoint(checkout=checkout, merchants=merchants),
        methods=["GET"],
    )
