"""The composition root: the engine, the change bus, the readers and the services, built
from settings in one place."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from gql_checkout.domain.clock import Clock, utc_now
from gql_checkout.http.metrics import Metrics
from gql_checkout.services.checkout_sessions import CheckoutService
from gql_checkout.services.hcp_tokens import HcpTokens
from gql_checkout.services.merchants import MerchantService
from gql_checkout.services.rate_limits import RateLimiter
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

    async def start(self) -> None:
        await self.bus.start()

    async def stop(self) -> None:
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
        metrics=Metrics(engine),
    )
