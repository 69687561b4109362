"""Held subscriptions cost a real server a bounded amount of memory each.

A page keeps its socket open for as long as it shows the checkout, and one worker holds
thousands (bench.connections measures 10,000). Here, 600 pages: ~20.5 KiB each with
compiled subscriptions on `serve`'s websocket protocol; ~34 KiB with Strawberry running each
subscription (GQL_CHECKOUT_COMPILED_QUERIES=off); ~100 KiB more with the browsers'
permessage-deflate offer accepted. The bound catches a return of any of them, not a KiB.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from testkit.documents import create_session
from testkit.server import rss_kib, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.server]

SUBSCRIPTIONS = 600
SESSIONS = 30
KIB_PER_SUBSCRIPTION = 28
SUBSCRIPTION = """
subscription Watch($id: ID!) { checkoutSessionUpdated(id: $id) { id checkoutSessionStatus } }
"""


async def _subscribe(ws: ClientConnection, merchant_id: str, session_id: str) -> None:
    await ws.send(json.dumps({"type": "connection_init", "payload": {"merchantId": merchant_id}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    payload = {"query": SUBSCRIPTION, "variables": {"id": session_id}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    assert json.loads(await ws.recv())["type"] == "next"


async def test_held_subscriptions_cost_a_bounded_amount_of_memory_each(tmp_path: Path) -> None:
    # given: a real server, sessions to watch, and a warmed-up first batch of pages
    with running_server(tmp_path) as server:
        assert server.process is not None
        merchant = server.create_merchant()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            ids = [(await create_session(client, merchant.api_key))["id"] for _ in range(SESSIONS)]
        url = server.base_url.replace("http", "ws") + "/graphql"
        async with AsyncExitStack() as pages:

            async def open_pages(count: int) -> None:
                sockets = [
                    await pages.enter_async_context(
                        connect(
                            url,
                            subprotocols=[Subprotocol("graphql-transport-ws")],
                            compression="deflate",  # as browsers offer it
                            ping_interval=None,
                        )
                    )
                    for _ in range(count)
                ]
                await asyncio.gather(
                    *(
                        _subscribe(ws, merchant.merchant_id, ids[n % SESSIONS])
                        for n, ws in enumerate(sockets)
                    )
                )

            await open_pages(SUBSCRIPTIONS // 4)
            before = rss_kib(server.process.pid)

            # when: many more pages subscribe and wait
            await open_pages(SUBSCRIPTIONS)
            await asyncio.sleep(0.5)
            held = rss_kib(server.process.pid)

    # then: each costs the server a bounded amount
    per_subscription = (held - before) / SUBSCRIPTIONS
    assert per_subscription < KIB_PER_SUBSCRIPTION, f"{per_subscription:.1f} KiB each"
