"""An app whose dispatcher runs (short retries, fast polls), and a real receiver process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.services.webhook_config import WebhookConfig
from gql_checkout.settings import Settings
from gql_checkout.storage.migrate import migrate
from testkit.clock import Clock
from testkit.merchants import MerchantCredentials
from testkit.receiver import Receiver, running_receiver

# Retries a test can wait out; the sweep and the polls fast enough not to slow it down.
TEST_WEBHOOKS = WebhookConfig(
    timeout_seconds=5.0,
    retry_schedule=(0.1, 0.1),
    expiry_sweep_seconds=0.2,
    poll_seconds=0.05,
)


class RunningClock(Clock):
    """The wall clock, moved forward by the test: retries fall due as time passes, and
    ``advance`` skips ahead (an expiry, a secret's 24 hours)."""

    def __init__(self) -> None:
        super().__init__()
        self._offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, **delta: float) -> None:
        self._offset += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return RunningClock()


@pytest.fixture(scope="session")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    with running_receiver(tmp_path_factory.mktemp("receiver")) as running:
        yield running


@pytest.fixture
def hook_path() -> str:
    """A path of the receiver of this test alone."""
    return f"/hooks/{uuid.uuid4().hex}"


@pytest.fixture
def webhook_settings(settings: Settings) -> Settings:
    return replace(settings, webhooks=TEST_WEBHOOKS)


@pytest.fixture
async def app(webhook_settings: Settings, clock: Clock) -> AsyncIterator[Starlette]:
    """The app with its dispatcher running, as `serve` runs it."""
    app = create_app(webhook_settings, clock=clock)
    container = app.state.container
    await migrate(container.engine)
    await container.start(deliver_webhooks=True)
    yield app
    await container.stop()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def headers(merchant: MerchantCredentials) -> dict[str, str]:
    return merchant.write_headers
