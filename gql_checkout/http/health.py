"""Operability endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gql_checkout.domain.errors import Unauthenticated
from gql_checkout.domain.validation import parse_bearer
from gql_checkout.http.metrics import Metrics

logger = logging.getLogger(__name__)


async def healthz(_request: Request) -> JSONResponse:
    """The process is up and serving."""
    return JSONResponse({"status": "ok"})


def routes(
    *,
    ping: Callable[[], Awaitable[None]],
    metrics: Metrics,
    metrics_token: str | None = None,
) -> list[Route]:
    """/healthz, /readyz (``ping`` must answer) and /metrics (``metrics``' registry; with
    ``metrics_token``, only for ``Authorization: Bearer <metrics_token>``)."""

    async def readyz(_request: Request) -> JSONResponse:
        """The database answers: route traffic here."""
        try:
            await ping()
        except (SQLAlchemyError, OSError) as error:
            logger.warning("readiness check failed: %s", error)
            return JSONResponse(
                {"status": "unavailable", "database": "unreachable"},
                status_code=HTTPStatus.SERVICE_UNAVAILABLE,
            )
        return JSONResponse({"status": "ok", "database": "ok"})

    async def prometheus(request: Request) -> Response:
        """Prometheus text format (keep it off the public edge: deploy/nginx.conf does)."""
        if metrics_token is not None:
            _check_bearer(request.headers.get("authorization"), expected=metrics_token)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]


def _check_bearer(authorization: str | None, *, expected: str) -> None:
    """Unauthenticated unless ``authorization`` is ``Bearer <expected>`` (compared in
    constant time: the answer's timing says nothing of how much of a guess was right)."""
    if authorization is None:
        raise Unauthenticated("/metrics needs an Authorization: Bearer <metrics token> header.")
    given = parse_bearer(authorization)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthenticated("The metrics token is not valid.")
