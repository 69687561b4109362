"""Wiring: the engine, the change bus and the services built from settings, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from gql_checkout.bus import LocalBus, create_bus
from gql_checkout.clock import Clock, utc_now
from gql_checkout.db import create_engine, sqlite_file
from gql_checkout.merchants import MerchantService
from gql_checkout.metrics import Metrics
from gql_checkout.ratelimit import RateLimiter
from gql_checkout.service import CheckoutService
from gql_checkout.settings import Settings
from gql_checkout.sqlite_reads import SqliteReads
from gql_checkout.tokens import HcpTokens


@dataclass(frozen=True)
class Services:
    engine: AsyncEngine
    bus: LocalBus
    checkout: CheckoutService
    merchants: MerchantService
    metrics: Metrics
    # The loop-side reader on an SQLite file; None on PostgreSQL or in memory.
    reads: SqliteReads | None = None

    async def start(self) -> None:
        await self.bus.start()

    async def stop(self) -> None:
        await self.bus.stop()
        if self.reads is not None:
            self.reads.close()
        await self.engine.dispose()


def build_services(settings: Settings, *, clock: Clock = utc_now) -> Services:
    engine = create_engine(settings.database_url)
    bus = create_bus(engine)
    reads = SqliteReads(engine) if sqlite_file(engine.url) else None
    return Services(
        engine=engine,
        bus=bus,
        checkout=CheckoutService(
            engine=engine,
            tokens=HcpTokens(settings.hcp_secrets),
            bus=bus,
            clock=clock,
            reads=reads,
        ),
        merchants=MerchantService(
            engine=engine,
            limiter=RateLimiter(
                reads=settings.limits.reads_per_client, writes=settings.limits.writes_per_merchant
            ),
            clock=clock,
        ),
        metrics=Metrics(engine),
        reads=reads,
    )
