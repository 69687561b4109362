"""deploy/nginx.conf in a real nginx: the hcpToken gate (auth_request) and the proxied paths.

The shipped file is rendered with this test's ports (only the three lines marked "test:"
change), in front of a real `gql-checkout serve` and a small echo server that stands in
for the hosted checkout page backend and answers with the headers it received.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from testkit.documents import (
    CANCEL_MUTATION,
    CARD,
    COMPLETE_MUTATION,
    FAIL_MUTATION,
    create_session,
)
from testkit.documents import graphql as graphql_request
from testkit.merchants import TEST_SECRET, MerchantCredentials
from testkit.server import LiveServer, running_server
from tests.nginx import EchoBackend, find_nginx, running_echo_backend, running_nginx

pytestmark = [pytest.mark.nginx, pytest.mark.server, pytest.mark.anyio]

OTHER_SECRET = "another-deployment-secret-" + "z" * 40
METRICS_TOKEN = "metrics-token-" + "m" * 20
HCP_AUDIENCE = "gql-checkout:hcp"
WS_TIMEOUT_S = 10.0

SUBSCRIPTION = """
subscription Watch($id: ID!) {
  checkoutSessionUpdated(id: $id) { id checkoutSessionStatus }
}
"""


@dataclass(frozen=True)
class Stack:
    nginx: str
    server: LiveServer
    backend: EchoBackend
    merchant: MerchantCredentials


@pytest.fixture
def nginx_binary() -> str:
    """Resolved before the other processes start, so a skip costs nothing."""
    found = find_nginx()
    if found is None:
        reason = "nginx is not installed (apt-get install nginx; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the nginx tests")
        pytest.skip(reason)
    return found


@pytest.fixture
def hcp_backend() -> Iterator[EchoBackend]:
    with running_echo_backend() as backend:
        yield backend


@pytest.fixture
def stack(
    nginx_binary: str, live_server: LiveServer, hcp_backend: EchoBackend, tmp_path: Path
) -> Iterator[Stack]:
    nginx_dir = tmp_path / "nginx"
    nginx_dir.mkdir()
    gateway = live_server.base_url.removeprefix("http://")
    with running_nginx(
        nginx_binary, nginx_dir, gateway=gateway, hcp_backend=f"127.0.0.1:{hcp_backend.port}"
    ) as nginx:
        yield Stack(
            nginx=nginx,
            server=live_server,
            backend=hcp_backend,
            merchant=live_server.create_merchant("Acme"),
        )


@pytest.fixture
def strict_stack(nginx_binary: str, hcp_backend: EchoBackend, tmp_path: Path) -> Iterator[Stack]:
    """As ``stack``, with a gateway that trusts no bare X-Merchant-Id and guards /metrics."""
    server_dir = tmp_path / "strict-server"
    nginx_dir = tmp_path / "strict-nginx"
    server_dir.mkdir()
    nginx_dir.mkdir()
    extra_env = {
        "GQL_CHECKOUT_MERCHANT_HEADER": "api-key-only",
        "GQL_CHECKOUT_METRICS_TOKEN": METRICS_TOKEN,
    }
    with (
        running_server(server_dir, extra_env=extra_env) as server,
        running_nginx(
            nginx_binary,
            nginx_dir,
            gateway=server.base_url.removeprefix("http://"),
            hcp_backend=f"127.0.0.1:{hcp_backend.port}",
        ) as nginx,
    ):
        yield Stack(
            nginx=nginx,
            server=server,
            backend=hcp_backend,
            merchant=server.create_merchant("Acme"),
        )


@pytest.fixture
async def nginx_client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A client of nginx, not of the gateway: every request here goes through the config."""
    async with httpx.AsyncClient(base_url=stack.nginx, timeout=10.0) as client:
        yield client


# --- tokens --------------------------------------------------------------------------------------


