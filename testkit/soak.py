"""Soak: a bounded mixed load against a real server, then proof that no write was lost.

    .venv/bin/python -m bench.soak [--seconds N] [--database sqlite|postgresql]
                                 [--concurrency C] [--subscribers S] [--seed N]

Starts a real `gql-checkout serve` (on a SQLite file, or on a throwaway PostgreSQL
cluster), creates a merchant, and for N seconds runs C workers that poll (REST and
GraphQL), create sessions (some with idempotency keys, which are also replayed and
reused with another input; some children of open parents) and complete, fail or cancel
them, racing each other for the newest sessions; S more each hold one subscription at a
time until its session closes (the load: testkit/load.py). Every acknowledged write goes
into a ledger (testkit/ledger.py); at the end every recorded session is read back and
compared with it, and the rows are checked for half-applied transactions. The server
runs with its rate limits off: one client and one merchant make all of this load.

Exits 1 if a write was lost, an invariant broke, or any 5xx, transport error, timeout or
unexpected error code was seen (expected refusals, such as INVALID_STATE_TRANSITION for
the loser of a race, are counted apart). Bounded: every request has a timeout, workers
start nothing after the deadline, and everything listens on loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg

from testkit.ledger import Findings, Ledger, Stored, check_database, verify
from testkit.load import (
    ERROR_CATEGORIES,
    KEEPALIVE_S,
    NO_RATE_LIMITS,
    REQUEST_TIMEOUT_S,
    Kind,
    Load,
    Stats,
)
from testkit.merchants import MerchantCredentials
from testkit.postgres import postgres_cluster
from testkit.server import LiveServer, running_server

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass
class SoakResult:
    database: str
    seconds: float
    concurrency: int
    subscribers: int
    seed: int
    stats: Stats
    ledger: Ledger
    findings: Findings
    database_problems: list[str]
    server_log_errors: list[str]

    @property
    def ok(self) -> bool:
        return (
            self.findings.ok
            and not self.stats.errors
            and not self.database_problems
            and not self.server_log_errors
        )

    def report(self) -> str:
        stats, findings, ledger = self.stats, self.findings, self.ledger
        elapsed = max(stats.elapsed, 1e-9)
        total = sum(stats.requests.values())
        lines = [
            f"database {self.database}; {self.concurrency} workers + {self.subscribers} "
            f"subscribers; seed {self.seed}; load for {self.seconds:g} s; rate limits off",
            f"duration {elapsed:.1f} s (until the last request answered); "
            f"requests {total}, {total / elapsed:.0f}/s",
            "",
            f"{'kind':<14} {'requests':>9} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}",
        ]
        for kind in Kind:
            count = stats.requests[kind]
            if not count:
                continue
            latencies = sorted(stats.latencies[kind])
            lines.append(
                f"{kind.value:<14} {count:>9} {count / elapsed:>8.1f} "
                f"{_percentile(latencies, 0.50):>8.1f} {_percentile(latencies, 0.99):>8.1f} "
                f"{_percentile(latencies, 1.0):>8.1f}"
            )
        lines += [
            "",
            f"errors: {stats.errors.total()} ("
            + ", ".join(
                f"{category} {stats.errors[category]}"
                for category in dict.fromkeys([*ERROR_CATEGORIES, *stats.errors])
            )
            + ")",
            f"expected refusals: {stats.refusals.total()}"
            + (f" ({_counts(stats.refusals)})" if stats.refusals else ""),
            f"subscriptions: {stats.subscriptions} started, {stats.subscriptions_completed} "
            f"completed, {stats.subscription_messages} messages",
            f"acknowledged writes: {ledger.creates} creates, {ledger.transitions} transitions "
            f"(unanswered: {ledger.uncertain_creates} creates, "
            f"{ledger.uncertain_transitions} transitions)",
            f"verification: {findings.sessions_read} sessions read back; "
            f"lost creates {len(findings.lost_creates)}, "
            f"lost transitions {len(findings.lost_transitions)}, "
            f"broken invariants {len(findings.broken_invariants)}, "
            f"unreadable {len(findings.unreadable)}",
            f"database rows: {len(self.database_problems)} problems; "
            f"server log: {len(self.server_log_errors)} error lines",
        ]
        details = (
            stats.samples
            + findings.details()
            + [f"database: {problem}" for problem in self.database_problems[:10]]
            + [f"server log: {line}" for line in self.server_log_errors[:10]]
        )
        if details:
            lines += ["", *details]
        lines += ["", f"result: {'PASS' if self.ok else 'FAIL'}"]
        return "\n".join(lines)


def _percentile(sorted_seconds: list[float], share: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    if not sorted_seconds:
        return math.nan
    rank = max(1, math.ceil(share * len(sorted_seconds)))
    return sorted_seconds[rank - 1] * 1000


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {count}" for key, count in counter.most_common())


def _require_loopback(base_url: str) -> None:
    host = urlsplit(base_url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"the soak only runs against loopback addresses, not {host}")


async def soak(
    server: LiveServer,
    merchant: MerchantCredentials,
    *,
    seconds: float,
    concurrency: int,
    subscribers: int,
    seed: int,
) -> tuple[Stats, Ledger, Findings, list[str]]:
    """Runs the load against a running server, then reads everything back."""
    _require_loopback(server.base_url)
    # Twice the workers: a keyed create sends its two requests at once.
    connections = 2 * (concurrency + subscribers)
    limits = httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=KEEPALIVE_S,
    )
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=REQUEST_TIMEOUT_S, limits=limits
    ) as client:
        load = Load(client, merchant=merchant, rng=random.Random(seed))
        ledger, stats = load.ledger, load.stats
        started = time.perf_counter()
        await load.run(seconds=seconds, concurrency=concurrency, subscribers=subscribers)
        stats.elapsed = time.perf_counter() - started
        findings, stored = await verify(client, merchant_id=merchant.merchant_id, ledger=ledger)
    findings.broken_invariants += _subscription_mismatches(stats.watched, stored)
    database_problems = await check_database(server.database_url)
    return stats, ledger, findings, database_problems


def _subscription_mismatches(watched: dict[str, str], stored: dict[str, Stored]) -> list[str]:
    return [
        f"{session_id}: its subscription ended with {status}, stored {stored[session_id].status}"
        for session_id, status in watched.items()
        if session_id in stored and stored[session_id].status != status
    ]


_LOG_ERROR = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback")


def server_log_errors(server: LiveServer) -> list[str]:
    """The server's error records (an ERROR line, a traceback), each summed up in a line."""
    if server.log_path is None or not server.log_path.exists():
        return []
    text = server.log_path.read_text(errors="replace")
    return [_summary(line) for line in text.splitlines() if _LOG_ERROR.search(line)]


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\b.*", re.MULTILINE)


