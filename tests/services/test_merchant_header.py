"""GQL_CHECKOUT_MERCHANT_HEADER: whether X-Merchant-Id alone lets a read through, and the
hcpToken as a read's credential (MerchantService.resolve_reader), on REST and GraphQL."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.services.merchants import MerchantHeader
from gql_checkout.settings import Settings, SettingsError
from testkit.clock import Clock
from testkit.documents import CREATE_MUTATION, create_session, error_codes, graphql
from testkit.merchants import TEST_SECRET, MerchantCredentials

pytestmark = pytest.mark.anyio

READ_QUERY = "query S($id: ID!) { checkoutSession(id: $id) { id checkoutSessionStatus } }"
HCP_AUDIENCE = "gql-checkout:hcp"

ClientFor = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def client_for(app: Starlette, settings: Settings, clock: Clock) -> AsyncIterator[ClientFor]:
    """Clients of more apps on the fixture app's database (migrated by ``app``), each with
    these settings changed."""
    apps: list[Starlette] = []
    clients: list[httpx.AsyncClient] = []

    async def make(**changes: Any) -> httpx.AsyncClient:
        other = create_app(replace(settings, **changes), clock=clock)
        apps.append(other)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=other), base_url="http://testserver"
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
    for other in apps:
        await other.state.container.stop()


@pytest.fixture
async def api_key_only(client_for: ClientFor) -> httpx.AsyncClient:
    return await client_for(merchant_header=MerchantHeader.API_KEY_ONLY)


def _path(session: dict[str, Any]) -> str:
    return f"/v1/checkout-sessions/{session['id']}"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _sign(claims: dict[str, object], secret: str = TEST_SECRET) -> str:
    kid = hashlib.sha256(secret.encode()).hexdigest()[:12]
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})


def _assert_unauthenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "UNAUTHENTICATED"
    assert response.headers["www-authenticate"].startswith("Bearer")


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        (None, MerchantHeader.TRUSTED),
        ("", MerchantHeader.TRUSTED),
        ("trusted", MerchantHeader.TRUSTED),
        ("api-key-only", MerchantHeader.API_KEY_ONLY),
        (" API-Key-Only ", MerchantHeader.API_KEY_ONLY),
    ],
)
def test_the_mode_is_read_from_the_environment_and_trusted_by_default(
    raw: str | None, mode: MerchantHeader
) -> None:
    env = {} if raw is None else {"GQL_CHECKOUT_MERCHANT_HEADER": raw}

    assert Settings.from_env({**env, "GQL_CHECKOUT_HCP_SECRET": TEST_SECRET}).merchant_header is (
        mode
    )


@pytest.mark.parametrize("raw", ["api_key_only", "yes", "off"])
def test_an_unknown_mode_is_refused(raw: str) -> None:
    expected = "GQL_CHECKOUT_MERCHANT_HEADER must be 'trusted' or 'api-key-only'"
    with pytest.raises(SettingsError, match=expected):
        Settings.from_env(
            {"GQL_CHECKOUT_MERCHANT_HEADER": raw, "GQL_CHECKOUT_HCP_SECRET": "x" * 32}
        )


# --- X-Merchant-Id alone ---------------------------------------------------------------------


async def test_x_merchant_id_alone_reads_over_rest_only_while_trusted(
    client: httpx.AsyncClient, api_key_only: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)

    trusted = await client.get(_path(session), headers=merchant.read_headers)
    refused = await api_key_only.get(_path(session), headers=merchant.read_headers)

    assert trusted.status_code == 200
    assert trusted.json()["data"]["hcpToken"] == session["hcpToken"]
    _assert_unauthenticated(refused)
    assert session["hcpToken"] not in refused.text


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-plan", "executor"])
async def test_x_merchant_id_alone_reads_over_graphql_only_while_trusted(
    client: httpx.AsyncClient,
    client_for: ClientFor,
    merchant: MerchantCredentials,
    compiled: bool,
) -> None:
    session = await create_session(client, merchant.api_key)
    trusted_client = await client_for(compiled_queries=compiled)
    strict_client = await client_for(
        compiled_queries=compiled, merchant_header=MerchantHeader.API_KEY_ONLY
    )

    trusted = await graphql(
        trusted_client, READ_QUERY, {"id": session["id"]}, merchant.read_headers
    )
    refused = await graphql(strict_client, READ_QUERY, {"id": session["id"]}, merchant.read_headers)

    assert trusted == {
        "data": {"checkoutSession": {"id": session["id"], "checkoutSessionStatus": "INITIATED"}}
    }
    assert refused["data"] == {"checkoutSession": None}
    assert error_codes(refused) == ["UNAUTHENTICATED"]


async def test_no_merchant_at_all_is_unauthenticated_in_api_key_only_mode(
    client: httpx.AsyncClient, api_key_only: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)

    trusted = await graphql(client, READ_QUERY, {"id": session["id"]})
    refused = await graphql(api_key_only, READ_QUERY, {"id": session["id"]})

    assert error_codes(trusted) == ["VALIDATION_ERROR"]
    assert error_codes(refused) == ["UNAUTHENTICATED"]


# --- credentials that read in api-key-only mode ----------------------------------------------


async def test_an_api_key_reads_in_api_key_only_mode(
    client: httpx.AsyncClient, api_key_only: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    headers = {**merchant.read_headers, **merchant.write_headers}

    rest = await api_key_only.get(_path(session), headers=headers)
    body = await graphql(api_key_only, READ_QUERY, {"id": session["id"]}, merchant.write_headers)

    assert rest.status_code == 200, rest.text
    assert rest.json()["data"]["checkoutSession"]["id"] == session["id"]
    assert body["data"] == {
        "checkoutSession": {"id": session["id"], "checkoutSessionStatus": "INITIATED"}
    }


@pytest.mark.parametrize("mode", list(MerchantHeader))
async def test_the_sessions_hcp_token_is_a_read_credential_in_either_mode(
    client: httpx.AsyncClient,
    client_for: ClientFor,
    merchant: MerchantCredentials,
    mode: MerchantHeader,
) -> None:
    """What the HCP backend behind nginx sends: the X-Merchant-Id nginx set from the
    verified token, and that token, which nginx passes on as it came."""
    session = await create_session(client, merchant.api_key)
    reader = await client_for(merchant_header=mode)
    headers = {**merchant.read_headers, **_bearer(session["hcpToken"])}

    rest = await reader.get(_path(session), headers=headers)
    body = await graphql(reader, READ_QUERY, {"id": session["id"]}, headers)
    without_header = await graphql(
        reader, READ_QUERY, {"id": session["id"]}, _bearer(session["hcpToken"])
    )

    assert rest.status_code == 200, rest.text
    assert rest.json()["data"]["checkoutSession"]["id"] == session["id"]
    assert rest.json()["data"]["hcpToken"] == session["hcpToken"]
    expected = {"checkoutSession": {"id": session["id"], "checkoutSessionStatus": "INITIATED"}}
    assert body == {"data": expected}
    assert without_header == {"data": expected}


@pytest.mark.parametrize("mode", list(MerchantHeader))
async def test_an_hcp_token_reads_its_own_session_and_no_other(
    client: httpx.AsyncClient,
    client_for: ClientFor,
    merchant: MerchantCredentials,
    mode: MerchantHeader,
) -> None:
    """A page's token, even one an attacker got by starting a checkout of their own at the
    merchant, opens that one session: not the merchant's others."""
    own = await create_session(client, merchant.api_key)
    other = await create_session(client, merchant.api_key)
    reader = await client_for(merchant_header=mode)
    headers = {**merchant.read_headers, **_bearer(own["hcpToken"])}

    rest = await reader.get(_path(other), headers=headers)
    body = await graphql(reader, READ_QUERY, {"id": other["id"]}, headers)
    both = await graphql(
        reader,
        "query($a: ID!, $b: ID!) { a: checkoutSession(id: $a) { id } "
        "b: checkoutSession(id: $b) { id } }",
        {"a": own["id"], "b": other["id"]},
        headers,
    )

    assert rest.status_code == 403, rest.text
    assert rest.json()["code"] == "FORBIDDEN"
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["data"] == {"checkoutSession": None}
    assert both["data"] == {"a": {"id": own["id"]}, "b": None}


