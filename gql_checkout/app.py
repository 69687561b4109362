"""create_app(settings) -> Starlette: routes, middleware, lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL

from gql_checkout.container import build_container
from gql_checkout.domain.clock import Clock, utc_now
from gql_checkout.domain.errors import GatewayError
from gql_checkout.graphql.schema import build_schema
from gql_checkout.graphql.view import GraphQLView
from gql_checkout.http import health, ide, openapi
from gql_checkout.http.deadlines import Deadlines
from gql_checkout.http.middleware import RequestMiddleware, request_id_of
from gql_checkout.http.problems import handle_gateway_error, handle_http_exception
from gql_checkout.http.request_id import request_id_var
from gql_checkout.http.shutdown import Shutdown
from gql_checkout.rest.checkout_sessions import session_route
from gql_checkout.rest.hcp_auth import hcp_auth_route
from gql_checkout.settings import Settings


class Gateway(Starlette):
    """The app: a websocket to /graphql goes straight to the GraphQL view, with its request
    id. A socket is held for as long as the page is open, and each layer it passes keeps a
    suspended frame for that long: Starlette's error and exception middleware, its router
    and our request middleware cost ~3.5 KiB per connection (bench.connections
    --tracemalloc) and do nothing more for this one route."""

    def __init__(self, *, graphql: ASGIApp, **options: Any) -> None:
        super().__init__(**options)
        self._graphql = graphql

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/graphql":
            scope["app"] = self
            # The connection's task has a context of its own: nothing to reset after.
            request_id_var.set(request_id_of(scope))
            await self._graphql(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, clock: Clock = utc_now) -> Starlette:
    container = build_container(settings, clock=clock)
    limits = settings.limits
    graphql = GraphQLView(
        build_schema(
            limits=limits,
            production=settings.is_production,
            tracing=settings.otel_tracing,
            compiled=settings.compiled_queries,
        ),
        checkout=container.checkout,
        merchants=container.merchants,
        metrics=container.metrics,
        webhooks=container.webhooks,
        trusted_documents=settings.trusted_documents,
        graphql_ide=None if settings.is_production else "graphiql",
        allow_queries_via_get=False,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
        connection_init_wait_timeout=timedelta(seconds=limits.connection_init_timeout_seconds),
        max_subscriptions_per_connection=limits.max_subscriptions_per_connection,
    )

    shutdown = Shutdown()
    deadlines = Deadlines(limits.request_timeout_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await container.start(deliver_webhooks=settings.webhooks.deliver)
        try:
            with shutdown.on_signals():  # held long polls are answered as shutdown begins
                yield
        finally:
            await container.stop()

    app = Gateway(
        graphql=graphql,
        # Routes are tried in order: the two polled ones first.
        routes=[
            session_route(
                checkout=container.checkout,
                merchants=container.merchants,
                shutdown=shutdown,
                deadlines=deadlines,
            ),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            hcp_auth_route(checkout=container.checkout),
            *health.routes(
                ping=container.checkout.ping,
                metrics=container.metrics,
                metrics_token=settings.metrics_token,
            ),
            *openapi.routes,
            *([] if settings.is_production else ide.routes),  # GraphiQL's scripts and CSS
        ],
        middleware=[
            Middleware(
                RequestMiddleware,
                metrics=container.metrics,
                deadlines=deadlines,
                max_body_bytes=limits.max_body_bytes,
            ),
        ],
        exception_handlers={
            GatewayError: handle_gateway_error,
            HTTPException: handle_http_exception,
        },
        lifespan=lifespan,
    )
    app.state.container = container
    app.state.settings = settings
    app.state.shutdown = shutdown
    return app