def _summary(line: str) -> str:
    """A JSON log record as its request id, message and the (last) exception raised."""
    try:
        record = json.loads(line)
    except ValueError:
        return line[:300]
    if not isinstance(record, dict):
        return line[:300]
    exceptions = [
        match.group(0) for match in _EXCEPTION_LINE.finditer(str(record.get("exc_info") or ""))
    ]
    cause = f": {exceptions[-1][:300]}" if exceptions else ""
    return f"[{record.get('request_id')}] {record.get('message')}{cause}"


def run_soak(
    *,
    seconds: float = 60,
    database: str = "sqlite",
    concurrency: int = 32,
    subscribers: int = 2,
    seed: int = 1,
    workers: int = 1,
) -> SoakResult:
    """Starts the server (and PostgreSQL), soaks it, and stops everything again."""
    with (
        tempfile.TemporaryDirectory(prefix="gqlc-soak-") as directory,
        contextlib.ExitStack() as stack,
    ):
        database_url = None
        if database == "postgresql":
            cluster = stack.enter_context(postgres_cluster())
            admin_url = cluster.replace("+asyncpg", "") + "/postgres"
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute("CREATE DATABASE soak")
            database_url = f"{cluster}/soak"
        server = stack.enter_context(
            running_server(
                Path(directory),
                database_url=database_url,
                workers=workers,
                extra_env=NO_RATE_LIMITS,
            )
        )
        merchant = server.create_merchant("Soak")
        stats, ledger, findings, database_problems = asyncio.run(
            soak(
                server,
                merchant,
                seconds=seconds,
                concurrency=concurrency,
                subscribers=subscribers,
                seed=seed,
            )
        )
        log_errors = server_log_errors(server)
    return SoakResult(
        database=database,
        seconds=seconds,
        concurrency=concurrency,
        subscribers=subscribers,
        seed=seed,
        stats=stats,
        ledger=ledger,
        findings=findings,
        database_problems=database_problems,
        server_log_errors=log_errors,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--subscribers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    args = parser.parse_args(argv)
    command = " ".join(["python -m bench.soak", *(sys.argv[1:] if argv is None else argv)])
    print(
        f"# {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} on {len(os.sched_getaffinity(0))} cores "
        f"(nproc), {platform.machine()}; command: .venv/bin/{command}",
        flush=True,
    )
    result = run_soak(
        seconds=args.seconds,
        database=args.database,
        concurrency=args.concurrency,
        subscribers=args.subscribers,
        seed=args.seed,
        workers=args.workers,
    )
    print(result.report(), flush=True)
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
