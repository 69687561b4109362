"""Read throughput and latency of gql_checkout next to a floor and a naive baseline.

    .venv/bin/python -m bench.perf [--rounds 3] [--duration 10] [--connections 32]
                                   [--sessions 10000] [--polled N] [--threads 2] [--warmup 3]

One run:

1. Seeds a SQLite file in a temporary directory: a merchant through the real CLI
   (`gql-checkout merchants create`, which migrates), one session through the GraphQL API
   (whose row shows how ids and timestamps are stored), then `--sessions` top-level
   sessions bulk-inserted with sqlite3, half of them parents with a current child. One
   seeded parent is then read back through REST and GraphQL before anything is measured.
2. Starts three single-worker uvicorn servers on loopback (uvloop, httptools, no access
   log; the same flags `gql-checkout serve` passes): the floor (bench/floor_app.py, a
   constant JSON body), the naive baseline (bench/naive_app.py, Strawberry + SQLAlchemy
   ORM written the obvious way, same database file) and `gql-checkout serve --workers 1`
   with rate limits off. Only one of them is under load at any time; the others idle.
3. Drives every scenario with wrk (Debian's `wrk`; a Lua script picks a random seeded
   session id per request, of all top-level ones or of `--polled` of them picked at
   random, e.g. 1M rows in the table and 10k pages polling; it counts non-2xx answers and
   2xx bodies holding GraphQL `errors`): a warm-up of `--warmup` seconds, then
   `--duration` seconds measured, for `--rounds` rounds taken round-robin over the
   scenarios (each round in a rotated order). The round with the median req/s is
   reported, with its latency percentiles, and the server's CPU time per request (from
   /proc: less sensitive to other load on the machine than req/s).
4. Prints a table, with ratios to the floor and to the naive baseline, and writes the
   same output to bench/results/perf-<UTC date and time>.txt.

Every process is stopped and the temporary directory removed at the end, on errors and on
Ctrl-C / SIGTERM too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from gql_checkout.services.hcp_tokens import HcpTokens
from testkit.server import (
    ServerStartError,
    free_port,
    gql_checkout_executable,
    stop_process,
    wait_until_answering,
)
from testkit.server import create_merchant as create_merchant_through_cli

HOST = "127.0.0.1"
HCP_SECRET = "bench-perf-hcp-secret-0123456789abcdefghijklmnop"  # noqa: S105 (a fixed test value)
_TOKENS = HcpTokens((HCP_SECRET,))
START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 60.0
RESULTS_DIR = Path(__file__).with_name("results")
RESULT_MARKER = "BENCH_RESULT "

# The flags `gql-checkout serve` gives uvicorn.run (loop/http "auto" pick uvloop and
# httptools, both installed with uvicorn[standard]); the other targets get them spelled out.
UVICORN_FLAGS = (
    "--workers",
    "1",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--proxy-headers",
    "--no-server-header",
    "--log-level",
    "info",
)

STATUS_QUERY = "query($id: ID!) { checkoutSession(id: $id) { checkoutSessionStatus } }"
FULL_QUERY = (
    "query($id: ID!) { checkoutSession(id: $id) { id checkoutSessionStatus isExpired expiresAt"
    " childSession { id checkoutSessionStatus } appearance { theme primaryColor }"
    " cardCategories } }"
)
CREATE_MUTATION = (
    "mutation($input: CreateCheckoutSessionInput!) { createCheckoutSession(input: $input)"
    " { id createdAt expiresAt } }"
)
_ID = "__SESSION_ID__"
_STORED_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")

FLOOR = "floor"
NAIVE = "naive"
GQL = "gql_checkout"


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""


# --- output -------------------------------------------------------------------------------


class Report:
    """Prints as it goes and keeps every line for the results file."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


# --- processes ----------------------------------------------------------------------------


def base_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("GQL_CHECKOUT_")}


def gql_env(database_url: str) -> dict[str, str]:
    env = base_env()
    env.update(
        {
            "GQL_CHECKOUT_DATABASE_URL": database_url,
            "GQL_CHECKOUT_HCP_SECRET": HCP_SECRET,
            "GQL_CHECKOUT_ENV": "development",
            "GQL_CHECKOUT_READS_PER_CLIENT": "off",
            "GQL_CHECKOUT_WRITES_PER_MERCHANT": "off",
        }
    )
    return env


