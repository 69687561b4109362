"""Section 4 of the contract: the installed `gql-checkout` console script, run for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest

from gql_checkout.app import create_app
from gql_checkout.settings import Environment, Settings
from testkit.documents import create_session
from testkit.merchants import TEST_SECRET

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _script() -> str:
    # The console script installed beside this interpreter (the venv's bin/).
    script = shutil.which("gql-checkout", path=str(Path(sys.executable).parent))
    assert script is not None, "gql-checkout is not installed in this environment"
    return script


def _database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Only our variables: the developer's own GQL_CHECKOUT_* must not leak into the test.
    environ = {key: value for key, value in os.environ.items() if not key.startswith("GQL_")}
    environ["GQL_CHECKOUT_DATABASE_URL"] = _database_url(tmp_path)
    environ.update(env)
    return subprocess.run(
        [_script(), *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def _json_object(completed: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """stdout must be exactly one JSON object on one line."""
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.endswith("\n")
    assert completed.stdout.count("\n") == 1, completed.stdout
    parsed = json.loads(completed.stdout)
    assert isinstance(parsed, dict)
    return parsed


def test_migrate_creates_the_database(tmp_path: Path) -> None:
    completed = run_cli(tmp_path, "migrate")

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == ""
    assert (tmp_path / "cli.db").stat().st_size > 0


def test_migrate_twice_is_harmless(tmp_path: Path) -> None:
    first = run_cli(tmp_path, "migrate")
    second = run_cli(tmp_path, "migrate")

    assert (first.returncode, second.returncode) == (0, 0), second.stderr


@pytest.mark.anyio
async def test_merchants_create_prints_a_working_api_key(tmp_path: Path) -> None:
    created = _json_object(run_cli(tmp_path, "merchants", "create", "--name", "Acme"))

    merchant_id, api_key = created.get("merchantId"), created.get("apiKey")
    assert set(created) == {"merchantId", "apiKey"}
    assert isinstance(merchant_id, str)
    assert UUID_TEXT.match(merchant_id)
    assert isinstance(api_key, str)
    # then: the printed key is the merchant's, in the same database, through the real app
    settings = Settings(
        database_url=_database_url(tmp_path),
        environment=Environment.DEVELOPMENT,
        hcp_secrets=(TEST_SECRET,),
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            session = await create_session(client, api_key)
            read = await client.get(
                f"/v1/checkout-sessions/{session['id']}", headers={"X-Merchant-Id": merchant_id}
            )
    finally:
        await app.state.container.stop()
    assert read.status_code == HTTPStatus.OK, read.text


def test_merchants_create_refuses_an_empty_name(tmp_path: Path) -> None:
    completed = run_cli(tmp_path, "merchants", "create", "--name", "  ")

    assert completed.returncode != 0
    assert completed.stdout == ""


def test_demo_is_idempotent(tmp_path: Path) -> None:
    first = _json_object(run_cli(tmp_path, "demo"))
    second = _json_object(run_cli(tmp_path, "demo"))

    assert {"merchantId", "apiKey", "sessionIds"} <= set(first)
    assert second["merchantId"] == first["merchantId"]
    assert second["sessionIds"] == first["sessionIds"]
    session_ids = first["sessionIds"]
    assert isinstance(session_ids, dict)
    assert session_ids, "the demo seeds sessions"
    assert all(UUID_TEXT.match(session_id) for session_id in session_ids.values())


def test_export_schema_prints_the_committed_schema(tmp_path: Path) -> None:
    completed = run_cli(tmp_path, "export-schema")

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == SCHEMA_FILE.read_text()


@pytest.mark.parametrize("command", [["migrate"], ["demo"], ["merchants", "create", "--name", "X"]])
def test_production_needs_an_hcp_secret(tmp_path: Path, command: list[str]) -> None:
    completed = run_cli(tmp_path, *command, GQL_CHECKOUT_ENV="production")

    assert completed.returncode != 0
    assert completed.stdout == ""
    assert "GQL_CHECKOUT_HCP_SECRET" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "cli.db").exists(), "nothing may run without the secret"


def test_production_runs_with_an_hcp_secret(tmp_path: Path) -> None:
    completed = run_cli(
        tmp_path, "migrate", GQL_CHECKOUT_ENV="production", GQL_CHECKOUT_HCP_SECRET="s" * 40
    )

    assert completed.returncode == 0, completed.stderr
