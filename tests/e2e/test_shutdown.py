"""SIGTERM: the server closes its subscriptions, answers its held long polls and shuts its
lifespan down."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from testkit.documents import CREATE_MUTATION
from testkit.server import LiveServer, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.server]

SUBSCRIPTION = "subscription($id: ID!) { checkoutSessionUpdated(id: $id) { id } }"


async def test_sigterm_closes_subscriptions_and_exits_cleanly(live_server: LiveServer) -> None:
    merchant = live_server.create_merchant()
    async with httpx.AsyncClient(base_url=live_server.base_url) as client:
        created = await client.post(
            "/graphql",
            json={
                "query": CREATE_MUTATION,
                "variables": {"input": {"amount": 1, "currency": "EUR"}},
            },
            headers=merchant.write_headers,
        )
    session_id = created.json()["data"]["createCheckoutSession"]["id"]
    url = live_server.base_url.replace("http://", "ws://") + "/graphql"
    assert live_server.process is not None

    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"merchantId": merchant.merchant_id}}
        await ws.send(json.dumps(init))
        await ws.recv()
        payload = {"query": SUBSCRIPTION, "variables": {"id": session_id}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        first: dict[str, Any] = json.loads(await ws.recv())

        live_server.process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout=15)

    exit_code = await asyncio.to_thread(live_server.process.wait, 15)
    assert first["type"] == "next"
    # 1012 "service restart": the client should resubscribe, to another replica if need be.
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code in {1001, 1012}
    # uvicorn re-raises the signal once it has shut down, so a supervisor sees SIGTERM.
    assert exit_code in {0, -signal.SIGTERM}
    log = live_server.log_path.read_text() if live_server.log_path else ""
    assert "Application shutdown complete" in log  # the lifespan closed the bus and the pool
    assert "Traceback" not in log


async def test_sigterm_answers_a_held_long_poll_at_once(tmp_path: Path) -> None:
    # A request time limit above the longest wait: the 30 s wait is applied whole.
    extra = {"GQL_CHECKOUT_REQUEST_TIMEOUT_SECONDS": "40"}
    with running_server(tmp_path, extra_env=extra) as server:
        assert server.process is not None
        merchant = server.create_merchant()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            created = await client.post(
                "/graphql",
                json={
                    "query": CREATE_MUTATION,
                    "variables": {"input": {"amount": 1, "currency": "EUR"}},
                },
                headers=merchant.write_headers,
            )
            path = f"/v1/checkout-sessions/{created.json()['data']['createCheckoutSession']['id']}"
            headers = {"X-Merchant-Id": merchant.merchant_id}
            etag = (await client.get(path, headers=headers)).headers["etag"]
            held = asyncio.create_task(
                client.get(path, headers={**headers, "If-None-Match": etag, "Prefer": "wait=30"})
            )
            await asyncio.sleep(1)  # held by then (a hold starts within milliseconds)
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            response = await held
            answered_after = time.monotonic() - signalled
        exit_code = await asyncio.to_thread(server.process.wait, 15)
        log = server.log_path.read_text() if server.log_path else ""

    assert response.status_code == 304
    assert response.headers["preference-applied"] == "wait=30"
    # Not held to the end of its 30 s wait, nor cut off by uvicorn's 10 s graceful timeout.
    assert answered_after < 5
    assert exit_code in {0, -signal.SIGTERM}
    assert "Application shutdown complete" in log
    assert "Cancel" not in log  # uvicorn's "Cancel N running task(s)" after its timeout
    assert "Traceback" not in log
