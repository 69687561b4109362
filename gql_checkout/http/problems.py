"""RFC 9457 problem+json rendering of the exception tree: one table, one handler."""

from __future__ import annotations

import logging
from http import HTTPStatus

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gql_checkout.domain.errors import (
    GatewayError,
    InternalError,
    RateLimited,
    SessionExpired,
    ValidationError,
)
from gql_checkout.http.request_id import current_request_id

logger = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
_REALM = 'Bearer realm="gql-checkout"'


def problem_response(error: GatewayError) -> Response:
    body: dict[str, object] = {
        "type": f"/problems/{error.code.lower().replace('_', '-')}",
        "title": error.title,
        "status": int(error.status),
        "detail": error.detail,
        "code": error.code,
        "requestId": current_request_id(),
    }
    if isinstance(error, ValidationError) and error.field_errors:
        body["errors"] = [
            {"field": field_error.field, "message": field_error.message}
            for field_error in error.field_errors
        ]
    headers = {}
    if error.status is HTTPStatus.UNAUTHORIZED:
        headers["WWW-Authenticate"] = (
            f'{_REALM}, error="invalid_token", error_description="{error.detail}"'
            if isinstance(error, SessionExpired)
            else _REALM
        )
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after_seconds)
    return Response(
        orjson.dumps(body), status_code=error.status, headers=headers, media_type=PROBLEM_JSON
    )


async def handle_gateway_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return problem_response(exc)


async def handle_http_exception(_request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path, wrong method) in the same problem+json form."""
    assert isinstance(exc, HTTPException)
    status = HTTPStatus(exc.status_code)
    body = {
        "type": "about:blank",
        "title": status.phrase,
        "status": exc.status_code,
        "detail": exc.detail,
        "code": status.name,
        "requestId": current_request_id(),
    }
    return Response(
        orjson.dumps(body), status_code=status, headers=exc.headers, media_type=PROBLEM_JSON
    )


def internal_error_response(exc: BaseException) -> Response:
    """Logs the real error with the request id; the client sees only INTERNAL_ERROR."""
    logger.error("unhandled error", exc_info=exc, extra={"request_id": current_request_id()})
    return problem_response(InternalError())
