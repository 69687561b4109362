"""The floor for bench.perf: the least a Starlette app under uvicorn can do per request.

    uvicorn bench.floor_app:app

Answers the REST path (so the load script, headers and URLs are the same as for the real
targets) with one constant JSON body: no database, no middleware, no validation. What is
left is uvicorn, httptools, the event loop and Starlette's routing.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = b'{"data":{"checkoutSession":{"checkoutSessionStatus":"INITIATED"}}}'


async def constant(_request: Request) -> Response:
    return Response(BODY, media_type="application/json")


app = Starlette(
    routes=[
        Route("/v1/checkout-sessions/{checkoutSessionId}", constant, methods=["GET"]),
        Route("/", constant, methods=["GET"]),
    ]
)
