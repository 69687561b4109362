"""create_app(settings) -> Starlette: routes, middleware, lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from gql_checkout import health, openapi, rest
from gql_checkout.clock import Clock, utc_now
from gql_checkout.errors import GatewayError
from gql_checkout.graphql.schema import build_schema
from gql_checkout.graphql.view import GraphQLView
from gql_checkout.middleware import RequestMiddleware
from gql_checkout.problems import handle_gateway_error, handle_http_exception
from gql_checkout.services import build_services
from gql_checkout.settings import Settings


def create_app(settings: Settings, *, clock: Clock = utc_now) -> Starlette:
    services = build_services(settings, clock=clock)
    limits = settings.limits
    graphql = GraphQLView(
        build_schema(
            limits=limits,
            production=settings.is_production,
            tracing=settings.otel_tracing,
            compiled=settings.compiled_queries,
        ),
        services=services,
        graphql_ide=None if settings.is_production else "graphiql",
        allow_queries_via_get=False,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        connection_init_wait_timeout=timedelta(seconds=limits.connection_init_timeout_seconds),
        max_subscriptions_per_connection=limits.max_subscriptions_per_connection,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    app = Starlette(
        # Routes are tried in order: the two polled ones first.
        routes=[
            rest.session_route(services),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            *rest.other_routes,
            *health.routes,
            *openapi.routes,
        ],
        middleware=[
            Middleware(
                RequestMiddleware,
                metrics=services.metrics,
                timeout_seconds=limits.request_timeout_seconds,
                max_body_bytes=limits.max_body_bytes,
            ),
        ],
        exception_handlers={
            GatewayError: handle_gateway_error,
            HTTPException: handle_http_exception,
        },
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.settings = settings
    return app
