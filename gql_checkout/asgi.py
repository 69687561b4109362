"""The ASGI entry point uvicorn imports (``--factory``): settings from the environment."""

from __future__ import annotations

from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.settings import Settings


def app_from_env() -> Starlette:
    return create_app(Settings.from_env())