@dataclass
class Server:
    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all its threads) so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return ticks / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@contextlib.contextmanager
def running(
    name: str, argv: Sequence[str], *, env: Mapping[str, str], port: int, directory: Path
) -> Iterator[Server]:
    """A server process until the block exits; it must answer HTTP on ``port`` first."""
    log_path = directory / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
        )
    server = Server(name, f"http://{HOST}:{port}", process, log_path)
    try:
        _wait_until_answering(server)
        yield server
    except Exception:
        tail = server.log_tail()
        if tail:
            print(f"--- last lines of the {name} server's output ---\n{tail}", file=sys.stderr)
        raise
    finally:
        stop_process(process)


def _wait_until_answering(server: Server) -> None:
    try:
        wait_until_answering(server.process, server.base_url, timeout=START_TIMEOUT_S)
    except ServerStartError as error:
        raise BenchError(f"{server.name} {error}") from None


def uvicorn_argv(app: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        HOST,
        "--port",
        str(port),
        *UVICORN_FLAGS,
    ]


# --- seeding ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    merchant_id: str
    top_level_ids: list[str]  # what the load picks from
    parent_id: str
    child_id: str
    rows: int


def create_merchant(env: Mapping[str, str]) -> tuple[str, str]:
    try:
        created = create_merchant_through_cli(env=env, name="Bench")
    except RuntimeError as error:
        raise BenchError(str(error)) from None
    return created.merchant_id, created.api_key


def _stored_time(moment: datetime) -> str:
    """Naive UTC text, as SQLAlchemy's DateTime writes it on SQLite."""
    return moment.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def probe_storage(gql: Server, database: Path, merchant_id: str, api_key: str) -> None:
    """Creates one session through the API and checks that its row is stored the way the
    bulk insert will write rows (ids as 32 hex digits, naive UTC text timestamps, the
    hcpToken signed with the server's key)."""
    response = httpx.post(
        f"{gql.base_url}/graphql",
        json={"query": CREATE_MUTATION, "variables": {"input": {"amount": 100, "currency": "EUR"}}},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    )
    body = response.json()
    if response.status_code != 200 or "errors" in body:
        raise BenchError(f"creating the probe session failed: {response.status_code} {body}")
    created = body["data"]["createCheckoutSession"]
    with contextlib.closing(sqlite3.connect(database)) as conn:
        rows = conn.execute(
            "SELECT id, merchant_id, status, created_at, expires_at, updated_at, version,"
            " hcp_token FROM checkout_sessions"
        ).fetchall()
        (stored_merchant_id,) = conn.execute("SELECT id FROM merchants").fetchone()
    if len(rows) != 1:
        raise BenchError(f"expected the probe session alone in the database, found {len(rows)}")
    (row_id, row_merchant_id, status, created_at, expires_at, updated_at, row_version, token) = (
        rows[0]
    )
    created_time = datetime.fromisoformat(created["createdAt"].replace("Z", "+00:00"))
    expected = {
        "id": (row_id, uuid.UUID(created["id"]).hex),
        "merchant_id": (row_merchant_id, uuid.UUID(merchant_id).hex),
        "merchants.id": (stored_merchant_id, uuid.UUID(merchant_id).hex),
        "status": (status, "INITIATED"),
        "created_at": (created_at, _stored_time(created_time)),
        "updated_at": (updated_at, _stored_time(created_time)),
        "version": (row_version, 1),
        "hcp_token": (
            token,
            _TOKENS.sign(
                checkout_session_id=uuid.UUID(created["id"]),
                merchant_id=uuid.UUID(merchant_id),
                expires_at=datetime.fromisoformat(str(expires_at)).replace(tzinfo=UTC),
            ),
        ),
    }
    wrong = {name: pair for name, pair in expected.items() if pair[0] != pair[1]}
    if wrong or not _STORED_TIME.match(str(expires_at)):
        raise BenchError(
            "gql_checkout stores sessions differently from what the bulk insert writes "
            f"(stored, expected): {wrong or {'expires_at': expires_at}}"
        )


