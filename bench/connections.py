"""Many live pages on one worker: memory per connection and how fast a burst reaches them.

    .venv/bin/python -m bench.connections [--subscriptions 10000] [--long-polls 10000]
                                          [--sessions 500] [--clients 4] [--writers 16]
                                          [--rounds 1] [--ws PROTOCOL]
                                          [--targets floor,gql] [--python PATH]
                                          [--store sqlite|postgresql]
                                          [--writes-on same|other] [--tracemalloc]

For each target, one single-worker uvicorn (production mode) holds
``--subscriptions`` graphql-transport-ws subscriptions (then, in a run of its own,
``--long-polls`` long polls with ``Prefer: wait=30``) spread evenly over ``--sessions``
sessions, opened by ``--clients`` client processes (raw asyncio protocols: the websocket
upgrade and graphql-transport-ws by hand for subscriptions, HTTP/1.1 for polls, so that
the clients' CPU stays small next to the server's on a 2-core machine; the ``websockets``
library cost more than the server did). Then every session is canceled at once (the
burst: ``--writers`` requests in flight on kept-alive connections), and each client notes
when each of its connections got the change. Printed per run: the server's RSS per
connection (its VmRSS with the connections open, less before); the time from the burst's
first cancel to each connection's change, p50/p99/max (what a burst costs, the writes
included); and "fan", the time from the answer to the cancel of the connection's own
session to its change, p50/p99 (what the fan-out alone costs).

The gateway's database is a SQLite file, fresh per run, or with ``--store postgresql`` one
database of a throwaway PostgreSQL cluster for the whole bench (bench.writes.open_store).
``--writes-on same`` sends the burst's cancels to the worker holding the connections, whose
latencies then mostly count the cancels' own CPU; ``--writes-on other`` (PostgreSQL only:
SQLite's change bus is in-process) to a second single-worker gateway on the same database
and settings, the change reaching the holding worker by LISTEN/NOTIFY, as on several
replicas, where the worker holding a page mostly only fans out. RSS is the holding worker's.

The floor is ``bench/ws_floor_app.py`` on the same uvicorn, websocket implementation and
clients: it holds the same connections and fans a POST out to them, with no database and
no GraphQL (``--store`` and ``--writes-on`` leave it as it is). ``--ws`` picks uvicorn's
websocket implementation for both: by default the one `gql-checkout serve` runs
(gql_checkout/http/websocket_protocol.py; ``websockets-sansio`` is uvicorn's own, which
a checkout before it needs); ``--python`` runs the gateway with another checkout's
interpreter (e.g. main's ``.venv/bin/python``, for a before/after pair). The clients offer
no permessage-deflate (`gql-checkout serve` declines it; measured on the browsers' offer in
connections-2026-12-02T0711Z.txt). The file descriptor limit is raised to its hard limit.
Results go to bench/results/connections-<UTC date and time>.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.perf import (
    UVICORN_FLAGS,
    Report,
    Server,
    gql_env,
    machine_lines,
    running,
    save,
)
from bench.writes import open_store
from gql_checkout.http import websocket_protocol
from testkit.server import free_port, rss_kib

CREATE = (
    "mutation($input: CreateCheckoutSessionInput!) { createCheckoutSession(input: $input) { id } }"
)
CANCEL = "mutation($id: ID!) { cancelCheckoutSession(id: $id) { id } }"
SUBSCRIPTION = (
    "subscription($id: ID!) { checkoutSessionUpdated(id: $id) { id checkoutSessionStatus } }"
)
OPENING_AT_ONCE = 100  # per client process: uvicorn's accept backlog is 2048
WAIT_SECONDS = 30
CLIENT_TIMEOUT_S = 180.0
GATEWAY = ("gql_checkout.asgi:app_from_env", "--factory")


@dataclass(frozen=True)
class Outcome:
    target: str
    mode: str
    connections: int
    rss_per_connection_kib: float
    latencies_ms: list[float]  # from the burst's first cancel
    fan_out_ms: list[float]  # from the answer to the connection's own session's cancel
    missing: int
    writes_ms: float

    def line(self) -> str:
        lat = sorted(self.latencies_ms) or [float("nan")]
        fan = sorted(self.fan_out_ms) or [float("nan")]
        return (
            f"{self.target:<6} {self.mode:<14} {self.connections:>6} "
            f"{self.rss_per_connection_kib:>10.1f} {statistics.median(lat):>9.0f} "
            f"{_p99(lat):>8.0f} {lat[-1]:>8.0f} {statistics.median(fan):>9.0f} {_p99(fan):>8.0f} "
            f"{self.missing:>7} {self.writes_ms:>9.0f}"
        )


def _p99(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


HEADER = (
    f"{'target':<6} {'mode':<14} {'conns':>6} {'KiB/conn':>10} {'p50 ms':>9} {'p99 ms':>8} "
    f"{'max ms':>8} {'fan p50':>9} {'fan p99':>8} {'missing':>7} {'writes ms':>9}"
)


@contextlib.contextmanager
def _uvicorn(
    name: str, command: list[str], env: dict[str, str], args: argparse.Namespace, directory: Path
) -> Iterator[Server]:
    """``command`` (interpreter, runner, app) as one uvicorn worker on a free port."""
    port = free_port()
    flags = [*UVICORN_FLAGS, "--ws", args.ws, "--timeout-graceful-shutdown", "1"]
    flags += ["--ws-per-message-deflate", "false", "--host", "127.0.0.1", "--port", str(port)]
    with running(name, [*command, *flags], env=env, port=port, directory=directory) as server:
        server.env = env  # type: ignore[attr-defined]
        yield server


@contextlib.contextmanager
def _servers(
    target: str, args: argparse.Namespace, directory: Path, database: str | None
) -> Iterator[tuple[Server, Server]]:
    """The server holding the connections and the one taking the burst's cancels: the same,
    or with ``--writes-on other`` a second gateway on the same database and env."""
    runner = "bench.traced" if args.tracemalloc else "uvicorn"
    if target == "floor":
        env, command = gql_env(""), [sys.executable, "-m", runner, "bench.ws_floor_app:app"]
    else:
        env = gql_env(database or f"sqlite+aiosqlite:///{directory / 'gql.db'}")
        env.update(
            {
                "GQL_CHECKOUT_ENV": "production",
                "GQL_CHECKOUT_REQUEST_TIMEOUT_SECONDS": str(WAIT_SECONDS + 5),
                # The working directory is not on the path: ``--python``'s checkout is the
                # one imported, not this one's.
                "PYTHONSAFEPATH": "1",
            }
        )
        if args.tracemalloc:
            env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])  # bench.traced
        subprocess.run([args.python, "-m", "gql_checkout", "migrate"], env=env, check=True)
        command = [args.python, "-m", runner, *GATEWAY]
    env["GQL_BENCH_TRACEMALLOC_OUT"] = str(directory / "tracemalloc.txt")
    with _uvicorn(target, command, env, args, directory) as server:
        if target == "floor" or args.writes_on == "same":
            yield server, server
            return
        plain = [args.python, "-m", "uvicorn", *GATEWAY]
        with _uvicorn("gql-writes", plain, env, args, directory) as writes:
            yield server, writes


def _sessions(target: str, server: Server, count: int, python: str) -> tuple[str, str, list[str]]:
    """(merchant id, API key, session ids) on the server."""
    if target == "floor":
        return "00000000-0000-4000-8000-000000000001", "", [f"s{i}" for i in range(count)]
    env = server.env  # type: ignore[attr-defined]
    created = subprocess.run(
        [python, "-m", "gql_checkout", "merchants", "create", "--name", "bench"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    merchant = json.loads(created.stdout)
    headers = {"Authorization": f"Bearer {merchant['apiKey']}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as client:
        ids = [
            client.post(
                "/graphql",
                json={
                    "query": CREATE,
                    "variables": {
                        "input": {"amount": 100, "currency": "EUR", "expiresInSeconds": 3600}
                    },
                },
            ).json()["data"]["createCheckoutSession"]["id"]
            for _ in range(count)
        ]
    return merchant["merchantId"], merchant["apiKey"], ids


async def _burst(
    target: str, server: Server, api_key: str, ids: list[str], writers: int
) -> dict[str, float]:
    """Cancels every session at once, ``writers`` requests in flight on kept-alive
    connections; when each cancel was answered (raw HTTP/1.1: the load generator's own
    CPU stays small next to the server's)."""
    host, port = server.base_url.removeprefix("http://").split(":")
    queue = list(reversed(ids))
    answered: dict[str, float] = {}

    def request(session_id: str) -> bytes:
        if target == "floor":
            path, body = f"/cancel/{session_id}", b""
        else:
            path = "/graphql"
            body = json.dumps({"query": CANCEL, "variables": {"id": session_id}}).encode()
        return (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {api_key}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def writer() -> None:
        reader, stream = await asyncio.open_connection(host, int(port))
        try:
            while queue:
                session_id = queue.pop()
                stream.write(request(session_id))
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                answered[session_id] = time.monotonic()
                if b" 200 " not in head.split(b"\r\n")[0] or b'"errors"' in body:
                    raise RuntimeError(f"a cancel failed: {head!r} {body[:300]!r}")
        finally:
            stream.close()

    await asyncio.gather(*(writer() for _ in range(writers)))
    return answered


def _run(
    target: str,
    mode: str,
    count: int,
    args: argparse.Namespace,
    database: str | None,
    report: Report,
) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="gqlc-conns-") as temporary:
        directory = Path(temporary)
        with _servers(target, args, directory, database) as (server, writes):
            merchant_id, api_key, ids = _sessions(target, writes, args.sessions, args.python)
            etags = {}
            if mode == "long-polls" and target == "gql":
                with httpx.Client(base_url=server.base_url, timeout=30) as client:
                    for session_id in ids:
                        etags[session_id] = client.get(
                            f"/v1/checkout-sessions/{session_id}",
                            headers={"X-Merchant-Id": merchant_id},
                        ).headers["etag"]
            plan = directory / "plan.json"
            plan.write_text(
                json.dumps(
                    {
                        "url": server.base_url,
                        "merchant": merchant_id,
                        "ids": ids,
                        "etags": etags,
                    }
                )
            )
            time.sleep(1)
            before = rss_kib(server.process.pid)
            breakdown = directory / "tracemalloc.txt"
            if args.tracemalloc:
                os.kill(server.process.pid, signal.SIGUSR1)  # the baseline
            share = count // args.clients
            processes = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.connections",
                        "--client",
                        mode,
                        "--plan",
                        str(plan),
                        "--count",
                        str(share),
                        "--offset",
                        str(i * share),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for i in range(args.clients)
            ]
            try:
                for process in processes:
                    assert process.stdout is not None
                    line = process.stdout.readline()
                    if line.strip() != "ready":
                        raise RuntimeError(f"a client failed: {line!r}\n{server.log_tail()}")
                time.sleep(3)  # the last requests reach the server and are held
                held = rss_kib(server.process.pid)
                if args.tracemalloc:
                    os.kill(server.process.pid, signal.SIGUSR2)
                    while not breakdown.exists():
                        time.sleep(0.5)
                    time.sleep(1)  # written whole
                began = time.monotonic()
                answered = asyncio.run(_burst(target, writes, api_key, ids, args.writers))
                writes_ms = (time.monotonic() - began) * 1000
                arrivals: list[tuple[str, float]] = []
                missing = 0
                for process in processes:
                    out, _ = process.communicate(timeout=CLIENT_TIMEOUT_S)
                    result = json.loads(out)
                    arrivals += [(session_id, moment) for session_id, moment in result["times"]]
                    missing += result["missing"]
            finally:
                for process in processes:
                    if process.poll() is None:
                        process.kill()
                        process.wait()
        outcome = Outcome(
            target=target,
            mode=mode,
            connections=share * args.clients,
            rss_per_connection_kib=(held - before) / (share * args.clients),
            latencies_ms=[(moment - began) * 1000 for _, moment in arrivals],
            fan_out_ms=[(moment - answered[session_id]) * 1000 for session_id, moment in arrivals],
            missing=missing,
            writes_ms=writes_ms,
        )
        report(outcome.line())
        if args.tracemalloc:
            report(f"  what {target}'s Python allocations grew by, {mode} open (tracemalloc):")
            for line in breakdown.read_text().splitlines():
                report(f"  {line}")
        return outcome


