"""The REST shim's OpenAPI 3.1 document, checked in beside this module and served as is."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_DOCUMENT = Path(__file__).with_name("openapi.json")


@cache
def _document() -> bytes:
    return _DOCUMENT.read_bytes()


async def openapi(_request: Request) -> Response:
    return Response(_document(), media_type="application/json")


routes = [Route("/openapi.json", openapi, methods=["GET"])]
