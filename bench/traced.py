"""uvicorn under tracemalloc, for bench.connections --tracemalloc: where a connection's
memory goes, by file.

    python -m bench.traced <uvicorn's arguments>

SIGUSR1 takes the baseline snapshot; SIGUSR2 takes another and writes what grew since the
baseline, by source file and by line (the 30 largest of each), to the file named by
GQL_BENCH_TRACEMALLOC_OUT. tracemalloc sees Python's allocations only (not the kernel's
socket buffers, nor what C libraries allocate on their own), and slows the server: the
figures of a traced run are for the breakdown, not for latency.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import tracemalloc
from pathlib import Path

TOP = 30
_baseline: list[tracemalloc.Snapshot] = []


def _snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )


def _mark() -> None:
    _baseline[:] = [_snapshot()]


def _write() -> None:
    now = _snapshot()
    lines = []
    for key in ("filename", "lineno"):
        grown = now.compare_to(_baseline[0], key)
        total = sum(stat.size_diff for stat in grown)
        lines.append(f"by {key}: {total / 1024:.0f} KiB grown in all")
        for stat in grown[:TOP]:
            frame = stat.traceback[0]
            place = frame.filename if key == "filename" else f"{frame.filename}:{frame.lineno}"
            size, count = stat.size_diff / 1024, stat.count_diff
            lines.append(f"  {size:>10.0f} KiB {count:>9} blocks  {place}")
    Path(os.environ["GQL_BENCH_TRACEMALLOC_OUT"]).write_text("\n".join(lines) + "\n")


def _answer_signals() -> None:
    # A thread of its own: a handler on the main thread would wait for the event loop to
    # wake (an idle loop of held long polls may sleep for their whole wait).
    while True:
        if signal.sigwait(_SIGNALS) == signal.SIGUSR1:
            _mark()
        else:
            _write()


_SIGNALS = {signal.SIGUSR1, signal.SIGUSR2}


def main() -> None:
    tracemalloc.start()
    # Blocked here, before uvicorn starts any thread, so that only sigwait takes them.
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    threading.Thread(target=_answer_signals, name="tracemalloc", daemon=True).start()
    from uvicorn.main import main as uvicorn_main

    sys.argv = ["uvicorn", *sys.argv[1:]]
    uvicorn_main()


if __name__ == "__main__":
    main()
