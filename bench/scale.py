"""Lookup throughput with many sessions next to that with few, side by side in one run.

    .venv/bin/python -m bench.scale [--small 10000] [--large 700000] [--polled N]
                                    [--rounds 8] [--duration 5] [--warmup 1]
                                    [--large-warmup 30]

Seeds two SQLite files the way bench.perf does (``--small`` and ``--large`` top-level
sessions, half of them parents with a child: 15,000 and 1,050,000 rows by default),
starts one single-worker gql_checkout on each, and drives REST GET and the GraphQL status
query with the same wrk load. Each round measures each scenario on both databases, one
right after the other (which one first alternates from round to round), so each ratio
large / small compares two runs a few seconds apart: on a machine whose speed drifts by
20-40% over minutes, a ratio of runs made minutes apart measures the drift. The load
reads uniformly over all top-level sessions of each database, or over ``--polled`` of the
large one's (what a fleet of pages polling the sessions being paid looks like). The
large server gets a warm-up of ``--large-warmup`` seconds first, as a server running for
a while would have had.

Prints every round, then per scenario the median of the paired ratios (req/s and CPU per
request), and writes it all to bench/results/scale-<UTC date and time>.txt.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.perf import (
    GQL,
    SCENARIOS,
    LoadShape,
    Report,
    Run,
    Server,
    load_scripts,
    measure,
    polled_ids,
    run_bench,
    run_wrk,
    seeded_gql_server,
)

SCALE_SCENARIOS = [s for s in SCENARIOS if s.target == GQL and s.key in ("rest", "gql-status")]
REST = SCALE_SCENARIOS[0]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--small", type=int, default=10_000, help="top-level sessions, small")
    parser.add_argument("--large", type=int, default=700_000, help="top-level sessions, large")
    parser.add_argument(
        "--polled", type=int, help="poll only this many of the large database's sessions"
    )
    parser.add_argument("--rounds", type=int, default=8, help="paired rounds")
    parser.add_argument("--duration", type=int, default=5, help="seconds measured per run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per run")
    parser.add_argument(
        "--large-warmup", type=int, default=30, help="seconds of load on the large server first"
    )
    args = parser.parse_args(argv)
    if not 2 <= args.small <= args.large:
        parser.error("--small must be at least 2 and at most --large")
    if args.rounds < 1 or args.duration < 1 or args.warmup < 0 or args.large_warmup < 0:
        parser.error("--rounds and --duration must be positive, warm-ups not negative")
    if args.polled is not None and not 0 < args.polled <= args.large:
        parser.error("--polled must be between 1 and --large")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    return run_bench("scale", argv, lambda report, wrk: summary(_bench(report, wrk, args), args))


def _bench(report: Report, wrk: str, args: argparse.Namespace) -> list[tuple[Run, Run]]:
    shape = LoadShape(2, 32, args.duration, args.warmup)
    with (
        tempfile.TemporaryDirectory(prefix="gqlc-scale-") as temporary,
        contextlib.ExitStack() as stack,
    ):
        directory = Path(temporary)
        servers: dict[str, tuple[Server, dict[str, Path]]] = {}
        for name, sessions, polled in (
            ("small", args.small, None),
            ("large", args.large, args.polled),
        ):
            seeding = time.monotonic()
            server, seeded, _url = seeded_gql_server(stack, directory, name, sessions)
            ids = polled_ids(seeded, polled)
            scripts = load_scripts(
                directory, f"{name}-", ids, SCALE_SCENARIOS, {GQL: server}, seeded
            )
            servers[name] = (server, scripts)
            report(
                f"{name + ':':<12} {seeded.rows} sessions ({sessions} top-level), "
                f"{len(ids)} polled, seeded in {time.monotonic() - seeding:.1f} s"
            )
        large, large_scripts = servers["large"]
        if args.large_warmup:
            run_wrk(wrk, large, large_scripts[REST.name], shape, args.large_warmup)
        report(
            f"load:        wrk -t2 -c32, {args.warmup}s warm-up + {args.duration}s measured per "
            f"run, {args.rounds} paired rounds; large server warmed {args.large_warmup}s first"
        )
        report()
        report(
            f"{'round':>5}  {'scenario':<12} {'small req/s':>11} {'large req/s':>11} "
            f"{'ratio':>6} {'small CPU':>9} {'large CPU':>9}"
        )
        pairs: list[tuple[Run, Run]] = []
        for round_ in range(1, args.rounds + 1):
            for scenario in SCALE_SCENARIOS:
                order = ["small", "large"] if round_ % 2 else ["large", "small"]
                runs = {
                    name: measure(
                        wrk,
                        servers[name][0],
                        scenario,
                        servers[name][1][scenario.name],
                        shape,
                        round_,
                    )
                    for name in order
                }
                small, large_run = runs["small"], runs["large"]
                pairs.append((small, large_run))
                report(
                    f"{round_:>5}  {scenario.key:<12} {small.rps:>11.0f} {large_run.rps:>11.0f} "
                    f"{large_run.rps / small.rps:>6.2f} {small.cpu_us_per_request:>9.0f} "
                    f"{large_run.cpu_us_per_request:>9.0f}"
                )
        return pairs


def summary(pairs: Sequence[tuple[Run, Run]], args: argparse.Namespace) -> list[str]:
    lines = [
        f"{'scenario':<12} {'large/small req/s':>18} {'(min-max)':>12} "
        f"{'large/small CPU':>16} {'errors':>6}  within 20%?",
    ]
    for scenario in SCALE_SCENARIOS:
        mine = [(s, large) for s, large in pairs if s.scenario.key == scenario.key]
        ratios = [large.rps / s.rps for s, large in mine]
        cpu = [large.cpu_us_per_request / s.cpu_us_per_request for s, large in mine]
        errors = sum(s.errors + large.errors for s, large in mine)
        median = statistics.median(ratios)
        lines.append(
            f"{scenario.key:<12} {median:>18.2f} {f'{min(ratios):.2f}-{max(ratios):.2f}':>12} "
            f"{statistics.median(cpu):>16.2f} {errors:>6}  {'yes' if median >= 0.8 else 'NO'}"
        )
    lines += [
        "",
        f"ratio: the large database's req/s over the small one's ({args.large} against "
        f"{args.small} top-level",
        "sessions), per pair of runs a few seconds apart; the median of the pairs is shown.",
        "CPU: server CPU time per request, large over small.",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
