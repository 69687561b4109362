"""hcpTokens and GET /v1/hcp/auth (nginx auth_request), in process."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from uuid import UUID

import httpx
import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.services.hcp_tokens import HcpTokens
from gql_checkout.settings import Settings
from gql_checkout.storage.tables import CheckoutSessionRow
from testkit.clock import Clock
from testkit.documents import CANCEL_MUTATION, CARD, COMPLETE_MUTATION, create_session, graphql
from testkit.merchants import TEST_SECRET, MerchantCredentials

pytestmark = pytest.mark.anyio

ROTATED_SECRET = "rotated-secret-" + "y" * 40


async def _auth(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/v1/hcp/auth", headers={"Authorization": f"Bearer {token}"})


def _sign(claims: dict[str, object], secret: str = TEST_SECRET) -> str:
    kid = hashlib.sha256(secret.encode()).hexdigest()[:12]
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})


async def test_a_valid_token_names_its_session_and_merchant(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)

    response = await _auth(client, session["hcpToken"])

    assert response.status_code == 204
    assert response.headers["X-Checkout-Session-Id"] == session["id"]
    assert response.headers["X-Merchant-Id"] == merchant.merchant_id
    assert response.content == b""


async def test_the_token_is_the_same_on_every_read(
    client: httpx.AsyncClient, merchant: MerchantCredentials, clock: Clock
) -> None:
    session = await create_session(client, merchant.api_key)
    clock.advance(seconds=10)

    first = await client.get(
        f"/v1/checkout-sessions/{session['id']}", headers=merchant.read_headers
    )
    second = await client.get(
        f"/v1/checkout-sessions/{session['id']}", headers=merchant.read_headers
    )

    assert first.json()["data"]["hcpToken"] == session["hcpToken"]
    assert second.json()["data"]["hcpToken"] == session["hcpToken"]
    assert first.headers["ETag"] == second.headers["ETag"]


@pytest.mark.parametrize("document", [CANCEL_MUTATION, COMPLETE_MUTATION])
async def test_a_token_stops_working_when_its_session_closes(
    client: httpx.AsyncClient, merchant: MerchantCredentials, document: str
) -> None:
    session = await create_session(client, merchant.api_key)
    variables = {"id": session["id"], "paymentMethod": CARD}
    variables = variables if document is COMPLETE_MUTATION else {"id": session["id"]}
    await graphql(client, document, variables, merchant.write_headers)

    response = await _auth(client, session["hcpToken"])

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_token_stops_working_when_its_session_expires(
    client: httpx.AsyncClient, merchant: MerchantCredentials, clock: Clock
) -> None:
    session = await create_session(client, merchant.api_key, expiresInSeconds=60)
    clock.advance(seconds=59)
    assert (await _auth(client, session["hcpToken"])).status_code == 204

    clock.advance(seconds=1)

    assert (await _auth(client, session["hcpToken"])).status_code == 401


async def test_a_token_past_its_exp_claim_is_refused(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    past = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp())
    expired = _sign(
        {"sub": session["id"], "mid": merchant.merchant_id, "aud": "gql-checkout:hcp", "exp": past}
    )

    response = await _auth(client, expired)

    assert response.status_code == 401
    assert response.json()["detail"] == "The hcpToken has expired."


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda token: token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB"),
            id="forged-signature",
        ),
        pytest.param(lambda token: "not-a-token", id="garbage"),
        pytest.param(lambda token: "", id="empty"),
    ],
)
async def test_forged_tokens_are_refused(
    client: httpx.AsyncClient, merchant: MerchantCredentials, tamper: object
) -> None:
    session = await create_session(client, merchant.api_key)
    assert callable(tamper)

    response = await client.get(
        "/v1/hcp/auth", headers={"Authorization": f"Bearer {tamper(session['hcpToken'])}"}
    )

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"


async def test_a_token_signed_with_an_unknown_secret_is_refused(
    client: httpx.AsyncClient, merchant: MerchantCredentials, clock: Clock
) -> None:
    session = await create_session(client, merchant.api_key)
    exp = int(clock.now.timestamp()) + 600
    claims = {
        "sub": session["id"],
        "mid": merchant.merchant_id,
        "aud": "gql-checkout:hcp",
        "exp": exp,
    }

    unknown_key = await _auth(client, _sign(claims, secret="another-secret-" + "z" * 40))
    # The right kid with the wrong key must not pass either.
    kid = hashlib.sha256(TEST_SECRET.encode()).hexdigest()[:12]
    wrong_key = jwt.encode(claims, "z" * 48, algorithm="HS256", headers={"kid": kid})

    assert unknown_key.status_code == 401
    assert (await _auth(client, wrong_key)).status_code == 401


async def test_a_token_for_another_merchants_session_is_refused(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    other_merchant: MerchantCredentials,
    clock: Clock,
) -> None:
    session = await create_session(client, merchant.api_key)
    exp = int(clock.now.timestamp()) + 600
    token = _sign(
        {
            "sub": session["id"],
            "mid": other_merchant.merchant_id,
            "aud": "gql-checkout:hcp",
            "exp": exp,
        }
    )

    assert (await _auth(client, token)).status_code == 401


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"mid": ["a list"]}, id="mid-list"),
        pytest.param({"mid": {"id": "x"}}, id="mid-object"),
        pytest.param({"mid": 42}, id="mid-number"),
        pytest.param({"mid": True}, id="mid-boolean"),
        pytest.param({"sub": ["a list"]}, id="sub-list"),
        pytest.param({"exp": "tomorrow"}, id="exp-string"),
    ],
)
async def test_a_signed_claim_of_the_wrong_type_is_unauthenticated_not_a_crash(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    clock: Clock,
    claims: dict[str, object],
) -> None:
    """Signed with the real key, so only the claim's type is wrong (UUID([...]) raised
    AttributeError: a 500)."""
    session = await create_session(client, merchant.api_key)
    exp = int(clock.now.timestamp()) + 600
    token = _sign(
        {"sub": session["id"], "mid": merchant.merchant_id, "aud": "gql-checkout:hcp", "exp": exp}
        | claims
    )

    auth = await _auth(client, token)
    read = await client.get(
        f"/v1/checkout-sessions/{session['id']}",
        headers={**merchant.read_headers, "Authorization": f"Bearer {token}"},
    )

    for response in (auth, read):
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "UNAUTHENTICATED"
        assert response.headers["content-type"] == "application/problem+json"


async def test_no_token_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/hcp/auth")

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"


async def test_rotation_keeps_old_tokens_working(
    app: Starlette,
    settings: Settings,
    clock: Clock,
    merchant: MerchantCredentials,
    client: httpx.AsyncClient,
) -> None:
    session = await create_session(client, merchant.api_key)
    rotated = create_app(
        Settings(
            database_url=settings.database_url,
            environment=settings.environment,
            hcp_secrets=(ROTATED_SECRET, TEST_SECRET),
        ),
        clock=clock,
    )
    transport = httpx.ASGITransport(app=rotated)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as rotated_client:
            old_token = await _auth(rotated_client, session["hcpToken"])
            read = await rotated_client.get(
                f"/v1/checkout-sessions/{session['id']}", headers=merchant.read_headers
            )
            new_token = read.json()["data"]["hcpToken"]
            new_token_works = await _auth(rotated_client, new_token)
    finally:
        await rotated.state.container.stop()

    assert old_token.status_code == 204
    assert new_token != session["hcpToken"]
    assert new_token_works.status_code == 204
    # The old deployment (old secret only) does not know the new key.
    assert (await _auth(client, new_token)).status_code == 401


async def _stored_token(app: Starlette, session_id: str) -> str | None:
    engine: AsyncEngine = app.state.container.engine
    async with engine.connect() as conn:
        return await conn.scalar(
            select(CheckoutSessionRow.hcp_token).where(CheckoutSessionRow.id == UUID(session_id))
        )


async def test_a_session_stores_the_token_it_answers(
    app: Starlette, client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    child_of = await create_session(client, merchant.api_key)
    session = await create_session(client, merchant.api_key, parentSessionId=child_of["id"])

    read = await client.get(f"/v1/checkout-sessions/{session['id']}", headers=merchant.read_headers)

    stored = await _stored_token(app, session["id"])
    assert stored is not None
    assert stored == session["hcpToken"] == read.json()["data"]["hcpToken"]
    assert (await _auth(client, stored)).status_code == 204


async def test_a_session_stored_without_a_token_is_answered_the_same_one_signed(
    app: Starlette, client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    """Rows made before migration 0003 hold no token: reads sign it, in the same bytes."""
    session = await create_session(client, merchant.api_key)
    async with app.state.container.engine.begin() as conn:
        await conn.execute(
            update(CheckoutSessionRow)
            .where(CheckoutSessionRow.id == UUID(session["id"]))
            .values(hcp_token=None)
        )

    read = await client.get(f"/v1/checkout-sessions/{session['id']}", headers=merchant.read_headers)

    assert await _stored_token(app, session["id"]) is None
    assert read.json()["data"]["hcpToken"] == session["hcpToken"]


@given(
    checkout_session_id=st.uuids(),
    merchant_id=st.uuids(),
    expires_at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    secret=st.sampled_from([TEST_SECRET, ROTATED_SECRET, "ü-secret-" + "z" * 40]),
)
def test_tokens_are_the_bytes_pyjwt_would_sign(
    checkout_session_id: UUID, merchant_id: UUID, expires_at: datetime, secret: str
) -> None:
    signed = HcpTokens((secret,)).sign(
        checkout_session_id=checkout_session_id, merchant_id=merchant_id, expires_at=expires_at
    )

    claims = {
        "sub": str(checkout_session_id),
        "mid": str(merchant_id),
        "aud": "gql-checkout:hcp",
        "exp": math.ceil(expires_at.timestamp()),
    }
    assert signed == _sign(claims, secret)
