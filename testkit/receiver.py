"""A real webhook receiver: its own uvicorn process on loopback, for tests and benchmarks.

Every POST is checked with the ``standardwebhooks`` package against the secrets the test
registered for its path, and remembered (headers, body, which secrets verified it, when it
arrived). A path answers from a script the test sets (status, Retry-After, a delay before
answering), then 200 once the script is used up. Control routes live under ``/_``.

    python -m testkit.receiver --port 8123
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from testkit.server import free_port, stop_process, wait_until_answering

Scope = dict[str, Any]


class ReceiverApp:
    """A raw ASGI app: the receiver's own cost is the benchmark's floor."""

    def __init__(self) -> None:
        self.received: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.scripts: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.secrets: dict[str, list[str]] = {}
        self.count = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]
                await send({"type": f"{kind}.complete"})
                if kind == "lifespan.shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        if path.startswith("/_"):
            await self._control(path, scope["method"], body, send)
            return
        arrived = time.time()
        headers = {key.decode(): value.decode() for key, value in scope["headers"]}
        step = self.scripts[path].pop(0) if self.scripts[path] else {}
        verified = []
        for index, secret in enumerate(self.secrets.get(path, [])):
            try:
                Webhook(secret).verify(body, headers)
                verified.append(index)
            except WebhookVerificationError:
                pass
        self.count += 1
        self.received[path].append(
            {
                "webhookId": headers.get("webhook-id"),
                "timestamp": headers.get("webhook-timestamp"),
                "signature": headers.get("webhook-signature"),
                "contentType": headers.get("content-type"),
                "body": body.decode(),
                "verifiedWith": verified,
                "arrived": arrived,
            }
        )
        if step.get("delay"):
            await asyncio.sleep(float(step["delay"]))
        extra = [(b"retry-after", str(step["retryAfter"]).encode())] if "retryAfter" in step else []
        await _respond(send, int(step.get("status", 200)), b"ok", extra)

    async def _control(self, path: str, method: str, body: bytes, send: Any) -> None:
        if path == "/_received" and method == "GET":
            await _respond(send, 200, orjson.dumps(self.received))
            return
        if path == "/_count":
            await _respond(send, 200, orjson.dumps(self.count))
            return
        data = orjson.loads(body) if body else {}
        if path == "/_script":
            self.scripts[data["path"]] = list(data["steps"])
        elif path == "/_secrets":
            self.secrets[data["path"]] = list(data["secrets"])
        elif path == "/_reset":
            self.received.clear()
            self.count = 0
        await _respond(send, 204, b"")


async def _respond(
    send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class Receiver:
    """A running receiver, driven over HTTP from the test."""

    base_url: str
    process: subprocess.Popen[bytes]

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def script(self, path: str, *steps: dict[str, Any]) -> None:
        """The next answers of ``path``: e.g. ``{"status": 500}``, ``{"status": 429,
        "retryAfter": 2}``, ``{"delay": 30}``; 200 after them."""
        httpx.post(self.url("/_script"), json={"path": path, "steps": list(steps)})

    def trust(self, path: str, *secrets: str) -> None:
        """Verify what ``path`` receives with each of ``secrets`` (their indexes are
        recorded as ``verifiedWith``)."""
        httpx.post(self.url("/_secrets"), json={"path": path, "secrets": list(secrets)})

    def received(self, path: str) -> list[dict[str, Any]]:
        found: dict[str, list[dict[str, Any]]] = httpx.get(self.url("/_received")).json()
        return found.get(path, [])

    def count(self) -> int:
        return int(httpx.get(self.url("/_count")).json())

    def reset(self) -> None:
        httpx.post(self.url("/_reset"))

    def wait_for(self, path: str, count: int, *, timeout: float = 20.0) -> list[dict[str, Any]]:
        """What ``path`` received, once it is at least ``count`` deliveries (or the
        timeout passed: the caller's assertion then says what is missing)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.received(path)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    async def arrived(
        self,
        path: str,
        count: int,
        *,
        timeout: float = 20.0,  # noqa: ASYNC109 (a wait's bound, not the caller's deadline)
    ) -> list[dict[str, Any]]:
        """``wait_for`` for a test whose own event loop runs the dispatcher."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while True:
                found: dict[str, list[dict[str, Any]]] = (
                    await client.get(self.url("/_received"))
                ).json()
                if len(found.get(path, [])) >= count or time.monotonic() > deadline:
                    return found.get(path, [])
                await asyncio.sleep(0.02)


@contextlib.contextmanager
def running_receiver(directory: Path, *, port: int | None = None) -> Iterator[Receiver]:
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = directory / f"receiver-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "testkit.receiver", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,  # where testkit is importable
        )
    try:
        wait_until_answering(process, base_url, timeout=15.0)
        yield Receiver(base_url=base_url, process=process)
    finally:
        stop_process(process)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        ReceiverApp(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


if __name__ == "__main__":
    main()
