"""Webhook delivery: throughput of one dispatcher, and commit-to-delivery latency.

    .venv/bin/python -m bench.webhooks [EVENTS] [RATE] [SECONDS]

On a SQLite file, with a real receiver process on loopback (testkit/receiver.py, which
verifies every signature with standardwebhooks):

1. throughput: EVENTS (default 3000) events are recorded first, then one dispatcher
   delivers them; deliveries/s from its start to the receiver's last arrival. The floor,
   measured in the same run: the same number of POSTs of the same body from one httpx
   client, as concurrent as the dispatcher (64), to the same receiver (what the
   receiver and the client alone can do). Paired rounds, medians.
2. latency: transitions at RATE per second (default 200) for SECONDS (default 10) with
   the dispatcher running; from each transition's commit (the service call returning)
   to the receiver's arrival. p50/p99/max.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson

from gql_checkout.app import create_app
from gql_checkout.domain.checkout_sessions import NewCheckoutSession
from gql_checkout.domain.webhooks import WebhookEventType
from gql_checkout.settings import Environment, Settings
from gql_checkout.storage.migrate import migrate
from testkit.merchants import TEST_SECRET
from testkit.receiver import Receiver, running_receiver

ROUNDS = 3
CONCURRENCY = 64
NEW = NewCheckoutSession(
    amount=1000,
    currency="EUR",
    merchant_reference=None,
    expires_in_seconds=3600,
    parent_session_id=None,
    idempotency_key=None,
)


async def _app(directory: Path, receiver: Receiver, path: str) -> tuple[Any, Any]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{directory / 'bench.db'}",
        environment=Environment.DEVELOPMENT,
        hcp_secrets=(TEST_SECRET,),
    )
    settings = replace(settings, webhooks=replace(settings.webhooks, poll_seconds=0.05))
    container = create_app(settings).state.container
    await migrate(container.engine)
    merchant, _key = await container.merchants.create_merchant(name="Bench")
    await container.webhooks.create_endpoint(
        merchant_id=merchant.id,
        url=receiver.url(path),
        events=list(WebhookEventType),
        description=None,
    )
    return container, merchant.id


async def _transition(container: Any, merchant_id: Any) -> str:
    session = await container.checkout.create_checkout_session(merchant_id=merchant_id, request=NEW)
    await container.checkout.cancel_checkout_session(
        merchant_id=merchant_id, checkout_session_id=session.id
    )
    return str(session.id)


async def _wait_count(receiver: Receiver, total: int) -> float:
    async with httpx.AsyncClient() as client:
        # Another process's count: nothing to await but asking again.
        while int((await client.get(receiver.url("/_count"))).json()) < total:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    return time.perf_counter()


async def _throughput(directory: Path, receiver: Receiver, events: int) -> float:
    receiver.reset()
    container, merchant_id = await _app(directory, receiver, "/throughput")
    try:
        for _ in range(events):
            await _transition(container, merchant_id)
        started = time.perf_counter()
        await container.start(deliver_webhooks=True)
        finished = await _wait_count(receiver, events)
        return events / (finished - started)
    finally:
        await container.stop()


async def _floor(receiver: Receiver, events: int) -> float:
    receiver.reset()
    body = orjson.dumps({"type": "checkout_session.canceled", "data": {"x": "y" * 400}})
    headers = {"webhook-id": "msg_x", "webhook-timestamp": "0", "webhook-signature": "v1,x"}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    queue = iter(range(events))
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def worker() -> None:
            for _ in queue:
                await client.post(receiver.url("/floor"), content=body, headers=headers)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return events / (time.perf_counter() - started)


async def _latency(directory: Path, receiver: Receiver, rate: float, seconds: float) -> list[float]:
    receiver.reset()
    container, merchant_id = await _app(directory, receiver, "/latency")
    await container.start(deliver_webhooks=True)
    committed: dict[str, float] = {}
    try:
        interval = 1 / rate
        started = time.perf_counter()
        count = int(rate * seconds)
        for index in range(count):
            delay = started + index * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            session_id = await _transition(container, merchant_id)
            committed[session_id] = time.time()
        await _wait_count(receiver, count)
    finally:
        await container.stop()
    latencies = []
    for delivery in receiver.received("/latency"):
        session_id = orjson.loads(delivery["body"])["data"]["checkoutSession"]["id"]
        latencies.append(delivery["arrived"] - committed[session_id])
    return latencies


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(events: int, rate: float, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, running_receiver(Path(tmp)) as receiver:
        rates, floors = [], []
        for round_ in range(ROUNDS):
            directory = Path(tmp) / f"round-{round_}"
            directory.mkdir()
            floors.append(await _floor(receiver, events))
            rates.append(await _throughput(directory, receiver, events))
            print(f"round {round_}: dispatcher {rates[-1]:.0f}/s, floor {floors[-1]:.0f}/s")
        dispatcher, floor = statistics.median(rates), statistics.median(floors)
        print(
            f"throughput: dispatcher {dispatcher:.0f} deliveries/s, floor (httpx alone) "
            f"{floor:.0f}/s, ratio {dispatcher / floor:.2f}"
        )
        directory = Path(tmp) / "latency"
        directory.mkdir()
        latencies = await _latency(directory, receiver, rate, seconds)
        print(
            f"latency at {rate:.0f} events/s for {seconds:.0f} s ({len(latencies)} events): "
            f"p50 {_quantile(latencies, 0.5) * 1000:.1f} ms, "
            f"p99 {_quantile(latencies, 0.99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    arguments = sys.argv[1:]
    asyncio.run(
        main(
            int(arguments[0]) if arguments else 3000,
            float(arguments[1]) if len(arguments) > 1 else 200.0,
            float(arguments[2]) if len(arguments) > 2 else 10.0,
        )
    )
