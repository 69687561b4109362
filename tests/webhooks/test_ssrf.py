"""SSRF: in production a delivery connects only to public addresses, checked after DNS."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.domain.webhook_urls import is_public_address
from gql_checkout.settings import Environment, Settings
from gql_checkout.storage.migrate import migrate
from gql_checkout.storage.webhook_tables import attempts
from testkit.clock import Clock
from testkit.documents import CANCEL_MUTATION, create_session, graphql
from testkit.merchants import MerchantCredentials
from testkit.receiver import Receiver
from testkit.webhooks import create_endpoint

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),  # noqa: S104 (an address judged, never bound)
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::127.0.0.1", False),
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("::ffff:93.184.215.14", True),
    ],
)
def test_only_global_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


@pytest.fixture
async def production_app(webhook_settings: Settings, clock: Clock) -> AsyncIterator[Starlette]:
    app = create_app(replace(webhook_settings, environment=Environment.PRODUCTION), clock=clock)
    await migrate(app.state.container.engine)
    await app.state.container.start(deliver_webhooks=True)
    yield app
    await app.state.container.stop()


async def test_a_name_resolving_to_loopback_is_refused_at_delivery(
    production_app: Starlette, receiver: Receiver, hook_path: str
) -> None:
    # given: in production, an https endpoint whose host name resolves to 127.0.0.1
    # (accepted at registration: only a delivery's DNS lookup can tell)
    container = production_app.state.container
    merchant, api_key = await container.merchants.create_merchant(name="Prod")
    owner = MerchantCredentials(merchant_id=str(merchant.id), api_key=api_key)
    port = httpx.URL(receiver.base_url).port
    transport = httpx.ASGITransport(app=production_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await create_endpoint(client, api_key, f"https://localhost:{port}{hook_path}")
        session = await create_session(client, api_key)

        # when: an event is delivered
        await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, owner.write_headers)

        # then: the attempt is refused before connecting, recorded, and retried later
        errors: list[str | None] = []
        for _ in range(500):
            async with container.engine.connect() as conn:
                errors = list((await conn.execute(select(attempts.c.error))).scalars())
            if errors:
                break
            await asyncio.sleep(0.02)
    assert errors
    assert "127.0.0.1" in str(errors[0])
    assert "not a public address" in str(errors[0])
    assert receiver.received(hook_path) == []
