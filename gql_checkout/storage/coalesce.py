"""Concurrent lookups by key share one query, with one query in flight at a time.

Under load, requests arriving while a query runs wait for the next one, which then
fetches all their keys in one ``IN (...)``; with a fetch that never waits (SQLite's, on
the event loop) those are the requests of one loop iteration. Every caller still gets a
read that started after it asked, so nothing stale is served: this batches, it never
caches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_KEYS_PER_QUERY = 500  # well under SQLite's bound-parameter limit


class Coalescer(Generic[K, V]):
    def __init__(
        self,
        fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]],
        *,
        related: Callable[[V], K | None] = lambda _value: None,
    ) -> None:
        """``fetch`` returns what it found; it may add ``related`` values (a session's
        child) that each caller then receives alongside its own keys."""
        self._fetch = fetch
        self._related = related
        self._waiting: list[tuple[Collection[K], asyncio.Future[dict[K, V]]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def get_many(self, keys: Collection[K]) -> dict[K, V]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[K, V]] = loop.create_future()
        self._waiting.append((keys, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._take_batch()
                keys = list({key for wanted, _ in batch for key in wanted})
                try:
                    found = await self._fetch(keys)
                except Exception as error:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for wanted, future in batch:
                    if not future.done():
                        future.set_result(self._share(found, wanted))
        finally:
            self._drainer = None

    def _take_batch(self) -> list[tuple[Collection[K], asyncio.Future[dict[K, V]]]]:
        taken, size = 0, 0
        for wanted, _ in self._waiting:
            if taken and size + len(wanted) > MAX_KEYS_PER_QUERY:
                break
            taken, size = taken + 1, size + len(wanted)
        batch, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return batch

    def _share(self, found: Mapping[K, V], wanted: Collection[K]) -> dict[K, V]:
        share: dict[K, V] = {}
        for key in wanted:
            value = found.get(key)
            if value is None:
                continue
            share[key] = value
            related_key = self._related(value)
            if related_key is not None and related_key in found:
                share[related_key] = found[related_key]
        return share