def bulk_insert(database: Path, merchant_id: str, sessions: int) -> Seeded:
    """``sessions`` top-level sessions, every second one a parent with a current child."""
    now = datetime.now(UTC).replace(microsecond=0)
    created_at = _stored_time(now)
    expiry = now + timedelta(hours=24)
    expires_at = _stored_time(expiry)
    merchant = uuid.UUID(merchant_id)
    merchant_hex = merchant.hex
    rng = random.Random(20261124)
    rows: list[tuple[object, ...]] = []
    top_level: list[str] = []
    parent_id = child_id = ""

    def row(session_id: uuid.UUID, parent: uuid.UUID | None, child: uuid.UUID | None) -> None:
        rows.append(
            (
                session_id.hex,
                merchant_hex,
                rng.randrange(100, 100_000),
                f"bench-{len(rows)}",
                created_at,
                expires_at,
                created_at,
                parent.hex if parent else None,
                child.hex if child else None,
                # As the server stores it when it creates a session (probe_storage checks).
                _TOKENS.sign(
                    checkout_session_id=session_id, merchant_id=merchant, expires_at=expiry
                ),
            )
        )

    for index in range(sessions):
        session_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        top_level.append(str(session_id))
        if index % 2:
            child = uuid.UUID(int=rng.getrandbits(128), version=4)
            row(session_id, None, child)
            row(child, session_id, None)  # a child expires with its parent: same expires_at
            parent_id, child_id = str(session_id), str(child)
        else:
            row(session_id, None, None)
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
        with conn:
            conn.executemany(
                "INSERT INTO checkout_sessions (id, merchant_id, status, amount, currency,"
                " merchant_reference, created_at, expires_at, updated_at, version, parent_id,"
                " current_child_id, hcp_token)"
                " VALUES (?, ?, 'INITIATED', ?, 'EUR', ?, ?, ?, ?, 1, ?, ?, ?)",
                rows,
            )
        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
        conn.execute("ANALYZE")
    if broken:
        raise BenchError(f"the seeded rows break foreign keys: {broken[:5]}")
    rng.shuffle(top_level)
    return Seeded(merchant_id, top_level, parent_id, child_id, rows=len(rows))


def seeded_gql_server(
    stack: contextlib.ExitStack, directory: Path, name: str, sessions: int
) -> tuple[Server, Seeded, str]:
    """``gql-checkout serve --workers 1`` on a new SQLite file holding ``sessions``
    top-level sessions, read back through its API; with the seed and the database URL."""
    database = directory / f"{name}.db"
    database_url = f"sqlite+aiosqlite:///{database}"
    env = gql_env(database_url)
    merchant_id, api_key = create_merchant(env)
    port = free_port()
    argv = [gql_checkout_executable(), "serve", "--host", HOST, "--port", str(port)]
    server = stack.enter_context(
        running(name, [*argv, "--workers", "1"], env=env, port=port, directory=directory)
    )
    probe_storage(server, database, merchant_id, api_key)
    seeded = bulk_insert(database, merchant_id, sessions)
    verify_seed(server, seeded)
    return server, seeded, database_url


def verify_seed(gql: Server, seeded: Seeded) -> None:
    """Reads one seeded parent through the real API: REST with init, and GraphQL."""
    headers = {"X-Merchant-Id": seeded.merchant_id}
    rest = httpx.get(
        f"{gql.base_url}/v1/checkout-sessions/{seeded.parent_id}?init=true",
        headers=headers,
        timeout=10,
    )
    if rest.status_code != 200:
        raise BenchError(f"REST read of a seeded parent: {rest.status_code} {rest.text}")
    session = rest.json()["data"]["checkoutSession"]
    child = session.get("childSession") or {}
    if not (
        session["id"] == seeded.parent_id
        and session["checkoutSessionStatus"] == "INITIATED"
        and session["isExpired"] is False
        and child.get("id") == seeded.child_id
        and child.get("checkoutSessionStatus") == "INITIATED"
        and session.get("appearance")
        and session.get("cardCategories")
    ):
        raise BenchError(f"the seeded parent does not read back as written: {session}")


def expected_full(gql: Server, seeded: Seeded) -> dict[str, Any]:
    """The full query's answer for the seeded parent (what the naive baseline must match)."""
    body = graphql(gql.base_url, FULL_QUERY, seeded.parent_id, seeded.merchant_id)
    session: dict[str, Any] = body["data"]["checkoutSession"]
    if (session.get("childSession") or {}).get("id") != seeded.child_id:
        raise BenchError(f"GraphQL read of the seeded parent: {body}")
    return session


