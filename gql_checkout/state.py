"""Typed access to the app's services from a request or websocket."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from gql_checkout.services import Services


def services(connection: HTTPConnection) -> Services:
    wired: Services = connection.app.state.services
    return wired