def _sign(
    session: dict[str, Any],
    merchant_id: str,
    *,
    exp: int,
    secret: str = TEST_SECRET,
    kid_secret: str = TEST_SECRET,
) -> str:
    """An hcpToken laid out as gql_checkout/tokens.py lays it out."""
    claims = {"sub": session["id"], "mid": merchant_id, "aud": HCP_AUDIENCE, "exp": exp}
    kid = hashlib.sha256(kid_secret.encode()).hexdigest()[:12]
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _header_values(seen: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in seen["headers"] if key.lower() == name.lower()]


# --- tests ---------------------------------------------------------------------------------------


async def test_a_valid_token_reaches_the_backend_with_the_sessions_ids(
    stack: Stack, nginx_client: httpx.AsyncClient
) -> None:
    # given
    session = await create_session(nginx_client, stack.merchant.api_key)
    spoofed = "00000000-0000-4000-8000-000000000000"

    # when
    response = await nginx_client.get(
        "/hcp/pay?step=1",
        headers={
            **_bearer(session["hcpToken"]),
            "X-Merchant-Id": spoofed,
            "X-Checkout-Session-Id": spoofed,
            "X-Request-Id": "req-abc.1",
        },
    )

    # then
    assert response.status_code == 200, response.text
    seen = response.json()
    assert (seen["method"], seen["path"]) == ("GET", "/hcp/pay?step=1")
    assert _header_values(seen, "X-Checkout-Session-Id") == [session["id"]]
    assert _header_values(seen, "X-Merchant-Id") == [stack.merchant.merchant_id]
    assert _header_values(seen, "X-Request-Id") == ["req-abc.1"]
    # The token nginx verified, passed on: the backend's credential when it reads.
    assert _header_values(seen, "Authorization") == [f"Bearer {session['hcpToken']}"]
    assert stack.backend.received == [seen]


@pytest.mark.parametrize(
    "spoofed",
    [
        {"X-Merchant-Id": "00000000-0000-4000-8000-000000000000"},
        {"x-merchant-id": "00000000-0000-4000-8000-000000000000"},
        {"X-Merchant-Id": ""},
    ],
    ids=["other-merchant", "lower-case", "empty"],
)
async def test_a_client_x_merchant_id_never_reaches_the_backend(
    stack: Stack, nginx_client: httpx.AsyncClient, spoofed: dict[str, str]
) -> None:
    session = await create_session(nginx_client, stack.merchant.api_key)

    response = await nginx_client.get(
        "/hcp/pay", headers={**_bearer(session["hcpToken"]), **spoofed}
    )

    assert response.status_code == 200, response.text
    assert _header_values(response.json(), "X-Merchant-Id") == [stack.merchant.merchant_id]


async def test_in_api_key_only_mode_the_backend_reads_with_what_nginx_passed_on(
    strict_stack: Stack,
) -> None:
    """GQL_CHECKOUT_MERCHANT_HEADER=api-key-only behind this nginx: a bare X-Merchant-Id
    reads nothing, and the HCP backend reads its session with the headers nginx gave it."""
    merchant = strict_stack.merchant
    async with (
        httpx.AsyncClient(base_url=strict_stack.nginx, timeout=10.0) as edge,
        httpx.AsyncClient(base_url=strict_stack.server.base_url, timeout=10.0) as backend,
    ):
        session = await create_session(edge, merchant.api_key)
        path = f"/v1/checkout-sessions/{session['id']}"
        bare = await edge.get(path, headers=merchant.read_headers)
        spoofed = "00000000-0000-4000-8000-000000000000"
        page = await edge.get(
            "/hcp/pay", headers={**_bearer(session["hcpToken"]), "X-Merchant-Id": spoofed}
        )
        seen = page.json()
        # What the HCP backend does: read from the gateway with the headers it was given.
        forwarded = {
            name: value
            for name, value in seen["headers"]
            if name.lower() in {"x-merchant-id", "authorization"}
        }
        backend_read = await backend.get(path, headers=forwarded)
        # A client claiming another merchant beside its own token is refused at the edge.
        claimed = await edge.get(
            path, headers={**_bearer(session["hcpToken"]), "X-Merchant-Id": spoofed}
        )
        open_metrics = await backend.get("/metrics")
        metrics = await backend.get("/metrics", headers=_bearer(METRICS_TOKEN))

    assert (bare.status_code, bare.json()["code"]) == (401, "UNAUTHENTICATED")
    assert page.status_code == 200, page.text
    assert backend_read.status_code == 200, backend_read.text
    assert backend_read.json()["data"]["checkoutSession"]["id"] == session["id"]
    assert (claimed.status_code, claimed.json()["code"]) == (403, "FORBIDDEN")
    assert (open_metrics.status_code, open_metrics.json()["code"]) == (401, "UNAUTHENTICATED")
    assert metrics.status_code == 200
    assert "gql_checkout_http_requests_total" in metrics.text


