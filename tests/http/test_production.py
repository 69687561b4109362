"""GQL_CHECKOUT_ENV=production locks the gateway down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.settings import Environment, Settings, SettingsError
from testkit.clock import Clock
from testkit.documents import create_session, error_codes, graphql
from testkit.merchants import MerchantCredentials

pytestmark = pytest.mark.anyio

INTROSPECTION = "{ __schema { types { name } } }"
TYPO = "query($id: ID!) { checkoutSession(id: $id) { checkoutSessionStatu } }"


@pytest.fixture
async def production(
    app: Starlette, settings: Settings, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    locked = create_app(replace(settings, environment=Environment.PRODUCTION), clock=clock)
    transport = httpx.ASGITransport(app=locked)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await locked.state.container.stop()


async def test_no_graphiql(production: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    html = {"Accept": "text/html"}

    assert (await client.get("/graphql", headers=html)).status_code == 200
    locked = await production.get("/graphql", headers=html)
    assert locked.status_code != 200
    assert "graphiql" not in locked.text.lower()


async def test_no_introspection(
    production: httpx.AsyncClient, client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    allowed = await graphql(client, INTROSPECTION, headers=merchant.read_headers)
    refused = await graphql(production, INTROSPECTION, headers=merchant.read_headers)

    assert "errors" not in allowed
    assert refused["data"] is None
    assert set(error_codes(refused)) == {"GRAPHQL_VALIDATION_FAILED"}


async def test_no_field_suggestions(
    production: httpx.AsyncClient, client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    variables = {"id": session["id"]}

    development = await graphql(client, TYPO, variables, merchant.read_headers)
    locked = await graphql(production, TYPO, variables, merchant.read_headers)

    assert "Did you mean" in development["errors"][0]["message"]
    assert locked["errors"][0]["message"] == (
        "Cannot query field 'checkoutSessionStatu' on type 'CheckoutSession'."
    )
    assert error_codes(locked) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_the_read_path_still_works(
    production: httpx.AsyncClient, client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)

    response = await production.get(
        f"/v1/checkout-sessions/{session['id']}", headers=merchant.read_headers
    )

    assert response.status_code == 200


def test_production_needs_an_hcp_secret() -> None:
    with pytest.raises(SettingsError, match="GQL_CHECKOUT_HCP_SECRET is required in production"):
        Settings.from_env({"GQL_CHECKOUT_ENV": "production"})


def test_short_secrets_are_refused() -> None:
    with pytest.raises(SettingsError, match="at least 32 characters"):
        Settings.from_env({"GQL_CHECKOUT_ENV": "production", "GQL_CHECKOUT_HCP_SECRET": "short"})