def graphql(base_url: str, query: str, session_id: str, merchant_id: str) -> dict[str, Any]:
    response = httpx.post(
        f"{base_url}/graphql",
        json={"query": query, "variables": {"id": session_id}},
        headers={"X-Merchant-Id": merchant_id},
        timeout=10,
    )
    body: dict[str, Any] = response.json()
    if response.status_code != 200 or "errors" in body:
        raise BenchError(f"{base_url}: GraphQL read failed: {response.status_code} {body}")
    return body


# --- load ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    target: str
    method: str
    path: str  # with _ID where the session id goes
    body: str | None = None  # the GraphQL document of a POST (its variable: the session id)
    # What a client library adds: an operationName, extensions, headers.
    operation_name: str | None = None
    extensions: Mapping[str, Any] | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.key}/{self.target}"


def _graphql_body(scenario: Scenario) -> str:
    """The JSON body wrk sends, with _ID where the session id goes (key order as sent)."""
    body: dict[str, Any] = {}
    if scenario.operation_name is not None:
        body["operationName"] = scenario.operation_name
    body["variables"] = {"id": _ID}
    if scenario.extensions is not None:
        body["extensions"] = scenario.extensions
    body["query"] = scenario.body
    return json.dumps(body, separators=(",", ":"))


# The status poll as Apollo Client 4 sends it by default (HttpLink: __typename added to
# every selection set, operationName, extensions.clientLibrary, its Accept) and as urql
# sends it by default: over GET (cacheExchange's __typename, its default Accept; the
# X-Merchant-Id every scenario sends is what lets a GET query through).
APOLLO_STATUS_QUERY = (
    "query Poll($id: ID!) {\n  checkoutSession(id: $id) {\n    checkoutSessionStatus\n"
    "    __typename\n  }\n}"
)
APOLLO_EXTENSIONS = {"clientLibrary": {"name": "@apollo/client", "version": "4.0.0"}}
APOLLO_HEADERS = (("Accept", "application/graphql-response+json,application/json;q=0.9"),)
URQL_STATUS_QUERY = (
    "query Poll($id: ID!) {\n  checkoutSession(id: $id) {\n    checkoutSessionStatus\n"
    "    __typename\n  }\n}"
)
URQL_HEADERS = (
    (
        "Accept",
        "application/graphql-response+json, application/json, text/event-stream, multipart/mixed",
    ),
)


REST_PATH = f"/v1/checkout-sessions/{_ID}"
SCENARIOS = (
    Scenario("floor", "floor GET (constant JSON)", FLOOR, "GET", REST_PATH),
    Scenario("rest", "REST GET /v1/checkout-sessions/{id}", GQL, "GET", REST_PATH),
    Scenario("rest-init", "REST GET …?init=true", GQL, "GET", REST_PATH + "?init=true"),
    Scenario("gql-status", "GraphQL status only", GQL, "POST", "/graphql", STATUS_QUERY),
    Scenario("gql-status", "GraphQL status only", NAIVE, "POST", "/graphql", STATUS_QUERY),
    Scenario("gql-full", "GraphQL full", GQL, "POST", "/graphql", FULL_QUERY),
    Scenario("gql-full", "GraphQL full", NAIVE, "POST", "/graphql", FULL_QUERY),
    Scenario(
        "gql-apollo",
        "GraphQL status, as Apollo Client 4 sends it",
        GQL,
        "POST",
        "/graphql",
        APOLLO_STATUS_QUERY,
        operation_name="Poll",
        extensions=APOLLO_EXTENSIONS,
        headers=APOLLO_HEADERS,
    ),
    Scenario(
        "gql-urql",
        "GraphQL status, as urql sends it (GET)",
        GQL,
        "GET",
        "/graphql?"
        + urlencode({"query": URQL_STATUS_QUERY, "operationName": "Poll"})
        + "&variables="
        + quote('{"id":"', safe="")
        + _ID
        + quote('"}', safe=""),
        headers=URQL_HEADERS,
    ),
)


def _lua_string(value: str) -> str:
    # JSON string escapes of ASCII text (\" \\ \n \t) are valid Lua escapes too.
    if not value.isascii():
        raise ValueError("Lua literals here must be ASCII")
    return json.dumps(value)


