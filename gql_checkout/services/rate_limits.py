"""Per-client rate limits on reads and writes, on the `limits` library's sliding windows.

Counters live in process memory: with several replicas each enforces its own share
(docs/operations.md says how to size them). Reads are counted per merchant and client
address (pages poll), writes per merchant (its API key).
"""

from __future__ import annotations

import math
import time
from uuid import UUID

import limits
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from gql_checkout.domain.errors import RateLimited


class RateLimiter:
    def __init__(self, *, reads: str | None, writes: str | None) -> None:
        """``reads``/``writes`` in the library's notation, e.g. "600/minute"; None: no limit."""
        self._reads = limits.parse(reads) if reads else None
        self._writes = limits.parse(writes) if writes else None
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    async def check_read(self, *, merchant_id: UUID, client: str, cost: int = 1) -> None:
        """Counts ``cost`` reads (a GraphQL request's root fields); RateLimited if over."""
        if self._reads is not None and cost > 0:
            await self._hit(self._reads, cost, "read", str(merchant_id), client)

    async def check_write(self, *, merchant_id: UUID, cost: int = 1) -> None:
        """Counts ``cost`` writes; RateLimited if over (and then none of them is counted)."""
        if self._writes is not None and cost > 0:
            await self._hit(self._writes, cost, "write", str(merchant_id))

    async def _hit(self, item: limits.RateLimitItem, cost: int, *identifiers: str) -> None:
        if await self._limiter.hit(item, *identifiers, cost=cost):
            return
        stats = await self._limiter.get_window_stats(item, *identifiers)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(retry_after, f"Rate limit of {item} exceeded; retry in {retry_after} s.")
