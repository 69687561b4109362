"""Write throughput and latency of gql_checkout next to the store's own floor.

    .venv/bin/python -m bench.writes [--rounds 3] [--duration 8] [--warmup 2]
        [--stores sqlite,postgresql] [--writers 16,64] [--env development|production]
        [--webhook]

Per store: one `gql-checkout serve --workers 1` (rate limits off; GQL_CHECKOUT_ENV as given,
development by default) on a SQLite file in a temporary directory, or on a throwaway
PostgreSQL cluster (testkit.postgres: fsync=off, full_page_writes=off, so no commit waits
for a disk; synchronous_commit=on for the bench database). A merchant from `gql-checkout
merchants create`; on SQLite, bench.perf.probe_storage checks that rows are stored the way
the seed writes them. Open sessions (24 h expiry, hcpTokens signed with the server's key)
are seeded into the table (sqlite3 executemany / asyncpg COPY). Then, each round, for each
`--writers` N, in an order rotated every round, `--warmup` s discarded + `--duration` s:

- `create`: wrk -t2 -cN posts `createCheckoutSession` (1999 EUR) with the API key;
- `cancel`: wrk -t2 -cN posts `cancelCheckoutSession` with the next unused seeded id (each
  wrk thread has its own slice, each wrk run fresh ids): every cancel is a real transition;
- `cancel+webhook` (with `--webhook`): the same cancels by a second merchant that has one
  webhook endpoint subscribed to every event, on a real receiver process on loopback
  (testkit/receiver.py, which verifies each signature): each cancel also writes its event
  and delivery rows, and the server's dispatcher sends them while the load runs. At the
  end, the deliveries the receiver got are counted against the cancels wrk saw answered;
- the floor, in this process, no HTTP: the same session INSERT into the same table through
  the driver, N rows in flight. SQLite (one write lock per file: one connection; WAL and
  synchronous=FULL as storage/engine.py sets them): `floor-commit` commits each insert,
  `floor-batch` N inserts (executemany) at a time. PostgreSQL (an asyncpg pool):
  `floor-commit`, N connections each sending INSERTs that are their own transaction;
  `floor-batch`, one executemany of N rows per transaction, one at a time.

Errors: socket errors, non-2xx answers and 2xx bodies with GraphQL `errors` (the first few
bodies of each wrk run are printed). Each table row is the round with the median rate
(req/s; rows/s for floors, whose p50/p99 are per commit), with the server's CPU time per
request (/proc) and the ratios to the floors: the median over rounds of the ratio within a
round (create and floor paired). Output also goes to bench/results/writes-<UTC time>.txt;
every process and temporary directory is cleaned up at the end, on errors and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psycopg

from bench import perf
from gql_checkout.services.hcp_tokens import HcpTokens
from testkit.postgres import postgres_cluster
from testkit.receiver import Receiver, running_receiver
from testkit.server import free_port, gql_checkout_executable

CREATE_MUTATION = (
    "mutation($input: CreateCheckoutSessionInput!) { createCheckoutSession(input: $input)"
    " { id checkoutSessionStatus } }"
)
CANCEL_MUTATION = (
    "mutation($id: ID!) { cancelCheckoutSession(id: $id) { id checkoutSessionStatus } }"
)
_ID = "__SESSION_ID__"
BODIES = {
    "create": json.dumps(
        {"query": CREATE_MUTATION, "variables": {"input": {"amount": 1999, "currency": "EUR"}}}
    ),
    "cancel": json.dumps({"query": CANCEL_MUTATION, "variables": {"id": _ID}}),
}
SCENARIOS = ("create", "cancel", "floor-commit", "floor-batch")
WEBHOOK_PATH = "/bench"
HOOKED = "cancel+webhook"  # cancels by a merchant with a webhook endpoint (--webhook)
BODIES[HOOKED] = BODIES["cancel"]
ALL_EVENTS = ["CHECKOUT_SESSION_COMPLETED", "CHECKOUT_SESSION_FAILED"]
ALL_EVENTS += ["CHECKOUT_SESSION_CANCELED", "CHECKOUT_SESSION_EXPIRED"]
CREATE_ENDPOINT = (
    "mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input)"
    " { secret } }"
)
THREADS = 2  # wrk -t
SEED_RATE = 2500  # open sessions seeded per second of cancel load (running out is reported)
COLUMNS = (
    "id", "merchant_id", "status", "amount", "currency", "merchant_reference", "created_at",
    "expires_at", "updated_at", "version", "hcp_token",
)  # fmt: skip
_INSERT = f"INSERT INTO checkout_sessions ({', '.join(COLUMNS)}) VALUES "  # noqa: S608 (constants)
SQLITE_INSERT = _INSERT + "(" + ", ".join("?" * len(COLUMNS)) + ")"
PG_INSERT = _INSERT + "(" + ", ".join(f"${n}" for n in range(1, len(COLUMNS) + 1)) + ")"
TOKENS = HcpTokens((perf.HCP_SECRET,))

Row = tuple[object, ...]


@dataclass(frozen=True)
class Store:
    kind: str  # sqlite | postgresql
    path: Path | None  # the SQLite file
    dsn: str | None  # asyncpg's URL of the PostgreSQL database

    def row_maker(self, merchant: uuid.UUID, expiry: datetime) -> Callable[[uuid.UUID, str], Row]:
        """Session rows as the repository stores them, from an id and an hcpToken."""
        now = datetime.now(UTC).replace(microsecond=0)  # stored times are whole seconds
        if self.path is None:
            fixed: Row = (merchant, "INITIATED", 1999, "EUR", None, now, expiry, now, 1)
            return lambda session_id, token: (session_id, *fixed, token)
        # SQLite: ids as 32 hex digits, naive UTC text (what perf.probe_storage checks).
        times = (perf._stored_time(now), perf._stored_time(expiry), perf._stored_time(now))
        fixed = (merchant.hex, "INITIATED", 1999, "EUR", None, *times, 1)
        return lambda session_id, token: (session_id.hex, *fixed, token)


@dataclass(frozen=True)
class Result:
    scenario: str
    writers: int
    round: int
    rate: float  # req/s, or rows/s for the floors
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float | None  # server CPU time per request


# --- seeding and the floor ----------------------------------------------------------------


def seed(store: Store, merchant_id: str, count: int) -> list[str]:
    """``count`` open sessions written straight into the table; their ids."""
    merchant = uuid.UUID(merchant_id)
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=24)
    make = store.row_maker(merchant, expiry)
    ids = [uuid.uuid4() for _ in range(count)]
    sign = TOKENS.sign
    rows = [
        make(i, sign(checkout_session_id=i, merchant_id=merchant, expires_at=expiry)) for i in ids
    ]
    if store.path is not None:
        with contextlib.closing(sqlite3.connect(store.path, timeout=30)) as conn, conn:
            conn.executemany(SQLITE_INSERT, rows)
    else:

        async def copy() -> None:
            conn = await asyncpg.connect(store.dsn)
            try:
                await conn.copy_records_to_table("checkout_sessions", records=rows, columns=COLUMNS)
                await conn.execute("ANALYZE checkout_sessions")
            finally:
                await conn.close()

        asyncio.run(copy())
    return [str(i) for i in ids]


Timings = tuple[float, list[float]]  # seconds taken, seconds per commit


def measure_floor(
    store: Store, merchant_id: str, scenario: str, writers: int, shape: perf.LoadShape, round_: int
) -> Result:
    """The same INSERT through the driver, ``writers`` rows in flight, no HTTP."""
    merchant, expiry = uuid.UUID(merchant_id), datetime.now(UTC) + timedelta(hours=24)
    make = store.row_maker(merchant, expiry)
    # A real token's length; the floor's rows are never read.
    token = TOKENS.sign(checkout_session_id=uuid.uuid4(), merchant_id=merchant, expires_at=expiry)
    batch = writers if scenario == "floor-batch" else 1  # `writers` rows in flight either way

    def rows() -> list[Row]:
        return [make(uuid.uuid4(), token) for _ in range(batch)]

    if store.path is not None:
        seconds, latencies = _sqlite_floor(store.path, rows, shape)
    else:
        tasks = writers if batch == 1 else 1
        seconds, latencies = asyncio.run(_postgres_floor(store, rows, tasks, shape))
    ordered = sorted(latencies) or [float("nan")]
    p50, p99 = (ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3 for q in (0.5, 0.99))
    rate = len(latencies) * batch / seconds
    return Result(scenario, writers, round_, rate, p50, p99, 0, None)


def _sqlite_floor(path: Path, rows: Callable[[], list[Row]], shape: perf.LoadShape) -> Timings:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=30)) as conn:
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            conn.execute(f"PRAGMA {pragma}")  # as gql_checkout/storage/engine.py sets them

        def run(seconds: float) -> Timings:
            latencies: list[float] = []
            start = now = time.perf_counter()
            while now < start + seconds:
                batch = rows()
                began = time.perf_counter()
                conn.execute("BEGIN")
                conn.executemany(SQLITE_INSERT, batch)
                conn.execute("COMMIT")
                now = time.perf_counter()
                latencies.append(now - began)
            return now - start, latencies

        run(shape.warmup)
        return run(shape.duration)


async def _postgres_floor(
    store: Store, rows: Callable[[], list[Row]], tasks: int, shape: perf.LoadShape
) -> Timings:
    pool = await asyncpg.create_pool(store.dsn, min_size=tasks, max_size=tasks)

    async def worker(deadline: float, latencies: list[float]) -> None:
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:
                batch = rows()
                began = time.perf_counter()
                if len(batch) == 1:  # one statement is its own transaction: one round trip
                    await conn.execute(PG_INSERT, *batch[0])
                else:
                    async with conn.transaction():
                        await conn.executemany(PG_INSERT, batch)
                latencies.append(time.perf_counter() - began)

    async def run(seconds: float) -> Timings:
        latencies: list[float] = []
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + seconds, latencies) for _ in range(tasks)))
        return time.perf_counter() - start, latencies

    try:
        await run(shape.warmup)
        return await run(shape.duration)
    finally:
        await pool.close()


# --- HTTP load ----------------------------------------------------------------------------


def _lua(value: str) -> str:
    return json.dumps(value)  # JSON string escapes of ASCII text are valid Lua escapes


def lua_script(body: str, api_key: str, ids_file: Path, errors_file: Path) -> str:
    """Posts ``body`` with _ID replaced by the thread's next unused id (a wrk thread takes
    every THREADS-th line of ``ids_file``); records up to 3 error bodies per thread."""
    prefix, _, suffix = body.partition(_ID)
    return f"""