def _claims(session: dict[str, Any], merchant_id: str, exp: int) -> dict[str, object]:
    return {"sub": session["id"], "mid": merchant_id, "aud": HCP_AUDIENCE, "exp": exp}


@pytest.mark.parametrize(
    ("make_token", "status", "code"),
    [
        pytest.param(
            lambda s, m, o, now: _sign(_claims(s, o.merchant_id, now + 600)),
            403,
            "FORBIDDEN",
            id="another-merchants-token",
        ),
        pytest.param(
            lambda s, m, o, now: _sign(_claims(s, m.merchant_id, now - 1)),
            401,
            "UNAUTHENTICATED",
            id="expired",
        ),
        pytest.param(
            lambda s, m, o, now: _sign(
                _claims(s, m.merchant_id, now + 600), secret="another-secret-" + "z" * 40
            ),
            401,
            "UNAUTHENTICATED",
            id="unknown-key",
        ),
        pytest.param(
            lambda s, m, o, now: _sign({**_claims(s, m.merchant_id, now + 600), "aud": "other"}),
            401,
            "UNAUTHENTICATED",
            id="wrong-audience",
        ),
        pytest.param(
            lambda s, m, o, now: (
                s["hcpToken"][:-2] + ("AA" if s["hcpToken"][-2:] != "AA" else "BB")
            ),
            401,
            "UNAUTHENTICATED",
            id="forged-signature",
        ),
        pytest.param(
            lambda s, m, o, now: _sign({**_claims(s, m.merchant_id, now + 600), "mid": [1]}),
            401,
            "UNAUTHENTICATED",
            id="mid-of-the-wrong-type",
        ),
    ],
)
async def test_a_bad_hcp_token_does_not_read(
    client: httpx.AsyncClient,
    api_key_only: httpx.AsyncClient,
    merchant: MerchantCredentials,
    other_merchant: MerchantCredentials,
    clock: Clock,
    make_token: Callable[..., str],
    status: int,
    code: str,
) -> None:
    session = await create_session(client, merchant.api_key)
    token = make_token(session, merchant, other_merchant, int(clock.now.timestamp()))
    headers = {**merchant.read_headers, **_bearer(token)}

    rest = await api_key_only.get(_path(session), headers=headers)
    body = await graphql(api_key_only, READ_QUERY, {"id": session["id"]}, headers)

    assert (rest.status_code, rest.json()["code"]) == (status, code), rest.text
    assert body["data"] == {"checkoutSession": None}
    assert error_codes(body) == [code]


async def test_an_hcp_token_does_not_write(
    client: httpx.AsyncClient, api_key_only: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    variables = {"input": {"amount": 1000, "currency": "EUR"}}

    for reader in (client, api_key_only):
        body = await graphql(reader, CREATE_MUTATION, variables, _bearer(session["hcpToken"]))
        assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_an_hcp_token_must_be_of_the_merchant_x_merchant_id_names(
    client: httpx.AsyncClient,
    api_key_only: httpx.AsyncClient,
    merchant: MerchantCredentials,
    other_merchant: MerchantCredentials,
) -> None:
    """As with API keys: a credential of one merchant beside another's id is refused, even
    for a session its own merchant could read."""
    session = await create_session(client, other_merchant.api_key)
    headers = {**merchant.read_headers, **_bearer(session["hcpToken"])}

    rest = await api_key_only.get(_path(session), headers=headers)
    body = await graphql(api_key_only, READ_QUERY, {"id": session["id"]}, headers)

    assert (rest.status_code, rest.json()["code"]) == (403, "FORBIDDEN"), rest.text
    assert error_codes(body) == ["FORBIDDEN"]