async def test_nginx_supplies_a_request_id_when_the_client_sends_none(
    stack: Stack, nginx_client: httpx.AsyncClient
) -> None:
    session = await create_session(nginx_client, stack.merchant.api_key)

    response = await nginx_client.get("/hcp/", headers=_bearer(session["hcpToken"]))

    assert response.status_code == 200, response.text
    [request_id] = _header_values(response.json(), "X-Request-Id")
    assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id


TokenFactory = Callable[[httpx.AsyncClient, MerchantCredentials], Awaitable[dict[str, str]]]


async def _no_token(_client: httpx.AsyncClient, _merchant: MerchantCredentials) -> dict[str, str]:
    return {}


async def _not_bearer(_client: httpx.AsyncClient, _merchant: MerchantCredentials) -> dict[str, str]:
    return {"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"}


async def _forged_signature(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> dict[str, str]:
    header, payload, signature = (await create_session(client, merchant.api_key))["hcpToken"].split(
        "."
    )
    forged = ("B" if signature[0] == "A" else "A") + signature[1:]
    return _bearer(f"{header}.{payload}.{forged}")


async def _claims_of_another_session(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> dict[str, str]:
    header, _, signature = (await create_session(client, merchant.api_key))["hcpToken"].split(".")
    _, other_payload, _ = (await create_session(client, merchant.api_key))["hcpToken"].split(".")
    return _bearer(f"{header}.{other_payload}.{signature}")


async def _other_secret_same_kid(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> dict[str, str]:
    session = await create_session(client, merchant.api_key)
    exp = int(time.time()) + 600
    return _bearer(_sign(session, merchant.merchant_id, exp=exp, secret=OTHER_SECRET))


async def _other_secret_own_kid(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> dict[str, str]:
    session = await create_session(client, merchant.api_key)
    exp = int(time.time()) + 600
    token = _sign(
        session, merchant.merchant_id, exp=exp, secret=OTHER_SECRET, kid_secret=OTHER_SECRET
    )
    return _bearer(token)


async def _unknown_session(
    _client: httpx.AsyncClient, merchant: MerchantCredentials
) -> dict[str, str]:
    session = {"id": "11111111-1111-4111-8111-111111111111"}
    return _bearer(_sign(session, merchant.merchant_id, exp=int(time.time()) + 600))


@pytest.mark.parametrize(
    "make_headers",
    [
        _no_token,
        _not_bearer,
        _forged_signature,
        _claims_of_another_session,
        _other_secret_same_kid,
        _other_secret_own_kid,
        _unknown_session,
    ],
    ids=lambda factory: factory.__name__.strip("_"),
)
async def test_nginx_refuses_a_bad_token_without_reaching_the_backend(
    stack: Stack, nginx_client: httpx.AsyncClient, make_headers: TokenFactory
) -> None:
    headers = await make_headers(nginx_client, stack.merchant)

    response = await nginx_client.get("/hcp/pay", headers=headers)

    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert stack.backend.received == []


@pytest.mark.parametrize(
    "close",
    [CANCEL_MUTATION, COMPLETE_MUTATION, FAIL_MUTATION],
    ids=["canceled", "completed", "failed"],
)
async def test_a_token_stops_working_once_its_session_is_closed(
    stack: Stack, nginx_client: httpx.AsyncClient, close: str
) -> None:
    # given: a token that works while its session is open
    session = await create_session(nginx_client, stack.merchant.api_key)
    assert (
        await nginx_client.get("/hcp/", headers=_bearer(session["hcpToken"]))
    ).status_code == 200
    variables: dict[str, Any] = {"id": session["id"]}
    if close == COMPLETE_MUTATION:
        variables["paymentMethod"] = CARD

    # when
    body = await graphql_request(nginx_client, close, variables, stack.merchant.write_headers)

    # then
    assert "errors" not in body, body
    response = await nginx_client.get("/hcp/", headers=_bearer(session["hcpToken"]))
    assert response.status_code == 401, response.text
    assert len(stack.backend.received) == 1


async def test_an_expired_token_is_refused(stack: Stack, nginx_client: httpx.AsyncClient) -> None:
    # given: tokens laid out as the gateway signs them, for an open session
    session = await create_session(nginx_client, stack.merchant.api_key)
    now = int(time.time())
    current = _sign(session, stack.merchant.merchant_id, exp=now + 600)
    expired = _sign(session, stack.merchant.merchant_id, exp=now - 60)
    assert (await nginx_client.get("/hcp/", headers=_bearer(current))).status_code == 200

    # when
    response = await nginx_client.get("/hcp/", headers=_bearer(expired))

    # then
    assert response.status_code == 401, response.text
    assert len(stack.backend.received) == 1


async def test_the_rest_shim_and_graphql_are_proxied_and_the_auth_endpoint_is_not(
    stack: Stack, nginx_client: httpx.AsyncClient
) -> None:
    session = await create_session(nginx_client, stack.merchant.api_key)

    rest = await nginx_client.get(
        f"/v1/checkout-sessions/{session['id']}",
        headers={**stack.merchant.read_headers, "X-Request-Id": "rest-req-1"},
    )
    auth_from_outside = await nginx_client.get("/v1/hcp/auth", headers=_bearer(session["hcpToken"]))
    elsewhere = await nginx_client.get("/admin")

    assert rest.status_code == 200, rest.text
    assert rest.headers["X-Request-Id"] == "rest-req-1"
    assert rest.json()["data"]["checkoutSession"]["id"] == session["id"]
    assert rest.json()["data"]["hcpToken"] == session["hcpToken"]
    assert auth_from_outside.status_code == 404
    assert elsewhere.status_code == 404
    assert stack.backend.received == []


async def test_subscriptions_are_upgraded_to_websockets_through_nginx(
    stack: Stack, nginx_client: httpx.AsyncClient
) -> None:
    # given
    session = await create_session(nginx_client, stack.merchant.api_key)
    url = stack.nginx.replace("http://", "ws://") + "/graphql"
    messages: list[Any] = []

    with anyio.fail_after(WS_TIMEOUT_S):
        async with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
            await ws.send(
                json.dumps(
                    {
                        "type": "connection_init",
                        "payload": {"merchantId": stack.merchant.merchant_id},
                    }
                )
            )
            assert json.loads(await ws.recv()) == {"type": "connection_ack"}
            await ws.send(
                json.dumps(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {"query": SUBSCRIPTION, "variables": {"id": session["id"]}},
                    }
                )
            )
            messages.append(json.loads(await ws.recv()))

            # when
            body = await graphql_request(
                nginx_client,
                COMPLETE_MUTATION,
                {"id": session["id"], "paymentMethod": CARD},
                stack.merchant.write_headers,
            )
            assert "errors" not in body, body
            messages.append(json.loads(await ws.recv()))
            messages.append(json.loads(await ws.recv()))

    # then
    assert messages == [
        {
            "id": "1",
            "type": "next",
            "payload": {
                "data": {
                    "checkoutSessionUpdated": {
                        "id": session["id"],
                        "checkoutSessionStatus": status,
                    }
                }
            },
        }
        for status in ("INITIATED", "COMPLETED")
    ] + [{"id": "1", "type": "complete"}]
