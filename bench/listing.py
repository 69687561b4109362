"""A filtered page of 20 with 1,000,000 sessions next to the same page with 10,000.

    .venv/bin/python -m bench.listing [--small 10000] [--large 1000000] [--merchants 5]
                                      [--rounds 9] [--pages 200]

Seeds two migrated SQLite files (bulk ``executemany``, the server's own storage format:
tests/storage/test_listing.py holds the statement to a brute-force model, this only
times it): sessions of ``--merchants`` merchants spread over 90 days, in every state,
three to an order reference, one in ten a child. Then, for each page kind below, each
round times ``--pages`` pages on both files (their median) through
``CheckoutService.list_checkout_sessions`` (the statement, the row mapping, the page),
one file right after the other, the order alternating from round to round; the ratio
large / small of each round compares two runs a moment apart, and the median of the
rounds is printed. The first lists of each file are not timed (connection, page cache).

The floor is the same page on the small file: a ratio of 1.0 is "the page costs what it
costs with 10,000 sessions". The target is within 1.2 (issue 18).

Prints every round and the medians, and writes them to bench/results/listing-<UTC>.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gql_checkout.domain.checkout_sessions import CheckoutSessionStatus
from gql_checkout.domain.listing import PageRequest, Position, SessionFilter
from gql_checkout.services.checkout_sessions import CheckoutService
from gql_checkout.services.hcp_tokens import HcpTokens
from gql_checkout.storage.engine import create_engine
from gql_checkout.storage.migrate import migrate
from gql_checkout.storage.reads import create_reads
from gql_checkout.storage.writes import create_writes

NOW = datetime(2026, 4, 1, 12, 0, 0, tzinfo=UTC)
_STORED = "%Y-%m-%d %H:%M:%S.%f"  # how UTCDateTime stores a time on SQLite
_STATUSES = ["INITIATED"] * 4 + ["COMPLETED"] * 4 + ["FAILED", "CANCELED"]
RESULTS = Path(__file__).parent / "results"


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.listing")
    parser.add_argument("--small", type=int, default=10_000, help="sessions in the small file")
    parser.add_argument("--large", type=int, default=1_000_000, help="sessions in the large file")
    parser.add_argument("--merchants", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=9, help="paired rounds")
    parser.add_argument("--pages", type=int, default=200, help="pages timed per run")
    return parser.parse_args(argv)


async def _seed(path: Path, sessions: int, merchants: list[uuid.UUID]) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    await engine.dispose()
    rng = random.Random(18)
    rows: list[tuple[object, ...]] = []
    parents: dict[uuid.UUID, str] = {}
    span = timedelta(days=90).total_seconds()
    # Oldest first, as they would have been created.
    offsets = sorted((rng.random() * span for _ in range(sessions)), reverse=True)
    for index, offset in enumerate(offsets):
        merchant = merchants[index % len(merchants)]
        created = (NOW - timedelta(seconds=int(offset))).strftime(_STORED)
        expires = (NOW - timedelta(seconds=int(offset) - 3600)).strftime(_STORED)
        session_id = uuid.UUID(int=rng.getrandbits(128), version=4).hex
        parent = parents.get(merchant) if index % 10 == 0 else None
        rows.append(
            (
                session_id,
                merchant.hex,
                rng.choice(_STATUSES),
                f"order-{index // 3}",
                created,
                expires,
                created,
                parent,
            )
        )
        if parent is None and index % 10 == 5:
            parents[merchant] = session_id
    rows.sort()  # by id: the table is its primary key's B-tree (WITHOUT ROWID)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        # A throwaway file: no journal, no fsync, a cache that holds the indexes being built.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-1048576")
        with conn:
            conn.executemany(
                "INSERT INTO merchants (id, name, api_key_hash, appearance, card_categories,"
                " created_at) VALUES (?, ?, ?, '{}', '[]', ?)",
                [(m.hex, m.hex, m.hex * 2, NOW.strftime(_STORED)) for m in merchants],
            )
            conn.executemany(
                "INSERT INTO checkout_sessions (id, merchant_id, status, amount, currency,"
                " merchant_reference, created_at, expires_at, updated_at, version, parent_id)"
                " VALUES (?, ?, ?, 1000, 'EUR', ?, ?, ?, ?, 1, ?)",
                rows,
            )
        conn.execute("ANALYZE")
        conn.execute("PRAGMA journal_mode=WAL")  # as the server runs it


def _kinds(merchant: uuid.UUID, service: CheckoutService) -> dict[str, PageRequest]:
    """The pages timed: the same requests on both files."""
    middle = Position(NOW - timedelta(days=45), uuid.UUID(int=0))
    failed = frozenset({CheckoutSessionStatus.FAILED})
    return {
        "newest": PageRequest(first=20, after=None, filter=SessionFilter()),
        "status FAILED": PageRequest(first=20, after=None, filter=SessionFilter(statuses=failed)),
        "FAILED+CANCELED": PageRequest(
            first=20,
            after=None,
            filter=SessionFilter(
                statuses=frozenset({CheckoutSessionStatus.FAILED, CheckoutSessionStatus.CANCELED})
            ),
        ),
        "isExpired": PageRequest(first=20, after=None, filter=SessionFilter(is_expired=True)),
        "reference": PageRequest(
            first=20, after=None, filter=SessionFilter(merchant_reference="order-30")
        ),
        "created window": PageRequest(
            first=20,
            after=None,
            filter=SessionFilter(
                created_after=NOW - timedelta(days=30), created_before=NOW - timedelta(days=29)
            ),
        ),
        "deep page (day 45)": PageRequest(first=20, after=middle, filter=SessionFilter()),
    }


class _File:
    def __init__(self, path: Path) -> None:
        self.engine = create_engine(f"sqlite+aiosqlite:///{path}")
        self.reads = create_reads(self.engine)
        self.service = CheckoutService(
            engine=self.engine,
            tokens=HcpTokens(("bench-secret-" + "x" * 40,)),
            clock=lambda: NOW,
            reads=self.reads,
            writes=create_writes(self.engine),
        )

    async def time(self, merchant: uuid.UUID, request: PageRequest, pages: int) -> float:
        """The median page: a page the scheduler interrupted (a shared machine) is an
        outlier, not the cost of a page."""
        times = []
        for _ in range(pages):
            started = time.perf_counter()
            await self.service.list_checkout_sessions(merchant_id=merchant, request=request)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    async def close(self) -> None:
        self.reads.close()
        await self.engine.dispose()


async def _bench(args: argparse.Namespace, out: list[str]) -> None:
    merchants = [uuid.UUID(int=n + 1, version=4) for n in range(args.merchants)]
    merchant = merchants[0]
    with tempfile.TemporaryDirectory(prefix="gql-checkout-listing-") as directory:
        small_path, large_path = Path(directory, "small.db"), Path(directory, "large.db")
        for path, count in ((small_path, args.small), (large_path, args.large)):
            started = time.perf_counter()
            await _seed(path, count, merchants)
            out.append(f"seeded {count:,} sessions in {time.perf_counter() - started:.1f} s")
            print(out[-1], flush=True)
        small, large = _File(small_path), _File(large_path)
        try:
            kinds = _kinds(merchant, small.service)
            for request in kinds.values():  # warm-up, untimed
                await small.time(merchant, request, 3)
                await large.time(merchant, request, 3)
            for name, request in kinds.items():
                page = await large.service.list_checkout_sessions(
                    merchant_id=merchant, request=request
                )
                ratios, small_times, large_times = [], [], []
                for round_ in range(args.rounds):
                    order = (small, large) if round_ % 2 == 0 else (large, small)
                    timed = {id(f): await f.time(merchant, request, args.pages) for f in order}
                    small_times.append(timed[id(small)])
                    large_times.append(timed[id(large)])
                    ratios.append(timed[id(large)] / timed[id(small)])
                small_us = statistics.median(small_times) * 1e6
                large_us = statistics.median(large_times) * 1e6
                line = (
                    f"{name:20} rows {len(page.sessions):2}  small {small_us:7.1f} µs"
                    f"  large {large_us:7.1f} µs"
                    f"  ratio median {statistics.median(ratios):.3f}"
                    f"  (rounds {' '.join(f'{r:.2f}' for r in ratios)})"
                )
                out.append(line)
                print(line, flush=True)
        finally:
            await small.close()
            await large.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    out = [
        f"bench.listing {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}: small {args.small:,}, "
        f"large {args.large:,}, {args.merchants} merchants, {args.rounds} rounds of "
        f"{args.pages} pages of 20"
    ]
    print(out[0], flush=True)
    asyncio.run(_bench(args, out))
    RESULTS.mkdir(exist_ok=True)
    result = RESULTS / f"listing-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.txt"
    result.write_text("\n".join(out) + "\n")
    print(f"written to {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