# --- the client processes -----------------------------------------------------------------


def _client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A client's frame: masked, as RFC 6455 requires, with the all-zero key (any key is
    valid), so the payload goes as it is."""
    size = len(payload)
    length = bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
    return bytes([0x80 | opcode]) + length + b"\0\0\0\0" + payload


def _message(message: dict[str, Any]) -> bytes:
    return _client_frame(json.dumps(message).encode())


_PING, _PONG = 0x9, 0xA


class _Subscription(asyncio.Protocol):
    """One graphql-transport-ws subscription on raw asyncio: the upgrade, connection_init,
    subscribe, then the server's frames as they come (pings answered, as browsers do;
    no close handshake), so 2,500 of them cost a client process little CPU next to the
    server's."""

    def __init__(self, host: str, merchant: str, session_id: str) -> None:
        self.request = (
            f"GET /graphql HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        ).encode()
        self.init = _message({"type": "connection_init", "payload": {"merchantId": merchant}})
        self.subscribe = _message(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": SUBSCRIPTION, "variables": {"id": session_id}},
            }
        )
        loop = asyncio.get_running_loop()
        self.open: asyncio.Future[None] = loop.create_future()
        self.changed: asyncio.Future[float] = loop.create_future()
        self.buffer = b""
        self.upgraded = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        if not self.upgraded:
            head, found, rest = self.buffer.partition(b"\r\n\r\n")
            if not found:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self._fail(f"no upgrade: {head[:200]!r}")
                return
            self.upgraded, self.buffer = True, rest
            self.transport.write(self.init)
        while len(self.buffer) >= 2:  # the server's frames: unmasked, never fragmented here
            opcode, size, start = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
            if size >= 126:
                width = 2 if size == 126 else 8
                if len(self.buffer) < 2 + width:
                    return
                size, start = int.from_bytes(self.buffer[2 : 2 + width], "big"), 2 + width
            if len(self.buffer) < start + size:
                return
            payload = self.buffer[start : start + size]
            self.buffer = self.buffer[start + size :]
            if opcode == _PING:
                self.transport.write(_client_frame(payload, _PONG))
            else:
                self._message(payload)

    def _message(self, payload: bytes) -> None:
        assert self.transport is not None
        if b'"connection_ack"' in payload:
            self.transport.write(self.subscribe)
        elif b'"next"' in payload and not self.open.done():
            self.open.set_result(None)
        elif b"CANCELED" in payload and not self.changed.done():
            self.changed.set_result(time.monotonic())

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"closed by the server ({exc})")

    def _fail(self, why: str) -> None:
        for future in (self.open, self.changed):
            if not future.done():
                future.set_exception(RuntimeError(why))


