"""The REST shim's OpenAPI document: served as checked in, valid OpenAPI 3.1, complete.

Whether the responses conform to it is tests/rest/test_fuzz_rest.py's job.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from starlette.applications import Starlette
from starlette.routing import Route

import gql_checkout
from gql_checkout.domain.errors import GatewayError
from gql_checkout.domain.fields import SESSION_FIELDS, Rest

pytestmark = pytest.mark.anyio
# The document does not depend on the store: one run is enough.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

DOCUMENT_PATH = Path(gql_checkout.__file__).parent / "http" / "openapi.json"
# Starlette answers HEAD wherever GET is routed; it is not an operation of its own.
IMPLICIT_METHODS = {"HEAD"}


def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOCUMENT_PATH.read_text())
    return document


def _routes(app: Starlette) -> dict[str, set[str]]:
    """The app's HTTP routes: path template -> methods."""
    return {
        route.path: set(route.methods or ()) - IMPLICIT_METHODS
        for route in app.routes
        if isinstance(route, Route)
    }


def _documented(document: dict[str, Any]) -> dict[str, set[str]]:
    return {
        path: {method.upper() for method in operations}
        for path, operations in document["paths"].items()
    }


def _error_codes() -> set[str]:
    pending: list[type[GatewayError]] = [GatewayError]
    codes: set[str] = set()
    while pending:
        error_class = pending.pop()
        pending.extend(error_class.__subclasses__())
        if "code" in vars(error_class):
            codes.add(error_class.code)
    return codes


@sqlite_only
async def test_the_checked_in_document_is_served_as_is(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == HTTPStatus.OK
    assert response.headers["content-type"] == "application/json"
    assert response.content == DOCUMENT_PATH.read_bytes()


def test_the_document_is_valid_openapi_3_1() -> None:
    document = _document()

    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)


def test_the_validator_refuses_a_broken_document() -> None:
    """The check above can fail: an operation whose response lacks its description."""
    document = _document()
    del document["paths"]["/healthz"]["get"]["responses"]["200"]["description"]

    with pytest.raises(OpenAPIValidationError):
        validate(document, cls=OpenAPIV31SpecValidator)


def test_the_document_is_pretty_printed_json() -> None:
    text = DOCUMENT_PATH.read_text()

    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"


@sqlite_only
async def test_every_v1_route_is_documented(app: Starlette) -> None:
    routes = _routes(app)
    v1_routes = {path: methods for path, methods in routes.items() if path.startswith("/v1/")}
    documented = _documented(_document())

    assert v1_routes  # the check below would pass vacuously without any
    for path, methods in v1_routes.items():
        assert methods <= documented.get(path, set()), f"{path} {methods} is not documented"


@sqlite_only
async def test_every_documented_operation_is_served(app: Starlette) -> None:
    routes = _routes(app)

    for path, methods in _documented(_document()).items():
        assert methods <= routes.get(path, set()), f"{path} {methods} is not served"


def test_the_error_codes_are_those_of_the_exception_tree() -> None:
    documented = set(_document()["components"]["schemas"]["ErrorCode"]["enum"])

    assert documented == _error_codes()


def test_the_session_schemas_list_the_field_tables_rest_fields_in_its_order() -> None:
    schemas = _document()["components"]["schemas"]
    always = [field.name for field in SESSION_FIELDS if field.rest is Rest.ALWAYS]
    with_init = [field.name for field in SESSION_FIELDS if field.rest is not Rest.NEVER]

    assert list(schemas["CheckoutSession"]["properties"]) == with_init
    assert list(schemas["ChildCheckoutSession"]["properties"]) == always
    assert set(schemas["ChildCheckoutSession"]["required"]) == set(always)
