"""Operability endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import logging
from http import HTTPStatus

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gql_checkout.state import services

logger = logging.getLogger(__name__)


async def healthz(_request: Request) -> JSONResponse:
    """The process is up and serving."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """The database answers: route traffic here."""
    try:
        await services(request).checkout.ping()
    except (SQLAlchemyError, OSError) as error:
        logger.warning("readiness check failed: %s", error)
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable"},
            status_code=HTTPStatus.SERVICE_UNAVAILABLE,
        )
    return JSONResponse({"status": "ok", "database": "ok"})


async def metrics(request: Request) -> Response:
    """Prometheus text format (keep it off the public edge: deploy/nginx.conf does)."""
    registry = services(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
