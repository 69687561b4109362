"""REST polls while attackers send costly GraphQL documents, against a real server.

    .venv/bin/python -m bench.hostile [--seconds S] [--attackers N]

Starts one production-mode `gql-checkout serve` worker on a SQLite file, creates a
session, then measures the REST poll's latency three ways, back to back: idle (the
reference, measured in the same run), while N processes send `checkoutSession` documents
with 490 repeated `childSession { id }` selections (~10 KB, under the token limit; a new
comment each time, so no cache helps), and while they send ~900 KB comment-padded
documents. Prints p50/p99 of each and the ratio of each p50 to the idle one, and what an
attack request itself took. Everything is on loopback and bounded in time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from testkit.documents import create_session_now
from testkit.server import running_server

REPEATED = '{ checkoutSession(id: "x") { ' + "childSession { id } " * 490 + "} }"
SECRET = "bench-hostile-" + "s" * 40


def _repeated(number: int) -> str:
    return f"# {number}\n{REPEATED}"


def _padded(number: int) -> str:
    return f"# {number} {'x' * 900_000}\n{{ __typename }}"


ATTACKS: dict[str, Callable[[int], str]] = {
    "490 repeated selections": _repeated,
    "900 KB padded": _padded,
}


def _poll_latencies(
    client: httpx.Client, path: str, headers: dict[str, str], seconds: float
) -> list[float]:
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return latencies


def _attack(base_url: str, attack: str, stop: Any, took: Any) -> None:
    """One attacker process (a thread would share the poller's GIL and slow the poller,
    not the server): sends ``attack``'s documents until ``stop`` is set."""
    document = ATTACKS[attack]
    with httpx.Client(base_url=base_url, timeout=30) as client:
        number = 0
        while not stop.is_set():
            number += 1
            started = time.perf_counter()
            client.post(
                "/graphql",
                json={"query": document(number)},
                headers={"X-Merchant-Id": "00000000-0000-4000-8000-000000000001"},
            )
            took.put(time.perf_counter() - started)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--attackers", type=int, default=2)
    args = parser.parse_args()
    env = {"GQL_CHECKOUT_ENV": "production", "GQL_CHECKOUT_READS_PER_CLIENT": "off"}
    with (
        tempfile.TemporaryDirectory() as directory,
        running_server(Path(directory), hcp_secret=SECRET, extra_env=env) as server,
    ):
        merchant = server.create_merchant()
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            created = create_session_now(client, merchant.api_key)
            path = f"/v1/checkout-sessions/{created['id']}"
            _poll_latencies(client, path, merchant.read_headers, 1.0)  # warm up
            idle = _poll_latencies(client, path, merchant.read_headers, args.seconds)
            header = ("REST poll", "p50 ms", "p99 ms", "p50/idle", "attack p50 ms")
            print(f"{header[0]:<40} {header[1]:>8} {header[2]:>8} {header[3]:>9} {header[4]:>14}")
            idle_p50, idle_p99 = statistics.median(idle) * 1e3, _percentile(idle, 0.99) * 1e3
            print(f"{'idle':<40} {idle_p50:8.2f} {idle_p99:8.2f} {1:9.2f}")
            for name in ATTACKS:
                stop = multiprocessing.Event()
                took: multiprocessing.Queue[float] = multiprocessing.Queue()
                attackers = [
                    multiprocessing.Process(
                        target=_attack, args=(server.base_url, name, stop, took)
                    )
                    for _ in range(args.attackers)
                ]
                for attacker in attackers:
                    attacker.start()
                try:
                    time.sleep(0.5)
                    busy = _poll_latencies(client, path, merchant.read_headers, args.seconds)
                finally:
                    stop.set()
                    for attacker in attackers:
                        attacker.join(timeout=30)
                attack_times = []
                while not took.empty():
                    attack_times.append(took.get())
                ratio = statistics.median(busy) / statistics.median(idle)
                label = f"{args.attackers} attackers: {name}"
                print(
                    f"{label:<40} {statistics.median(busy) * 1e3:8.2f}"
                    f" {_percentile(busy, 0.99) * 1e3:8.2f} {ratio:9.2f}"
                    f" {statistics.median(attack_times) * 1e3:14.2f}"
                )


if __name__ == "__main__":
    main()