def lua_script(scenario: Scenario, *, ids_file: Path, merchant_id: str) -> str:
    path_prefix, path_suffix = (
        scenario.path.split(_ID) if _ID in scenario.path else (scenario.path, "")
    )
    uses_path_id = _ID in scenario.path
    body_parts = _graphql_body(scenario).split(_ID) if scenario.body else None
    content_type = 'wrk.headers["Content-Type"] = "application/json"' if body_parts else ""
    content_type += "".join(
        f"\nwrk.headers[{_lua_string(name)}] = {_lua_string(value)}"
        for name, value in scenario.headers
    )
    if body_parts:
        body_expr = f"{_lua_string(body_parts[0])} .. id .. {_lua_string(body_parts[1])}"
    else:
        body_expr = "nil"
    path_expr = (
        f"{_lua_string(path_prefix)} .. id .. {_lua_string(path_suffix)}"
        if uses_path_id
        else _lua_string(path_prefix)
    )
    return f"""
-- generated by bench.perf for {scenario.name}
wrk.method = {_lua_string(scenario.method)}
wrk.headers["X-Merchant-Id"] = {_lua_string(merchant_id)}
{content_type}

local threads = {{}}
local next_thread = 1

function setup(thread)
  thread:set("thread_number", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

local ids = {{}}

function init(args)
  for line in io.lines({_lua_string(str(ids_file))}) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  math.randomseed(os.time() * 1000 + thread_number)
  non_2xx = 0
  graphql_errors = 0
end

function request()
  local id = ids[math.random(#ids)]
  return wrk.format(nil, {path_expr}, nil, {body_expr})
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  elseif string.find(body, '"errors"', 1, true) then
    graphql_errors = graphql_errors + 1
  end
end

function done(summary, latency, requests)
  local bad, gql = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non_2xx") or 0)
    gql = gql + (thread:get("graphql_errors") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    '{RESULT_MARKER}{{"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"connect":%d,"read":%d,"write":%d,"timeout":%d,' ..
    '"status":%d,"non_2xx":%d,"graphql_errors":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.timeout,
    e.status, bad, gql))
end
"""


def polled_ids(seeded: Seeded, polled: int | None) -> list[str]:
    """The ids the load picks from: all top-level ones, or ``polled`` of them at random."""
    if polled is None:
        return seeded.top_level_ids
    return random.Random(polled).sample(seeded.top_level_ids, polled)


def load_scripts(
    directory: Path,
    prefix: str,
    ids: Sequence[str],
    scenarios: Sequence[Scenario],
    targets: Mapping[str, Server],
    seeded: Seeded,
) -> dict[str, Path]:
    """A wrk script per scenario, by scenario name, each after one request as wrk will
    send it has succeeded (``preflight``)."""
    ids_file = directory / f"{prefix}session-ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    scripts: dict[str, Path] = {}
    for scenario in scenarios:
        preflight(targets[scenario.target], scenario, seeded)
        script = directory / f"{prefix}{scenario.key}-{scenario.target}.lua"
        script.write_text(lua_script(scenario, ids_file=ids_file, merchant_id=seeded.merchant_id))
        scripts[scenario.name] = script
    return scripts


@dataclass(frozen=True)
class Run:
    scenario: Scenario
    round: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    socket_errors: int  # connect + read + write + timeout
    non_2xx: int
    graphql_errors: int
    cpu_us_per_request: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx + self.graphql_errors


@dataclass(frozen=True)
class LoadShape:
    threads: int
    connections: int
    duration: int
    warmup: int


