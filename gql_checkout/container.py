"""The composition root: the engine, the change bus, the readers and the services, built
from settings in one place."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from gql_checkout.domain.clock import Clock, utc_now
from gql_checkout.domain.webhook_urls import UrlPolicy
from gql_checkout.http.metrics import Metrics
from gql_checkout.services.checkout_sessions import CheckoutService
from gql_checkout.services.hcp_tokens import HcpTokens
from gql_checkout.services.merchants import MerchantService
from gql_checkout.services.rate_limits import RateLimiter
from gql_checkout.services.webhook_dispatcher import Dispatcher
from gql_checkout.services.webhook_secrets import SecretBox
from gql_checkout.services.webhooks import WebhookService
from gql_checkout.settings import Settings
from gql_checkout.storage.bus import LocalBus, create_bus
from gql_checkout.storage.engine import create_engine
from gql_checkout.storage.reads import Reads, create_reads
from gql_checkout.storage.writes import Writes, create_writes


@dataclass(frozen=True)
class Container:
    engine: AsyncEngine
    bus: LocalBus
    reads: Reads
    writes: Writes
    checkout: CheckoutService
    merchants: MerchantService
    metrics: Metrics
    webhooks: WebhookService
    dispatcher: Dispatcher

    async def start(self, *, deliver_webhooks: bool = False) -> None:
        """Connects the bus; with ``deliver_webhooks``, runs this process's dispatcher."""
        await self.bus.start()
        if deliver_webhooks:
            self.bus.watch_all(self.dispatcher.wake)
            await self.dispatcher.start()

    async def stop(self) -> None:
        await self.dispatcher.stop()
        await self.bus.stop()
        await self.writes.close()
        self.reads.close()
        await self.engine.dispose()


def build_container(settings: Settings, *, clock: Clock = utc_now) -> Container:
    engine = create_engine(settings.database_url)
    bus = create_bus(engine)
    reads = create_reads(engine)
    # On SQLite one writer per process, its writes committed in groups (storage/writes.py).
    writes = create_writes(engine)
    # One set of keys: sessions sign and nginx's gate verifies with it, and reads accept
    # a session's token as their merchant's credential.
    tokens = HcpTokens(settings.hcp_secrets)
    # Webhook secrets are sealed with the hcpToken secrets: one set of server keys.
    secret_box = SecretBox(settings.hcp_secrets)
    url_policy = UrlPolicy.for_environment(
        production=settings.is_production, allow_private=settings.webhooks.allow_private_urls
    )
    dispatcher = Dispatcher(
        engine=engine,
        writes=writes,
        config=settings.webhooks,
        secret_box=secret_box,
        url_policy=url_policy,
        clock=clock,
    )
    return Container(
        engine=engine,
        bus=bus,
        reads=reads,
        writes=writes,
        checkout=CheckoutService(
            engine=engine,
            tokens=tokens,
            bus=bus,
            clock=clock,
            reads=reads,
            writes=writes,
        ),
        merchants=MerchantService(
            engine=engine,
            reads=reads,
            writes=writes,
            limiter=RateLimiter(
                reads=settings.limits.reads_per_client, writes=settings.limits.writes_per_merchant
            ),
            tokens=tokens,
            merchant_header=settings.merchant_header,
            clock=clock,
        ),
        metrics=Metrics(engine, webhooks=dispatcher.stats),
        webhooks=WebhookService(
            engine=engine,
            writes=writes,
            secret_box=secret_box,
            url_policy=url_policy,
            clock=clock,
            wake=dispatcher.wake,
        ),
        dispatcher=dispatcher,
    )
