"""Fixtures: a real SQLite file per test, the app through httpx's ASGITransport, a clock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import hypothesis.core
import psycopg
import pytest
from hypothesis.vendor import pretty
from sqlalchemy import event
from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.services.checkout_sessions import CheckoutService
from gql_checkout.settings import Environment, Settings
from gql_checkout.storage.migrate import migrate
from gql_checkout.storage.sqlite_reads import SqliteReads
from gql_checkout.storage.writes import SqliteWriter
from testkit.clock import Clock
from testkit.merchants import TEST_SECRET, MerchantCredentials
from testkit.postgres import postgres_cluster

if TYPE_CHECKING:
    from testkit.server import LiveServer


# Schemathesis's pytest plugin swaps Hypothesis's printer, for every test of the session,
# for one that prints nothing (a speed-up for its own runs). Put it back: a failing
# property test must show its inputs. (Schemathesis patches once, so this sticks.)
hypothesis.core.RepresentationPrinter = pretty.RepresentationPrinter  # type: ignore[attr-defined]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    with postgres_cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every app test runs twice: on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'gql_checkout.db'}"
        return
    server: str = request.getfixturevalue("postgres_server")
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin_url = server.replace("postgresql+asyncpg", "postgresql") + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{server}/{name}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        environment=Environment.DEVELOPMENT,
        hcp_secrets=(TEST_SECRET,),
    )


@pytest.fixture
async def app(settings: Settings, clock: Clock) -> AsyncIterator[Starlette]:
    app = create_app(settings, clock=clock)
    await migrate(app.state.container.engine)
    yield app
    await app.state.container.stop()


@pytest.fixture
def service(app: Starlette) -> CheckoutService:
    service: CheckoutService = app.state.container.checkout
    return service


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _new_merchant(app: Starlette, name: str) -> MerchantCredentials:
    merchant, api_key = await app.state.container.merchants.create_merchant(name=name)
    return MerchantCredentials(merchant_id=str(merchant.id), api_key=api_key)


@pytest.fixture
async def merchant(app: Starlette) -> MerchantCredentials:
    return await _new_merchant(app, "Acme")


@pytest.fixture
async def other_merchant(app: Starlette) -> MerchantCredentials:
    return await _new_merchant(app, "Other")


_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


class StatementCounter:
    """Counts the SQL statements the app sends (BEGIN/COMMIT are not statements)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith(_TRANSACTION_CONTROL):  # SQLite's writer sends them
            self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)

    def reset(self) -> None:
        self.statements.clear()


@pytest.fixture
def statements(app: Starlette) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    services = app.state.container
    engines = [services.engine.sync_engine]
    if isinstance(services.writes, SqliteWriter):  # its own engine
        engines.append(services.writes.engine.sync_engine)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", counter)
    if isinstance(services.reads, SqliteReads):  # on the loop: sqlite3 traces them
        services.reads.trace(counter.statements.append)
    yield counter
    for engine in engines:
        event.remove(engine, "before_cursor_execute", counter)
    if isinstance(services.reads, SqliteReads):
        services.reads.trace(None)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A real `gql-checkout serve` process on a free port, with its own SQLite file."""
    # Imported here, not at the top: testkit.server imports this module's secret and types.
    from testkit.server import running_server

    with running_server(tmp_path) as server:
        yield server
