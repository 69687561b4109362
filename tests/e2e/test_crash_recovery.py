"""Acknowledged writes survive a server killed in the middle of writing.

Several clients create sessions (roots, children, some with idempotency keys) and
complete, fail or cancel them as fast as the server answers; every answer without errors
goes into a ledger (testkit/ledger.py). Then the server's process group gets SIGKILL -- no
shutdown, no draining, requests cut off mid-flight -- and a new server starts on the same
database. Every acknowledged write must be there in its acknowledged state. A write whose
answer never came may have happened or not, but never halfway: the rows must satisfy
section 8's propagation rules (and, on SQLite, its own integrity check). On PostgreSQL
only the server dies; the database server keeps running.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import httpx
import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import create_async_engine

from gql_checkout.storage.tables import CheckoutSessionRow
from testkit.documents import CREATE_MUTATION, graphql
from testkit.ledger import Findings, Ledger, check_database, verify
from testkit.load import (
    KEEPALIVE_S,
    NO_RATE_LIMITS,
    REQUEST_TIMEOUT_S,
    WRITES_ONLY,
    Load,
    Stats,
)
from testkit.merchants import MerchantCredentials
from testkit.server import LiveServer, running_server

pytestmark = [pytest.mark.server]

WRITERS = 8
# The kill comes once the load has run this long and this much was acknowledged...
LOAD_AT_LEAST_S = 1.5
ACKNOWLEDGED_AT_LEAST = 60
# ...and at the latest after this long.
LOAD_AT_MOST_S = 8.0
TICK_S = 0.02
# Losing a write's answer is what a crash does; anything else is an error even here.
CRASH_ERRORS = frozenset({"transport", "timeout"})


@dataclass
class Crash:
    ledger: Ledger
    stats: Stats
    keys: list[tuple[str, dict[str, Any], str]]  # idempotency key, its input, its session
    in_flight: int  # requests sent and not answered when the server died
    errors_before_kill: Counter[str]
    exit_status: int


def test_acknowledged_writes_survive_a_killed_server(tmp_path: Path, database_url: str) -> None:
    # given: a server taking writes from several clients, killed while they write
    with running_server(tmp_path, database_url=database_url, extra_env=NO_RATE_LIMITS) as first:
        merchant = first.create_merchant("Crash")
        crash = asyncio.run(_write_until_killed(first, merchant))

    assert crash.exit_status == -signal.SIGKILL
    assert crash.in_flight > 0, "the kill must cut writes off mid-flight"
    assert crash.ledger.creates + crash.ledger.transitions >= ACKNOWLEDGED_AT_LEAST
    assert crash.errors_before_kill == Counter(), crash.stats.samples
    assert set(crash.stats.errors) <= CRASH_ERRORS, crash.stats.samples

    # when: a new server starts on the same database
    with running_server(tmp_path, database_url=database_url, extra_env=NO_RATE_LIMITS) as second:
        findings, replayed = asyncio.run(_read_back(second, merchant, crash))

    # then: every acknowledged write is there, as acknowledged
    assert findings.lost_creates == []
    assert findings.lost_transitions == []
    assert findings.unreadable == []
    assert findings.broken_invariants == []
    assert replayed == {key: session_id for key, _input, session_id in crash.keys}
    # and the rows hold no half-applied transaction
    assert asyncio.run(check_database(database_url)) == []
    stored = asyncio.run(_count_sessions(database_url, merchant_id=UUID(merchant.merchant_id)))
    ledger = crash.ledger
    assert ledger.creates <= stored <= ledger.creates + ledger.uncertain_creates


async def _write_until_killed(server: LiveServer, merchant: MerchantCredentials) -> Crash:
    limits = httpx.Limits(max_connections=2 * WRITERS, keepalive_expiry=KEEPALIVE_S)
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=REQUEST_TIMEOUT_S, limits=limits
    ) as client:
        load = Load(
            client,
            merchant=merchant,
            rng=random.Random(1),  # noqa: S311 (picks actions, not secrets)
            mix=WRITES_ONLY,
        )
        ledger, stats = load.ledger, load.stats
        writing = asyncio.create_task(
            load.run(seconds=LOAD_AT_MOST_S, concurrency=WRITERS, subscribers=0)
        )
        started = time.monotonic()
        for _tick in range(int(LOAD_AT_MOST_S / TICK_S)):
            loaded = time.monotonic() - started >= LOAD_AT_LEAST_S
            if writing.done() or (
                loaded and ledger.creates + ledger.transitions >= ACKNOWLEDGED_AT_LEAST
            ):
                break
            await asyncio.sleep(TICK_S)
        # Blocking on purpose: no answer is taken in between, so what is in flight now is
        # exactly what the kill cuts off.
        in_flight, errors_before_kill = load.in_flight, Counter(stats.errors)
        exit_status = server.kill()
        load.stop()
        await writing
    return Crash(
        ledger=ledger,
        stats=stats,
        keys=load.keys,
        in_flight=in_flight,
        errors_before_kill=errors_before_kill,
        exit_status=exit_status,
    )


async def _read_back(
    server: LiveServer, merchant: MerchantCredentials, crash: Crash
) -> tuple[Findings, dict[str, str]]:
    """The ledger checked through the new server; each idempotency key replayed."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=REQUEST_TIMEOUT_S) as client:
        findings, _stored = await verify(
            client, merchant_id=merchant.merchant_id, ledger=crash.ledger
        )
        replayed: dict[str, str] = {}
        for key, variables, _session_id in crash.keys:
            body = await graphql(
                client, CREATE_MUTATION, {"input": variables}, merchant.write_headers
            )
            replayed[key] = body["data"]["createCheckoutSession"]["id"]
    return findings, replayed


async def _count_sessions(database_url: str, *, merchant_id: UUID) -> int:
    table = cast(Table, CheckoutSessionRow.__table__)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            query = select(func.count()).where(table.c.merchant_id == merchant_id)
            return int(await conn.scalar(query) or 0)
    finally:
        await engine.dispose()