async def _subscriber(
    plan: dict[str, Any],
    session_id: str,
    opening: asyncio.Semaphore,
    opened: list[int],
    all_open: asyncio.Event,
    total: int,
) -> tuple[str, float] | None:
    host, port = plan["url"].removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()
    async with opening:
        _transport, subscription = await loop.create_connection(
            lambda: _Subscription(host, plan["merchant"], session_id), host, int(port)
        )
        await asyncio.wait_for(subscription.open, 120)
    opened[0] += 1
    if opened[0] == total:
        all_open.set()
    return session_id, await subscription.changed


async def _long_poll(
    plan: dict[str, Any],
    session_id: str,
    opening: asyncio.Semaphore,
    opened: list[int],
    all_open: asyncio.Event,
    total: int,
) -> tuple[str, float] | None:
    host, port = plan["url"].removeprefix("http://").split(":")
    etag = plan["etags"].get(session_id, '"x"')
    request = (
        f"GET /v1/checkout-sessions/{session_id} HTTP/1.1\r\nHost: {host}\r\n"
        f"X-Merchant-Id: {plan['merchant']}\r\nIf-None-Match: {etag}\r\n"
        f"Prefer: wait={WAIT_SECONDS}\r\n\r\n"
    ).encode()
    async with opening:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        await writer.drain()
    opened[0] += 1
    if opened[0] == total:
        all_open.set()
    head = await reader.readuntil(b"\r\n\r\n")
    moment = time.monotonic()
    writer.close()
    status = head.split(b" ", 2)[1]
    return (session_id, moment) if status in (b"200", b"410") else None