wrk.method = "POST"
wrk.path = "/graphql"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = {_lua("Bearer " + api_key)}
local threads, next_thread = {{}}, 1
function setup(thread)
  thread:set("thread_number", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end
ids, used = {{}}, 0
function init(args)
  non_2xx, graphql_errors, exhausted, logged = 0, 0, 0, 0
  local n = 0
  for line in io.lines({_lua(str(ids_file))}) do
    n = n + 1
    if n % {THREADS} == thread_number - 1 then ids[#ids + 1] = line end
  end
end
function request()
  used = used + 1
  if used > #ids then exhausted, used = exhausted + 1, 1 end
  return wrk.format(nil, nil, nil, {_lua(prefix)} .. ids[used] .. {_lua(suffix)})
end
function response(status, headers, body)
  if status < 200 or status > 299 then non_2xx = non_2xx + 1
  elseif string.find(body, '"errors"', 1, true) then graphql_errors = graphql_errors + 1
  else return end
  if logged < 3 then
    logged = logged + 1
    local file = io.open({_lua(str(errors_file))}, "a")
    file:write(status .. " " .. (string.gsub(body, "\\n", " ")):sub(1, 300) .. "\\n")
    file:close()
  end
end
function done(summary, latency, requests)
  local bad, gql, out = 0, 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non_2xx")
    gql = gql + thread:get("graphql_errors")
    out = out + thread:get("exhausted")
  end
  local e = summary.errors
  io.write(string.format('{perf.RESULT_MARKER}{{"requests":%d,"duration_us":%d,"p50_us":%d,' ..
    '"p99_us":%d,"sockets":%d,"non_2xx":%d,"graphql_errors":%d,"exhausted":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, bad, gql, out))
end
"""


@dataclass
class Load:
    wrk: str
    server: perf.Server
    directory: Path
    keys: dict[str, str]  # the API key each scenario writes with
    ids: dict[str, list[str]]  # per cancel scenario, seeded open sessions not handed out yet
    report: perf.Report
    answered: Counter[str] = field(default_factory=Counter)  # 2xx without errors, warm-ups too

    def run(self, scenario: str, writers: int, shape: perf.LoadShape, round_: int) -> Result:
        if shape.warmup > 0:
            self._wrk(scenario, writers, shape.warmup)
        cpu = self.server.cpu_seconds()
        raw = self._wrk(scenario, writers, shape.duration)
        cpu, requests = self.server.cpu_seconds() - cpu, int(raw["requests"])
        errors = _errors(raw)
        rate, cpu_us = requests * 1e6 / raw["duration_us"], cpu * 1e6 / max(requests, 1)
        p50, p99 = raw["p50_us"] / 1e3, raw["p99_us"] / 1e3
        return Result(scenario, writers, round_, rate, p50, p99, errors, cpu_us)

    def _wrk(self, scenario: str, writers: int, seconds: int) -> dict[str, Any]:
        ids_file = self.directory / "ids.txt"
        if scenario in self.ids:  # a fresh slice of open sessions for every wrk run
            ids, cut = self.ids[scenario], seconds * SEED_RATE
            taken, self.ids[scenario] = ids[:cut], ids[cut:]
            ids_file.write_text("\n".join(taken) + "\n")
        else:
            ids_file.write_text("\n" * THREADS)  # an empty id per thread: the body has none
        script, errors_file = self.directory / "load.lua", self.directory / "errors.txt"
        script.write_text(lua_script(BODIES[scenario], self.keys[scenario], ids_file, errors_file))
        shape = perf.LoadShape(THREADS, writers, 0, 0)
        raw = perf.run_wrk(self.wrk, self.server, script, shape, seconds)
        self.answered[scenario] += int(raw["requests"]) - _errors(raw)
        if errors_file.exists():
            for line in errors_file.read_text(errors="replace").splitlines():
                self.report(f"      error ({scenario}, {writers} writers): {line}")
            errors_file.unlink()
        if raw["exhausted"] and scenario in self.ids:
            self.report(f"      {raw['exhausted']} cancels found no unused id: raise SEED_RATE")
        return raw


def _errors(raw: dict[str, Any]) -> int:
    return int(raw["sockets"]) + int(raw["non_2xx"]) + int(raw["graphql_errors"])


def subscribe(server: perf.Server, api_key: str, receiver: Receiver) -> None:
    """One webhook endpoint for the merchant, on ``receiver``, for every event."""
    response = httpx.post(
        f"{server.base_url}/graphql",
        json={
            "query": CREATE_ENDPOINT,
            "variables": {"input": {"url": receiver.url(WEBHOOK_PATH), "events": ALL_EVENTS}},
        },
        headers={"Authorization": f"Bearer {api_key}"},
    )
    if not response.is_success or '"errors"' in response.text:
        raise perf.BenchError(f"webhook endpoint: {response.status_code} {response.text[:500]}")
    receiver.trust(WEBHOOK_PATH, response.json()["data"]["createWebhookEndpoint"]["secret"])


def delivered(receiver: Receiver, answered: int, report: perf.Report) -> None:
    """Waits until the receiver has a delivery for every answered cancel (or 60 s pass)."""
    started = time.monotonic()
    found = receiver.wait_for(WEBHOOK_PATH, answered, timeout=60)
    verified = sum(1 for delivery in found if delivery["verifiedWith"])
    ids = {delivery["webhookId"] for delivery in found}
    report(
        f"webhooks:    {len(found)} deliveries ({verified} verified, {len(ids)} distinct "
        f"webhook-ids) for the {answered} cancels wrk saw answered, the last "
        f"{time.monotonic() - started:.1f} s after the load (cancels still in flight when a "
        "wrk run ends are committed too, so there can be a few more)"
    )


def preflight(server: perf.Server, api_key: str, cancel_id: str) -> None:
    """A create and a cancel as wrk sends them: 2xx, no GraphQL errors, CANCELED."""
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    for body in (BODIES["create"], BODIES["cancel"].replace(_ID, cancel_id)):
        response = httpx.post(f"{server.base_url}/graphql", content=body, headers=headers)
        if not response.is_success or '"errors"' in response.text:
            raise perf.BenchError(f"preflight: {response.status_code} {response.text[:500]}")
    if '"CANCELED"' not in response.text:
        raise perf.BenchError(f"preflight: the cancel did not cancel: {response.text[:500]}")


# --- a store ------------------------------------------------------------------------------


@contextlib.contextmanager
def open_store(kind: str, directory: Path, report: perf.Report) -> Iterator[tuple[Store, str]]:
    """The store and the server's database URL; PostgreSQL in a throwaway cluster."""
    if kind == "sqlite":
        path = directory / "writes.db"
        stat = ["stat", "-f", "-c", "%T", str(directory)]
        fs = subprocess.run(stat, capture_output=True, text=True, check=False).stdout.strip()
        report(f"sqlite:      a file on {fs or '?'} ({directory}), WAL, synchronous=FULL")
        yield Store(kind, path, None), f"sqlite+aiosqlite:///{path}"
        return
    with postgres_cluster() as cluster:
        dsn = cluster.replace("+asyncpg", "")
        with psycopg.connect(f"{dsn}/postgres", autocommit=True) as admin:
            admin.execute("CREATE DATABASE bench")
            admin.execute("ALTER DATABASE bench SET synchronous_commit = on")
            version = (admin.execute("SHOW server_version").fetchone() or ("?",))[0]
        report(
            f"postgresql:  {version}, testkit cluster (fsync=off, full_page_writes=off), "
            "synchronous_commit=on for the bench database"
        )
        yield Store(kind, None, f"{dsn}/bench"), f"{cluster}/bench"


def bench_store(report: perf.Report, wrk: str, args: argparse.Namespace, kind: str) -> list[Result]:
    shape = perf.LoadShape(THREADS, 0, args.duration, args.warmup)
    with (
        tempfile.TemporaryDirectory(prefix="gqlc-writes-") as temporary,
        open_store(kind, Path(temporary), report) as (store, database_url),
        contextlib.ExitStack() as stack,
    ):
        directory = Path(temporary)
        receiver = stack.enter_context(running_receiver(directory)) if args.webhook else None
        env = {**perf.gql_env(database_url), "GQL_CHECKOUT_ENV": args.env}
        merchant_id, api_key = perf.create_merchant(env)
        port = free_port()
        argv = [gql_checkout_executable(), "serve", "--host", perf.HOST, "--port", str(port)]
        argv += ["--workers", "1"]
        with perf.running(f"gql-{kind}", argv, env=env, port=port, directory=directory) as server:
            if store.path is not None:
                perf.probe_storage(server, store.path, merchant_id, api_key)
            # After the probe, which expects the one merchant.
            hooked_id, hooked_key = perf.create_merchant(env) if receiver else ("", "")
            started = time.monotonic()
            count = args.rounds * len(args.writers) * (args.duration + args.warmup) * SEED_RATE
            ids = {"cancel": seed(store, merchant_id, count + 1)}
            if receiver is not None:
                subscribe(server, hooked_key, receiver)
                ids[HOOKED] = seed(store, hooked_id, count)
            report(
                f"seeded:      {count + 1} open sessions per merchant in "
                f"{time.monotonic() - started:.1f} s"
            )
            preflight(server, api_key, ids["cancel"].pop())
            keys = {"create": api_key, "cancel": api_key, HOOKED: hooked_key}
            load = Load(wrk, server, directory, keys, ids, report)
            results: list[Result] = []
            scenarios = _scenarios(args)
            for round_ in range(1, args.rounds + 1):
                shift = (round_ - 1) % len(scenarios)
                for writers in args.writers:
                    for scenario in [*scenarios[shift:], *scenarios[:shift]]:
                        if scenario.startswith("floor"):
                            result = measure_floor(
                                store, merchant_id, scenario, writers, shape, round_
                            )
                        else:
                            result = load.run(scenario, writers, shape, round_)
                        results.append(result)
                        report(f"{kind:>10} {round_:>5} {writers:>7}  {_row(scenario, result)}")
            if receiver is not None:
                delivered(receiver, load.answered[HOOKED], report)
            log = server.log_tail(1_000_000)
            found = (f"{log.count(s)} x {s!r}" for s in ("database is locked", "Traceback"))
            report(f"server log:  {', '.join(found)}")
    return results


def _scenarios(args: argparse.Namespace) -> tuple[str, ...]:
    return (*SCENARIOS[:2], HOOKED, *SCENARIOS[2:]) if args.webhook else SCENARIOS


# --- the report ---------------------------------------------------------------------------

HEADER = f"{'rate/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'CPU us/req':>10}"


def _row(label: str, result: Result, errors: int | None = None) -> str:
    cpu = "-" if result.cpu_us is None else f"{result.cpu_us:.0f}"
    numbers = f"{result.rate:>8.0f} {result.p50_ms:>7.1f} {result.p99_ms:>7.1f}"
    return f"{label:<26} {numbers} {result.errors if errors is None else errors:>6} {cpu:>10}"


def table(
    kind: str, writers: int, results: Sequence[Result], scenarios: Sequence[str]
) -> list[str]:
    mine = sorted((r for r in results if r.writers == writers), key=lambda r: r.round)
    runs = {scenario: [r for r in mine if r.scenario == scenario] for scenario in scenarios}
    names = {
        "create": "create (GraphQL)",
        "cancel": "cancel (GraphQL)",
        HOOKED: "cancel, 1 webhook endpoint",
        "floor-commit": "floor: 1 insert/commit",
        "floor-batch": f"floor: {writers} inserts/commit",
    }
    labels = [names[scenario] for scenario in scenarios]
    lines = [f"{kind}, {writers} writers", f"{'':<26} {HEADER} {'vs commit':>10} {'vs batch':>9}"]
    lines.append("-" * len(lines[-1]))
    for label, group in zip(labels, runs.values(), strict=True):
        median = sorted(group, key=lambda r: r.rate)[(len(group) - 1) // 2]
        ratios = [
            statistics.median(r.rate / f.rate for r, f in zip(group, runs[floor], strict=True))
            for floor in ("floor-commit", "floor-batch")
        ]
        errors = sum(r.errors for r in group)
        lines.append(f"{_row(label, median, errors)} {ratios[0]:>9.2f}x {ratios[1]:>8.2f}x")
    every = (f"{s} " + " ".join(f"{r.rate:.0f}" for r in group) for s, group in runs.items())
    return [*lines, "  all rounds: " + "; ".join(every), ""]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.writes", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds")
    parser.add_argument("--duration", type=int, default=8, help="seconds measured per scenario")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each")
    parser.add_argument("--stores", default="sqlite,postgresql", help="sqlite,postgresql")
    parser.add_argument("--writers", default="16,64", help="concurrent writers, comma-separated")
    parser.add_argument("--env", choices=("development", "production"), default="development")
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="also cancel as a merchant with one webhook endpoint (development only: http)",
    )
    args = parser.parse_args(argv)
    args.stores = args.stores.split(",")
    args.writers = [int(n) for n in args.writers.split(",")]
    if set(args.stores) - {"sqlite", "postgresql"}:
        parser.error("--stores takes sqlite and/or postgresql")
    if args.webhook and args.env == "production":
        parser.error("--webhook needs --env development (the receiver is http on loopback)")
    if args.rounds < 1 or args.duration < 1 or args.warmup < 0 or min(args.writers) < THREADS:
        parser.error(f"--rounds and --duration must be positive, --writers at least {THREADS}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)

    def body(report: perf.Report, wrk: str) -> list[str]:
        runs = len(args.stores) * args.rounds * len(args.writers) * len(_scenarios(args))
        report(
            f"server:      gql-checkout serve --workers 1, GQL_CHECKOUT_ENV={args.env}, "
            f"rate limits off; load: wrk -t{THREADS} -c<writers>"
        )
        minutes = runs * (args.duration + args.warmup) / 60
        report(
            f"rounds:      {args.rounds}, each scenario {args.warmup} s warm-up + "
            f"{args.duration} s measured (about {minutes:.0f} min)"
        )
        report(f"\n{'store':>10} {'round':>5} {'writers':>7}  {'scenario':<26} {HEADER}")
        lines: list[str] = []
        for kind in args.stores:
            results = bench_store(report, wrk, args, kind)
            for writers in args.writers:
                lines += table(kind, writers, results, _scenarios(args))
        return [
            *lines,
            "rate/s: req/s, or rows/s for the floors (their p50/p99 are per commit). Each row is",
            "the round with the median rate; errors: all measured rounds. vs commit / vs batch:",
            "median over rounds of the rate over the same round's floor rate.",
        ]

    return perf.run_bench("writes", argv, body)


if __name__ == "__main__":
    raise SystemExit(main())
