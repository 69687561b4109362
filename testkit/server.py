"""A real `gql-checkout serve` process for tests where the server itself matters.

`running_server()` starts uvicorn through the installed console script on a free port,
waits until it answers HTTP, and always stops it (SIGTERM, then SIGKILL). The database
is a SQLite file in the given directory unless a URL is passed in. `LiveServer.kill()`
crashes it on purpose (SIGKILL to its process group), for crash-recovery tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from testkit.merchants import TEST_SECRET, MerchantCredentials

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0


class ServerStartError(RuntimeError):
    """The server did not answer in time or exited; the message holds its stderr."""


def gql_checkout_executable() -> str:
    """The console script of the venv running the tests (so the code under test is used)."""
    beside_python = Path(sys.executable).with_name("gql-checkout")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("gql-checkout")
    if found is None:
        raise RuntimeError("the gql-checkout console script is not installed (pip install -e .)")
    return found


def rss_kib(pid: int) -> int:
    """A process's resident memory now (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port() -> int:
    """A port the kernel just handed out; the tiny race with other processes is accepted."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(*, database_url: str, hcp_secret: str = TEST_SECRET) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GQL_CHECKOUT_")}
    env.update(
        {
            "GQL_CHECKOUT_DATABASE_URL": database_url,
            "GQL_CHECKOUT_HCP_SECRET": hcp_secret,
            "GQL_CHECKOUT_ENV": "development",
        }
    )
    return env


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    database_url: str
    env: Mapping[str, str]
    workers: int
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)

    @property
    def sqlite_path(self) -> Path | None:
        prefix = "sqlite+aiosqlite:///"
        if not self.database_url.startswith(prefix):
            return None
        return Path(self.database_url.removeprefix(prefix))

    def create_merchant(self, name: str = "Acme") -> MerchantCredentials:
        """`gql-checkout merchants create` against this server's database."""
        return create_merchant(env=self.env, name=name)

    def kill(self) -> int:
        """Crashes the server: SIGKILL to its process group (workers included), no shutdown.

        Blocks until the process is reaped, so its port is closed on return; returns the
        exit status (-9). `running_server` then has nothing left to stop.
        """
        if self.process is None:
            raise RuntimeError("this LiveServer was not started by running_server()")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout=STOP_TIMEOUT_S)


def create_merchant(*, env: Mapping[str, str], name: str) -> MerchantCredentials:
    completed = subprocess.run(
        [gql_checkout_executable(), "merchants", "create", "--name", name],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"gql-checkout merchants create exited {completed.returncode}:\n{completed.stderr}"
        )
    created = json.loads(completed.stdout)
    return MerchantCredentials(merchant_id=created["merchantId"], api_key=created["apiKey"])


def wait_until_answering(
    process: subprocess.Popen[bytes], base_url: str, *, timeout: float
) -> None:
    """Until ``base_url`` answers any HTTP request; ServerStartError if the process
    exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerStartError(f"exited with code {process.returncode}")
            try:
                client.get("/")
            except httpx.TransportError:
                time.sleep(0.05)
            else:
                return
    raise ServerStartError(f"did not answer HTTP within {timeout:.0f}s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL to its process group: for processes started with
    ``start_new_session=True`` (they lead their group, so this reaches only them)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def running_server(
    directory: Path,
    *,
    database_url: str | None = None,
    workers: int = 1,
    hcp_secret: str = TEST_SECRET,
    start_timeout: float = START_TIMEOUT_S,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[LiveServer]:
    """Serves gql_checkout from a real uvicorn process until the block exits.

    ``extra_env`` adds settings, e.g. ``{"GQL_CHECKOUT_READS_PER_CLIENT": "off"}``.
    """
    database_url = database_url or f"sqlite+aiosqlite:///{directory / 'gql_checkout.db'}"
    env = server_env(database_url=database_url, hcp_secret=hcp_secret)
    env.update(extra_env or {})
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    argv = [gql_checkout_executable(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(workers)]
    log_path = directory / f"server-{port}.log"
    with log_path.open("wb") as log:
        # Output goes to a file, not a pipe: a chatty server can never block on a full pipe.
        process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            wait_until_answering(process, base_url, timeout=start_timeout)
        except ServerStartError as error:
            stop_process(process)
            output = log_path.read_text(errors="replace")
            raise ServerStartError(f"{' '.join(argv)}: {error}\n--- output ---\n{output}") from None
        yield LiveServer(
            base_url=base_url,
            database_url=database_url,
            env=env,
            workers=workers,
            log_path=log_path,
            process=process,
        )
    finally:
        stop_process(process)