async def _client(mode: str, plan: dict[str, Any], count: int, offset: int) -> None:
    ids = plan["ids"]
    opening = asyncio.Semaphore(OPENING_AT_ONCE)
    opened, all_open = [0], asyncio.Event()
    connect_one = _subscriber if mode == "subscriptions" else _long_poll
    tasks = [
        asyncio.create_task(
            connect_one(plan, ids[(offset + i) % len(ids)], opening, opened, all_open, count)
        )
        for i in range(count)
    ]
    await asyncio.wait_for(all_open.wait(), CLIENT_TIMEOUT_S)
    print("ready", flush=True)
    done, pending = await asyncio.wait(tasks, timeout=CLIENT_TIMEOUT_S - 30)
    times = [t.result() for t in done if t.exception() is None and t.result() is not None]
    print(json.dumps({"times": times, "missing": count - len(times)}), flush=True)
    for task in pending:
        task.cancel()


# --- main -----------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.connections")
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--long-polls", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--writers", type=int, default=16, help="cancels in flight at once")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--ws", default=websocket_protocol.NAME, help="uvicorn --ws implementation")
    parser.add_argument("--python", default=sys.executable, help="the gateway's interpreter")
    parser.add_argument("--targets", default="floor,gql")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--writes-on",
        choices=("same", "other"),
        default="same",
        help="the gateway taking the burst's cancels: the one holding the connections, or "
        "another on the same database (postgresql only)",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="run the servers under tracemalloc (bench/traced.py) and print what grew, by "
        "file and line, with the connections open (slower: ignore that run's latencies)",
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--plan", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--offset", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.writes_on == "other" and args.store == "sqlite":
        parser.error(
            "--writes-on other needs --store postgresql (SQLite's change bus is in-process)"
        )
    if args.tracemalloc and args.python != sys.executable:
        parser.error("--tracemalloc runs this checkout's gateway: it takes no --python")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.client:
        asyncio.run(
            _client(args.client, json.loads(args.plan.read_text()), args.count, args.offset)
        )
        return 0
    report = Report()
    for line in machine_lines(sys.orig_argv):
        report(line)
    where = "the holding worker" if args.writes_on == "same" else "a second gateway worker"
    report(
        f"gateway:     {args.python}; uvicorn --ws {args.ws}, no permessage-deflate; "
        f"{args.store}; {args.writers} cancels in flight on {where}"
    )
    with contextlib.ExitStack() as stack:
        database = None  # a fresh SQLite file per run
        if args.store == "postgresql":
            unused = Path(tempfile.gettempdir())  # open_store's directory: SQLite's only
            _, database = stack.enter_context(open_store(args.store, unused, report))
        report()
        report(HEADER)
        for _round in range(args.rounds):
            modes = (("subscriptions", args.subscriptions), ("long-polls", args.long_polls))
            for mode, count in modes:
                if count:
                    for target in args.targets.split(","):
                        _run(target, mode, count, args, database, report)
    report()
    report("KiB/conn: the server's VmRSS with the connections open, less before, per connection.")
    report("p50/p99/max: from the burst's first cancel to each connection's change.")
    report("fan p50/p99: from the answer to its own session's cancel to each one's change.")
    report("writes ms: until all cancels were answered; missing: connections without the change.")
    save(report, "connections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
