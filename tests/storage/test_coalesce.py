"""Concurrent lookups share queries, and never see a read that started before they asked."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gql_checkout.storage.coalesce import Coalescer
from testkit.documents import create_session
from testkit.merchants import MerchantCredentials
from tests.conftest import StatementCounter

pytestmark = pytest.mark.anyio


class Store:
    """A tiny keyed store whose fetches are recorded and can be held open."""

    def __init__(self) -> None:
        self.values = {"a": 1, "b": 2, "c": 3}
        self.fetches: list[list[str]] = []
        self.release = asyncio.Event()
        self.fetching = asyncio.Event()

    async def fetch(self, keys: list[str]) -> dict[str, int]:
        self.fetches.append(sorted(keys))
        self.fetching.set()
        snapshot = {key: self.values[key] for key in keys if key in self.values}
        await self.release.wait()
        return snapshot


async def test_callers_waiting_together_share_one_fetch() -> None:
    store = Store()
    coalescer: Coalescer[str, int] = Coalescer(store.fetch)
    store.release.set()

    results = await asyncio.gather(
        coalescer.get_many(["a"]), coalescer.get_many(["b", "c"]), coalescer.get_many(["x"])
    )

    assert list(results) == [{"a": 1}, {"b": 2, "c": 3}, {}]
    assert store.fetches == [["a", "b", "c", "x"]]


async def test_a_caller_arriving_mid_fetch_gets_a_fresh_read() -> None:
    store = Store()
    coalescer: Coalescer[str, int] = Coalescer(store.fetch)
    first = asyncio.create_task(coalescer.get_many(["a"]))
    await store.fetching.wait()  # the first fetch is in flight, holding a = 1

    store.values["a"] = 10  # a write commits while that fetch runs
    second = asyncio.create_task(coalescer.get_many(["a"]))
    await asyncio.sleep(0)
    store.release.set()

    assert await first == {"a": 1}
    assert await second == {"a": 10}
    assert store.fetches == [["a"], ["a"]]


async def test_a_failed_fetch_fails_its_callers_only() -> None:
    calls = 0

    async def flaky(keys: list[str]) -> dict[str, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database went away")
        return dict.fromkeys(keys, 7)

    coalescer: Coalescer[str, int] = Coalescer(flaky)
    with pytest.raises(ConnectionError):
        await coalescer.get_many(["a"])

    assert await coalescer.get_many(["a"]) == {"a": 7}


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    store = Store()
    coalescer: Coalescer[str, int] = Coalescer(store.fetch)
    leaving = asyncio.create_task(coalescer.get_many(["a"]))
    staying = asyncio.create_task(coalescer.get_many(["b"]))
    await asyncio.sleep(0)

    leaving.cancel()
    store.release.set()

    assert await staying == {"b": 2}
    with pytest.raises(asyncio.CancelledError):
        await leaving


# On an SQLite file the statement runs on the loop itself (gql_checkout/sqlite_reads.py):
# the requests of one loop iteration share it.
async def test_concurrent_rest_reads_share_statements(
    client: httpx.AsyncClient, merchant: MerchantCredentials, statements: StatementCounter
) -> None:
    sessions = [await create_session(client, merchant.api_key) for _ in range(20)]
    statements.reset()

    responses = await asyncio.gather(
        *(
            client.get(f"/v1/checkout-sessions/{session['id']}", headers=merchant.read_headers)
            for session in sessions
        )
    )

    assert [response.status_code for response in responses] == [200] * 20
    assert [r.json()["data"]["checkoutSession"]["id"] for r in responses] == [
        session["id"] for session in sessions
    ]
    assert statements.count < 20, statements.count
