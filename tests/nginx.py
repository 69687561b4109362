"""A real nginx on deploy/nginx.conf, and an echo server standing in for the HCP backend.

`running_nginx()` renders the shipped file with the test's addresses (only the three lines
marked "test:" change), wraps it in a minimal main config whose pid, logs and temp paths
live in the given directory, runs nginx in the foreground and always stops it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from testkit.server import ServerStartError, free_port, stop_process, wait_until_answering

NGINX_CONF = Path(__file__).resolve().parents[1] / "deploy" / "nginx.conf"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
_SBIN_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def find_nginx() -> str | None:
    """nginx on PATH, or where packages put it (/usr/sbin is not on every user's PATH)."""
    return shutil.which("nginx") or next(
        (path for path in _SBIN_CANDIDATES if Path(path).exists()), None
    )


# --- the HCP backend stand-in ----------------------------------------------------------------


@dataclass
class EchoBackend:
    """Answers every request with its method, path and headers (as pairs: repeats show)."""

    port: int
    received: list[dict[str, Any]] = field(default_factory=list)


def _echo_handler(backend: EchoBackend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen = {
                "method": self.command,
                "path": self.path,
                "headers": [[name, value] for name, value in self.headers.items()],
            }
            backend.received.append(seen)
            body = json.dumps(seen).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # nginx's access log already has every request

    return Handler


@contextlib.contextmanager
def running_echo_backend() -> Iterator[EchoBackend]:
    backend = EchoBackend(port=free_port())
    httpd = ThreadingHTTPServer(("127.0.0.1", backend.port), _echo_handler(backend))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="hcp-backend", daemon=True)
    thread.start()
    try:
        yield backend
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=STOP_TIMEOUT_S)


# --- nginx -------------------------------------------------------------------------------------


def _replace_marked(text: str, *, marker: str, old: str, new: str) -> str:
    """Swaps ``old`` for ``new`` on the one line carrying ``marker``; loud if the file moved on."""
    lines = text.splitlines(keepends=True)
    marked = [index for index, line in enumerate(lines) if marker in line]
    if len(marked) != 1 or old not in lines[marked[0]]:
        raise ValueError(f"{NGINX_CONF} needs exactly one line marked {marker!r}, holding {old!r}")
    lines[marked[0]] = lines[marked[0]].replace(old, new)
    return "".join(lines)


def render_config(*, directory: Path, listen_port: int, gateway: str, hcp_backend: str) -> Path:
    """The shipped site file with these addresses, inside a minimal main config."""
    site = NGINX_CONF.read_text()
    site = _replace_marked(site, marker="# test: gateway", old="127.0.0.1:8000", new=gateway)
    site = _replace_marked(
        site, marker="# test: hcp backend", old="127.0.0.1:9000", new=hcp_backend
    )
    site = _replace_marked(
        site, marker="# test: listen", old="listen 80;", new=f"listen 127.0.0.1:{listen_port};"
    )
    (directory / "gql_checkout.conf").write_text(site)
    temp_paths = "\n".join(
        f"    {name}_temp_path {directory / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = directory / "nginx.conf"
    main.write_text(
        f"""worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} info;
events {{
    worker_connections 256;
}}
http {{
    access_log {directory / "access.log"};
{temp_paths}
    include {directory / "gql_checkout.conf"};
}}
"""
    )
    return main


def _wait_until_answering(
    process: subprocess.Popen[bytes], base_url: str, *, error_log: Path
) -> None:
    try:
        wait_until_answering(process, base_url, timeout=START_TIMEOUT_S)
    except ServerStartError as error:
        log = error_log.read_text(errors="replace") if error_log.exists() else "(no error log)"
        raise RuntimeError(f"nginx {error}:\n{log}") from None


@contextlib.contextmanager
def running_nginx(binary: str, directory: Path, *, gateway: str, hcp_backend: str) -> Iterator[str]:
    """A foreground nginx on the rendered config; yields its base URL, always stops it."""
    port = free_port()
    config = render_config(
        directory=directory, listen_port=port, gateway=gateway, hcp_backend=hcp_backend
    )
    error_log = directory / "error.log"
    argv = [binary, "-p", str(directory), "-e", str(error_log), "-c", str(config)]
    process = subprocess.Popen(
        [*argv, "-g", "daemon off;"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(process, base_url, error_log=error_log)
        yield base_url
    finally:
        stop_process(process)
