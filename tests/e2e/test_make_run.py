"""`make run`, as the README's first command: demo data, a paste-ready export block, a
demo API key that survives a restart, and a clean end on Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

import gql_checkout
from testkit.server import free_port, stop_process, wait_until_answering

pytestmark = pytest.mark.server

ROOT = Path(gql_checkout.__file__).resolve().parents[1]
EXPORT = re.compile(
    r"export BASE_URL=(?P<base>\S+) MERCHANT_ID=(?P<merchant>\S+) \\\n"
    r"  API_KEY=(?P<key>\S+) \\\n"
    r"  SESSION_ID=(?P<session>\S+)\n"
)


def _make_run(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    make = shutil.which("make")
    assert make is not None
    env = {
        **os.environ,
        "GQL_CHECKOUT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
    }
    return subprocess.Popen(
        [make, "--no-print-directory", "-C", str(ROOT), "run", f"PORT={port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's job is
    )


def _serve_once(tmp_path: Path, stop: signal.Signals) -> tuple[dict[str, str], str, int]:
    """Runs `make run` until it answers, then stops it as a terminal's Ctrl-C does (SIGINT
    to the process group) or as `kill` does (SIGTERM to make alone):
    (export block, output, exit status)."""
    port = free_port()
    process = _make_run(tmp_path, port)
    try:
        wait_until_answering(process, f"http://127.0.0.1:{port}", timeout=60)
        if stop is signal.SIGINT:
            os.killpg(process.pid, stop)
        else:
            process.send_signal(stop)
        output, _ = process.communicate(timeout=30)
    finally:
        stop_process(process)
        if process.stdout is not None:
            process.stdout.close()
    text = output.decode()
    found = EXPORT.search(text)
    assert found is not None, text
    return found.groupdict(), text, process.returncode


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_make_run_prints_an_export_block_and_stops_cleanly(
    tmp_path: Path, stop: signal.Signals
) -> None:
    exported, output, status = _serve_once(tmp_path, stop)

    # make itself may die of the SIGINT it got too, as any foreground job does; what it
    # must not do is report a failed recipe.
    assert status in {0, -stop}, output
    assert "make: ***" not in output
    assert "Application shutdown complete." in output
    assert exported["base"].startswith("http://127.0.0.1:")


def test_the_demo_api_key_survives_a_restart_and_each_run_has_a_fresh_session(
    tmp_path: Path,
) -> None:
    first, _, _ = _serve_once(tmp_path, signal.SIGINT)
    second, output, _ = _serve_once(tmp_path, signal.SIGINT)

    assert second["merchant"] == first["merchant"]
    assert second["key"] == first["key"]
    assert second["session"] != first["session"]
    # and the key is the merchant's: a write with it succeeds
    port = free_port()
    process = _make_run(tmp_path, port)
    try:
        wait_until_answering(process, f"http://127.0.0.1:{port}", timeout=60)
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={
                "query": "mutation($id: ID!) { cancelCheckoutSession(id: $id) { id } }",
                "variables": {"id": second["session"]},
            },
            headers={"Authorization": f"Bearer {first['key']}"},
            timeout=10,
        )
    finally:
        stop_process(process)
        if process.stdout is not None:
            process.stdout.close()
    assert response.json() == {"data": {"cancelCheckoutSession": {"id": second["session"]}}}, output
