"""Latency of a change from one replica to a subscriber on another (PostgreSQL NOTIFY).

    .venv/bin/python -m bench.replica_latency [ROUNDS]

Starts a throwaway PostgreSQL cluster and two real `gql-checkout serve` processes, then
for each round creates a session on replica A, subscribes on replica B, completes the
session through A and times the mutation's start to the `next` message on B. Prints
p50/p90/max; as a reference measured in the same run, the round trip of the completing
mutation itself.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from websockets.asyncio.client import connect

from testkit.documents import CARD, COMPLETE_MUTATION, CREATE_MUTATION
from testkit.postgres import postgres_cluster
from testkit.server import LiveServer, running_server

SUBSCRIPTION = (
    "subscription($id: ID!) { checkoutSessionUpdated(id: $id) { checkoutSessionStatus } }"
)


async def _round(
    a: LiveServer, b: LiveServer, merchant_id: str, api_key: str
) -> tuple[float, float]:
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=a.base_url, headers=headers, timeout=10) as client:
        created = await client.post(
            "/graphql",
            json={
                "query": CREATE_MUTATION,
                "variables": {"input": {"amount": 1, "currency": "EUR"}},
            },
        )
        session_id = created.json()["data"]["createCheckoutSession"]["id"]
        url = b.base_url.replace("http://", "ws://") + "/graphql"
        async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"merchantId": merchant_id}})
            )
            await ws.recv()
            payload = {"query": SUBSCRIPTION, "variables": {"id": session_id}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            await ws.recv()  # current state
            started = time.perf_counter()
            mutation = asyncio.create_task(
                client.post(
                    "/graphql",
                    json={
                        "query": COMPLETE_MUTATION,
                        "variables": {"id": session_id, "paymentMethod": CARD},
                    },
                )
            )
            await ws.recv()
            notified = time.perf_counter() - started
            await mutation
            acknowledged = time.perf_counter() - started
    return notified, acknowledged


async def _measure(a: LiveServer, b: LiveServer, rounds: int) -> None:
    merchant = a.create_merchant()
    samples = [await _round(a, b, merchant.merchant_id, merchant.api_key) for _ in range(rounds)]
    notified = sorted(sample[0] * 1000 for sample in samples)
    acked = sorted(sample[1] * 1000 for sample in samples)

    def summary(values: list[float]) -> str:
        p90 = values[int(len(values) * 0.9) - 1]
        return (
            f"p50 {statistics.median(values):6.1f} ms  p90 {p90:6.1f} ms  max {values[-1]:6.1f} ms"
        )

    print(f"rounds: {rounds}")
    print(f"subscriber on replica B notified:  {summary(notified)}")
    print(f"mutation on replica A answered:    {summary(acked)}  (reference)")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    with postgres_cluster() as server, tempfile.TemporaryDirectory() as directory:
        with psycopg.connect(
            server.replace("+asyncpg", "") + "/postgres", autocommit=True
        ) as admin:
            admin.execute("CREATE DATABASE bench")
        root = Path(directory)
        (root / "a").mkdir()
        (root / "b").mkdir()
        url = f"{server}/bench"
        with (
            running_server(root / "a", database_url=url) as a,
            running_server(root / "b", database_url=url) as b,
        ):
            asyncio.run(_measure(a, b, rounds))


if __name__ == "__main__":
    main()
