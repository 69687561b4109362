"""Typed access to the app's services from a request or websocket."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from gql_checkout.services import Services


def services(connection: HTTPConnection) -> Services:
    wired: Services = connection.app.state.services
    return wired


def client_address(connection: HTTPConnection) -> str:
    """The caller's address (behind nginx, uvicorn takes it from X-Forwarded-For)."""
    return connection.client.host if connection.client else "unknown"
