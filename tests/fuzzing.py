"""What the fuzz tests share: an app without rate limits on a seeded SQLite file.

Schemathesis calls the app from its own event loop thread, so the seed is written in a
loop of its own first and the engine's connections are closed before the fuzzing starts.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, replace
from enum import Enum, auto

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.domain.checkout_sessions import CheckoutSession, NewCheckoutSession, PaymentMethod
from gql_checkout.services.checkout_sessions import CheckoutService
from gql_checkout.services.merchants import MerchantService
from gql_checkout.settings import Settings
from gql_checkout.storage.migrate import migrate
from testkit.clock import Clock
from testkit.merchants import MerchantCredentials

# Small and bounded: each module runs in seconds. No example database: a failure is
# reported with its reproducing input, and the working tree stays clean.
FUZZ_SETTINGS = settings(
    # GQL_CHECKOUT_FUZZ_EXAMPLES=2000 for a longer hunt.
    max_examples=int(os.environ.get("GQL_CHECKOUT_FUZZ_EXAMPLES", "60")),
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)


# Ids that look like UUIDs, as a client might get them wrong: from_regex without
# fullmatch also yields a trailing newline, which a `$` anchor lets through.
CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
UUID_LIKE = st.from_regex(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")


class Kind(Enum):
    """The states the seeded sessions of ``Seed.merchant`` are in."""

    OPEN = auto()
    EXPIRED = auto()
    COMPLETED = auto()
    FAILED = auto()
    CANCELED = auto()
    PARENT = auto()  # INITIATED, with an open child
    CHILD = auto()  # that open child
    PAID_PARENT = auto()  # COMPLETED through its child
    PAID_CHILD = auto()

    @property
    def read_status(self) -> int:
        """What its merchant's read answers (the contract's table)."""
        return {Kind.EXPIRED: 401, Kind.CANCELED: 410}.get(self, 200)

    @property
    def is_open(self) -> bool:
        return self in {Kind.OPEN, Kind.PARENT, Kind.CHILD}


@dataclass(frozen=True)
class Seed:
    merchant: MerchantCredentials
    other_merchant: MerchantCredentials
    sessions: dict[Kind, CheckoutSession]
    # A session of other_merchant: reading it as merchant is 403 FORBIDDEN.
    foreign_session: CheckoutSession
    hcp_tokens: dict[str, str]

    @property
    def session_ids(self) -> list[str]:
        return [str(session.id) for session in self.sessions.values()] + [
            str(self.foreign_session.id)
        ]

    def kind_of(self, checkout_session_id: str) -> Kind | None:
        for kind, session in self.sessions.items():
            if str(session.id) == checkout_session_id:
                return kind
        return None


def unlimited(settings: Settings) -> Settings:
    """Rate limits off: the fuzzer's volume is not what is under test here."""
    return replace(
        settings, limits=replace(settings.limits, reads_per_client=None, writes_per_merchant=None)
    )


def seeded_app(settings: Settings, clock: Clock) -> tuple[Starlette, Seed]:
    app = create_app(unlimited(settings), clock=clock)
    seed = asyncio.run(_seed(app, clock))
    return app, seed


def _new(*, parent: CheckoutSession | None = None, expires_in: int = 3600) -> NewCheckoutSession:
    return NewCheckoutSession(
        amount=4990,
        currency="EUR",
        merchant_reference="order-42",
        expires_in_seconds=expires_in,
        parent_session_id=parent.id if parent else None,
        idempotency_key=None,
    )


async def _seed(app: Starlette, clock: Clock) -> Seed:
    engine = app.state.container.engine
    checkout: CheckoutService = app.state.container.checkout
    merchants: MerchantService = app.state.container.merchants
    try:
        await migrate(engine)
        merchant, api_key = await merchants.create_merchant(name="Fuzz")
        other, other_key = await merchants.create_merchant(name="Other")

        async def create(
            parent: CheckoutSession | None = None, expires_in: int = 3600
        ) -> CheckoutSession:
            return await checkout.create_checkout_session(
                merchant_id=merchant.id, request=_new(parent=parent, expires_in=expires_in)
            )

        card = PaymentMethod(type="CARD", brand="VISA", last4="4242")
        expired = await create(expires_in=60)
        clock.advance(seconds=120)
        sessions = {Kind.EXPIRED: expired}
        for kind in (Kind.OPEN, Kind.COMPLETED, Kind.FAILED, Kind.CANCELED, Kind.PARENT):
            sessions[kind] = await create()
        sessions[Kind.CHILD] = await create(parent=sessions[Kind.PARENT])
        paid_parent = await create()
        paid_child = await create(parent=paid_parent)
        ids = {"merchant_id": merchant.id}
        await checkout.complete_checkout_session(
            **ids, checkout_session_id=sessions[Kind.COMPLETED].id, payment_method=card
        )
        await checkout.fail_checkout_session(
            **ids, checkout_session_id=sessions[Kind.FAILED].id, reason="declined"
        )
        await checkout.cancel_checkout_session(
            **ids, checkout_session_id=sessions[Kind.CANCELED].id
        )
        await checkout.complete_checkout_session(
            **ids, checkout_session_id=paid_child.id, payment_method=card
        )
        sessions[Kind.PAID_PARENT] = paid_parent
        sessions[Kind.PAID_CHILD] = paid_child
        foreign = await checkout.create_checkout_session(merchant_id=other.id, request=_new())
        return Seed(
            merchant=MerchantCredentials(merchant_id=str(merchant.id), api_key=api_key),
            other_merchant=MerchantCredentials(merchant_id=str(other.id), api_key=other_key),
            sessions=sessions,
            foreign_session=foreign,
            hcp_tokens={
                str(session.id): checkout.hcp_token(session)
                for session in [*sessions.values(), foreign]
            },
        )
    finally:
        # The writer's and the pool's connections belong to this loop; the fuzzer's loop
        # opens its own.
        await app.state.container.writes.close()
        await engine.dispose()