def run_wrk(
    wrk: str, server: Server, script: Path, shape: LoadShape, seconds: int
) -> dict[str, Any]:
    argv = [
        wrk,
        "-t",
        str(shape.threads),
        "-c",
        str(shape.connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        server.base_url,
    ]
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    marked = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if completed.returncode != 0 or not marked:
        raise BenchError(
            f"wrk failed ({completed.returncode}): {shlex.join(argv)}\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
    if server.process.poll() is not None:
        raise BenchError(f"the {server.name} server exited during the run")
    result: dict[str, Any] = json.loads(marked[-1].removeprefix(RESULT_MARKER))
    return result


def measure(
    wrk: str, server: Server, scenario: Scenario, script: Path, shape: LoadShape, round_: int
) -> Run:
    if shape.warmup > 0:
        run_wrk(wrk, server, script, shape, shape.warmup)
    cpu_before = server.cpu_seconds()
    raw = run_wrk(wrk, server, script, shape, shape.duration)
    cpu = server.cpu_seconds() - cpu_before
    requests = int(raw["requests"])
    return Run(
        scenario=scenario,
        round=round_,
        requests=requests,
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        socket_errors=sum(int(raw[key]) for key in ("connect", "read", "write", "timeout")),
        non_2xx=int(raw["non_2xx"]),
        graphql_errors=int(raw["graphql_errors"]),
        cpu_us_per_request=cpu * 1e6 / requests if requests else float("nan"),
    )


def preflight(server: Server, scenario: Scenario, seeded: Seeded) -> None:
    """One request as wrk will send it: a 2xx without GraphQL errors, or no benchmark."""
    session_id = seeded.parent_id
    url = server.base_url + scenario.path.replace(_ID, session_id)
    headers = {"X-Merchant-Id": seeded.merchant_id, **dict(scenario.headers)}
    if scenario.body is None:
        response = httpx.get(url, headers=headers, timeout=10)
    else:
        content = _graphql_body(scenario).replace(_ID, session_id)
        headers["Content-Type"] = "application/json"
        response = httpx.post(url, content=content, headers=headers, timeout=10)
    if not response.is_success or '"errors"' in response.text:
        raise BenchError(
            f"{scenario.name}: the request wrk will send fails: "
            f"{response.status_code} {response.text[:500]}"
        )


# --- the report ---------------------------------------------------------------------------


def median_run(runs: Sequence[Run]) -> Run:
    ordered = sorted(runs, key=lambda run: run.rps)
    return ordered[(len(ordered) - 1) // 2]


CLIENT_STYLES = frozenset({"gql-apollo", "gql-urql"})


def _ratio(value: float, reference: float | None) -> str:
    if not reference:
        return "-"
    return f"{value / reference:.2f}x"


def table(runs: Sequence[Run]) -> list[str]:
    by_scenario: dict[str, list[Run]] = {}
    for run in runs:
        by_scenario.setdefault(run.scenario.name, []).append(run)
    medians = {name: median_run(group) for name, group in by_scenario.items()}
    floor = medians.get(f"floor/{FLOOR}")
    naive_status = medians.get(f"gql-status/{NAIVE}")
    header = (
        f"{'scenario':<38} {'target':<13} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'CPU us/req':>10} {'errors':>6} {'vs floor':>8} {'vs naive':>9}"
    )
    lines = [header, "-" * len(header)]
    for scenario in SCENARIOS:
        median = medians.get(scenario.name)
        if median is None:
            continue
        if scenario.key in CLIENT_STYLES:
            # No naive counterpart: compared with the plain status poll of the same run.
            plain = medians.get(f"gql-status/{GQL}")
            versus_naive = _ratio(median.rps, plain.rps if plain else None) + "†"
        elif scenario.key.startswith("gql-"):
            naive = medians.get(f"{scenario.key}/{NAIVE}")
            versus_naive = _ratio(median.rps, naive.rps if naive else None)
        elif scenario.key.startswith("rest"):
            versus_naive = _ratio(median.rps, naive_status.rps if naive_status else None) + "*"
        else:
            versus_naive = "-"
        errors = sum(run.errors for run in by_scenario[scenario.name])
        lines.append(
            f"{scenario.label:<38} {scenario.target:<13} {median.rps:>8.0f} "
            f"{median.p50_ms:>7.1f} {median.p99_ms:>7.1f} {median.cpu_us_per_request:>10.0f} "
            f"{errors:>6} {_ratio(median.rps, floor.rps if floor else None):>8} "
            f"{versus_naive:>9}"
        )
    lines += [
        "",
        "req/s, p50, p99 and CPU us/req: the round with the median req/s. errors: all measured",
        "rounds (socket errors + non-2xx + 2xx bodies with GraphQL errors). CPU us/req: user +",
        "system time of the server process per answered request. vs floor / vs naive: req/s",
        "ratios; * REST has no naive counterpart, so it is compared with the naive GraphQL",
        "status-only query (the same session read). † the poll as a client library sends it,",
        "compared with the plain status poll of gql_checkout in the same run (target >= 0.8x).",
        "",
        "all rounds, req/s (spread = (max - min) / median):",
    ]
    for scenario in SCENARIOS:
        group = by_scenario.get(scenario.name)
        if not group:
            continue
        values = [run.rps for run in sorted(group, key=lambda run: run.round)]
        middle = statistics.median(values)
        spread = (max(values) - min(values)) / middle if middle else 0.0
        listed = "  ".join(f"{value:7.0f}" for value in values)
        lines.append(f"  {scenario.name:<24} {listed}   spread {spread:5.1%}")
    return lines


def machine_lines(argv: Sequence[str]) -> list[str]:
    wrk_version = subprocess.run(
        ["wrk", "-v"], capture_output=True, text=True, check=False, timeout=10
    ).stdout.splitlines()
    return [
        f"date (UTC):  {datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S')}",
        f"command:     {shlex.join(argv)}",
        f"machine:     nproc {len(os.sched_getaffinity(0))}, {platform.machine()}, "
        f"{platform.system()} {platform.release()}",
        f"python:      {platform.python_implementation()} {platform.python_version()}",
        "versions:    "
        + ", ".join(
            f"{name} {version(name)}"
            for name in ("uvicorn", "uvloop", "httptools", "starlette", "strawberry-graphql")
        )
        + f", sqlalchemy {version('sqlalchemy')}, aiosqlite {version('aiosqlite')}",
        f"load tool:   {wrk_version[0] if wrk_version else 'wrk'}",
        f"load avg:    {_loadavg()} (1/5/15 min, at start)",
    ]


def _loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


# --- main ---------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.perf", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per scenario")
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per round")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up before each")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--sessions", type=int, default=10_000, help="top-level sessions seeded")
    parser.add_argument(
        "--polled",
        type=int,
        help="poll only this many of the top-level sessions, picked at random over the"
        " table (default: all of them)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted({scenario.key for scenario in SCENARIOS}),
        help="run only these scenarios (repeatable; the floor always runs)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration < 1 or args.warmup < 0 or args.sessions < 2:
        parser.error("--rounds, --duration and --sessions must be positive (--sessions >= 2)")
    if args.polled is not None and not 0 < args.polled <= args.sessions:
        parser.error("--polled must be between 1 and --sessions")
    if args.threads < 1 or args.connections < args.threads:
        parser.error("--connections must be at least --threads, and --threads at least 1")
    return args


def _terminate(signum: int, _frame: FrameType | None) -> None:
    # SIGTERM/SIGHUP unwind like Ctrl-C: every `with` block stops its server.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    scenarios = [
        scenario
        for scenario in SCENARIOS
        if not args.only or scenario.key in args.only or scenario.key == "floor"
    ]
    shape = LoadShape(args.threads, args.connections, args.duration, args.warmup)

    def body(report: Report, wrk: str) -> list[str]:
        estimate = args.rounds * len(scenarios) * (args.duration + args.warmup) + 20
        report(
            f"load:        wrk -t{shape.threads} -c{shape.connections}, {shape.warmup}s warm-up"
            f" + {shape.duration}s measured, {args.rounds} rounds round-robin "
            f"(about {estimate / 60:.0f} min)"
        )
        return table(_bench(report, wrk, args, scenarios, shape))

    return run_bench("perf", argv, body)


def run_bench(
    kind: str, argv: Sequence[str] | None, body: Callable[[Report, str], list[str]]
) -> int:
    """What every wrk benchmark here does around its own ``body``: wrk found, SIGTERM and
    SIGHUP unwound like Ctrl-C, the machine described, the body's lines reported, all of
    it saved to bench/results/<kind>-<UTC date and time>.txt."""
    wrk = shutil.which("wrk")
    if wrk is None:
        print(
            f"bench.{kind} needs wrk, the HTTP load tool: apt-get install -y wrk", file=sys.stderr
        )
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    report = Report()
    started = time.monotonic()
    command = sys.orig_argv if argv is None else [sys.executable, "-m", f"bench.{kind}", *argv]
    for line in machine_lines(command):
        report(line)
    try:
        lines = body(report, wrk)
    except BenchError as error:
        print(f"bench.{kind}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"bench.{kind}: interrupted; servers stopped, temporary files removed", file=sys.stderr
        )
        return 130
    report()
    for line in lines:
        report(line)
    report()
    report(f"load avg:    {_loadavg()} (1/5/15 min, at the end)")
    report(f"took:        {time.monotonic() - started:.0f} s")
    save(report, kind)
    return 0


def save(report: Report, kind: str) -> None:
    """Writes the report to bench/results/<kind>-<UTC date and time>.txt."""
    RESULTS_DIR.mkdir(exist_ok=True)
    # To the second: two runs in one minute (a before/after pair) keep both files.
    path = RESULTS_DIR / f"{kind}-{datetime.now(UTC).strftime('%Y-%m-%dT%H%M%SZ')}.txt"
    path.write_text(report.text())
    print(f"written to {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


def _bench(
    report: Report,
    wrk: str,
    args: argparse.Namespace,
    scenarios: Sequence[Scenario],
    shape: LoadShape,
) -> list[Run]:
    with tempfile.TemporaryDirectory(prefix="gqlc-perf-") as temporary:
        directory = Path(temporary)
        seeding = time.monotonic()
        with contextlib.ExitStack() as servers:
            gql, seeded, database_url = seeded_gql_server(servers, directory, GQL, args.sessions)
            merchant_id = seeded.merchant_id
            expected = expected_full(gql, seeded)
            report(
                f"seeded:      {seeded.rows} sessions ({args.sessions} top-level, half of them "
                f"parents with a child) in {time.monotonic() - seeding:.1f} s; "
                "verified through REST and GraphQL"
            )
            ports = {target: free_port() for target in (NAIVE, FLOOR)}
            naive = servers.enter_context(
                running(
                    NAIVE,
                    uvicorn_argv("bench.naive_app:app", ports[NAIVE]),
                    env={**base_env(), "BENCH_DATABASE_URL": database_url},
                    port=ports[NAIVE],
                    directory=directory,
                )
            )
            naive_full = graphql(naive.base_url, FULL_QUERY, seeded.parent_id, merchant_id)
            if _comparable(naive_full["data"]["checkoutSession"]) != _comparable(expected):
                raise BenchError(
                    f"the naive baseline answers differently: {naive_full} vs {expected}"
                )
            floor = servers.enter_context(
                running(
                    FLOOR,
                    uvicorn_argv("bench.floor_app:app", ports[FLOOR]),
                    env=base_env(),
                    port=ports[FLOOR],
                    directory=directory,
                )
            )
            targets = {GQL: gql, NAIVE: naive, FLOOR: floor}
            if args.polled is not None:
                report(f"polled:      {args.polled} of the top-level sessions, picked at random")
            ids = polled_ids(seeded, args.polled)
            scripts = load_scripts(directory, "", ids, scenarios, targets, seeded)
            report()
            report(
                f"{'round':>5}  {'scenario':<24} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
                f"{'CPU us/req':>10} {'errors':>6}"
            )
            runs: list[Run] = []
            for round_ in range(1, args.rounds + 1):
                # Rotated each round, so no scenario always follows the same one.
                shift = (round_ - 1) % len(scenarios)
                for scenario in [*scenarios[shift:], *scenarios[:shift]]:
                    run = measure(
                        wrk,
                        targets[scenario.target],
                        scenario,
                        scripts[scenario.name],
                        shape,
                        round_,
                    )
                    runs.append(run)
                    report(
                        f"{round_:>5}  {scenario.name:<24} {run.rps:>8.0f} {run.p50_ms:>7.1f} "
                        f"{run.p99_ms:>7.1f} {run.cpu_us_per_request:>10.0f} {run.errors:>6}"
                    )
            return runs


def _comparable(session: Mapping[str, Any]) -> dict[str, Any]:
    """The fields both implementations must agree on (their DateTime text may differ)."""
    child = session.get("childSession") or {}
    appearance = session.get("appearance") or {}
    return {
        "id": session.get("id"),
        "status": session.get("checkoutSessionStatus"),
        "isExpired": session.get("isExpired"),
        "child": (child.get("id"), child.get("checkoutSessionStatus")),
        "appearance": (appearance.get("theme"), appearance.get("primaryColor")),
        "cardCategories": session.get("cardCategories"),
    }


if __name__ == "__main__":
    sys.exit(main())
