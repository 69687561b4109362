"""Section 8 as a property: random sequences of operations against the real service.

Hypothesis drives CheckoutService on a fresh SQLite file per example and compares every
answer with a small model of the contract. The rules are a checkout's events (start,
retry with a child session, pay, decline, abandon, the merchant closing it, time
passing) plus writes on any session, by its merchant or another, and reads. After each
step the stored sessions must satisfy the lifecycle's invariants and equal the model.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import shutil
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from gql_checkout.app import create_app
from gql_checkout.domain.checkout_sessions import (
    CheckoutSession,
    CheckoutSessionStatus,
    NewCheckoutSession,
    PaymentMethod,
)
from gql_checkout.domain.errors import (
    Forbidden,
    GatewayError,
    InvalidStateTransition,
    SessionCanceled,
    SessionExpired,
    ValidationError,
)
from gql_checkout.domain.webhooks import EVENT_TYPE_OF_STATUS
from gql_checkout.settings import Environment, Settings
from gql_checkout.storage.migrate import migrate
from gql_checkout.storage.tables import CheckoutSessionRow
from gql_checkout.storage.webhook_tables import events
from testkit.clock import Clock
from testkit.merchants import TEST_SECRET

INITIATED = CheckoutSessionStatus.INITIATED
COMPLETED = CheckoutSessionStatus.COMPLETED
FAILED = CheckoutSessionStatus.FAILED
CANCELED = CheckoutSessionStatus.CANCELED
# The refusals the contract names for writes; any other exception fails the test.
REFUSALS = (InvalidStateTransition, ValidationError, Forbidden)
# Half short lives, half an hour: children expiring under a living parent come up often.
EXPIRES_IN = st.integers(min_value=60, max_value=300) | st.just(3600)
ADVANCE = st.integers(min_value=1, max_value=120)
PAYMENT_METHODS = st.builds(
    PaymentMethod,
    type=st.sampled_from(["CARD", "WALLET"]),
    brand=st.sampled_from([None, "VISA"]),
    last4=st.sampled_from([None, "4242"]),
)
CLOSINGS = st.sampled_from(["cancel", "fail", "complete"])
ANY_SESSION_ACTIONS = st.sampled_from(
    ["cancel", "fail", "complete", "read"]
    + [f"another merchant {write}" for write in ("cancels", "fails", "completes", "adds a child")]
)
T = TypeVar("T")


def new_session(*, expires_in: int, parent_id: UUID | None = None) -> NewCheckoutSession:
    return NewCheckoutSession(
        amount=1000,
        currency="EUR",
        merchant_reference=None,
        expires_in_seconds=expires_in,
        parent_session_id=parent_id,
        idempotency_key=None,
    )


@dataclass
class Modelled:
    """What the contract says a session is."""

    status: CheckoutSessionStatus
    expires_at: datetime
    parent_id: UUID | None
    current_child_id: UUID | None = None
    payment_method: PaymentMethod | None = None

    def is_open(self, now: datetime) -> bool:
        return self.status is INITIATED and now < self.expires_at


@dataclass
class Snapshot:
    sessions: dict[UUID, CheckoutSession] = field(default_factory=dict)

    def children_of(self, parent_id: UUID) -> list[CheckoutSession]:
        return [s for s in self.sessions.values() if s.parent_id == parent_id]


def _settings(database: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{database}",
        environment=Environment.DEVELOPMENT,
        hcp_secrets=(TEST_SECRET,),
    )


@functools.cache
def _template_database() -> tuple[Path, UUID, UUID]:
    """A migrated database with two merchants, made once; each example starts from a copy."""
    directory = Path(tempfile.mkdtemp(prefix="gql-checkout-lifecycle-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    database = directory / "template.db"

    async def build() -> tuple[UUID, UUID]:
        services = create_app(_settings(database), clock=Clock()).state.container
        try:
            await migrate(services.engine)
            merchant, _key = await services.merchants.create_merchant(name="Acme")
            other, _key = await services.merchants.create_merchant(name="Other")
        finally:
            await services.stop()
        return merchant.id, other.id

    merchant_id, other_merchant_id = asyncio.run(build())
    return database, merchant_id, other_merchant_id


class CheckoutLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # One SQLite file and one event loop per example.
        template, self.merchant_id, self.other_merchant_id = _template_database()
        self._directory = tempfile.TemporaryDirectory()
        database = Path(self._directory.name) / "lifecycle.db"
        shutil.copyfile(template, database)
        self._runner = asyncio.Runner()
        self.clock = Clock()
        services = create_app(_settings(database), clock=self.clock).state.container
        self.services = services
        self.engine = services.engine
        self.service = services.checkout
        self.model: dict[UUID, Modelled] = {}  # in creation order
        self.first_seen_terminal: dict[UUID, CheckoutSession] = {}
        self.last_stored = Snapshot()  # as the invariant last loaded it

    def teardown(self) -> None:
        self.run(self.services.stop())
        self._runner.close()
        self._directory.cleanup()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coroutine)

    @property
    def now(self) -> datetime:
        return self.clock.now

    def stored(self) -> Snapshot:
        async def load() -> dict[UUID, CheckoutSession]:
            async with self.engine.connect() as conn:
                ids = (await conn.execute(select(CheckoutSessionRow.id))).scalars().all()
            sessions: dict[UUID, CheckoutSession] = await self.service.get_checkout_sessions(
                checkout_session_ids=ids
            )
            return sessions

        return Snapshot(self.run(load()))

    def attempt(self, write: Coroutine[Any, Any, T], *, refused_with: str | None) -> T | None:
        """Runs a write. A refusal must be the model's (``refused_with``) and must leave every
        session as it was; an acceptance must be expected (``refused_with`` None)."""
        try:
            result = self.run(write)
        except REFUSALS as error:
            refusal: GatewayError = error
        else:
            assert refused_with is None, f"accepted, but expected {refused_with}"
            return result
        explained = f"{refusal.code}: {refusal.detail}"
        assert refusal.code == refused_with, f"refused ({explained}), expected {refused_with}"
        assert self.stored() == self.last_stored, f"refused ({explained}) but changed state"
        return None

    # --- the model: which session a role names, what the contract answers -------------------

    def _newest(self, *, children: bool) -> UUID | None:
        ids = [i for i, s in self.model.items() if (s.parent_id is not None) is children]
        return ids[-1] if ids else None

    def _child_refusal(self, parent: Modelled) -> str | None:
        if parent.parent_id is not None:
            return ValidationError.code
        current = self.model[parent.current_child_id] if parent.current_child_id else None
        if not parent.is_open(self.now) or (current and current.is_open(self.now)):
            return InvalidStateTransition.code
        return None

    def _close_in_model(self, session_id: UUID, status: CheckoutSessionStatus) -> None:
        self.model[session_id].status = status
        if status in (CANCELED, COMPLETED):
            for child in self.model.values():
                if child.parent_id == session_id and child.status is INITIATED:
                    child.status = CANCELED

    # --- writes ----------------------------------------------------------------------------

    def _create(self, *, expires_in: int, parent_id: UUID | None = None) -> None:
        parent = self.model[parent_id] if parent_id else None
        created = self.attempt(
            self.service.create_checkout_session(
                merchant_id=self.merchant_id,
                request=new_session(expires_in=expires_in, parent_id=parent_id),
            ),
            refused_with=self._child_refusal(parent) if parent else None,
        )
        if created is None:
            return
        expires_at = self.now + timedelta(seconds=expires_in)
        if parent is not None:
            expires_at = min(expires_at, parent.expires_at)
            parent.current_child_id = created.id
        self.model[created.id] = Modelled(INITIATED, expires_at, parent_id)

    def _close(self, session_id: UUID, operation: str, method: PaymentMethod) -> None:
        ids = {"merchant_id": self.merchant_id, "checkout_session_id": session_id}
        session = self.model[session_id]
        parent = self.model[session.parent_id] if session.parent_id else None
        refusal = None if session.is_open(self.now) else InvalidStateTransition.code
        if operation == "complete" and parent is not None and parent.status is not INITIATED:
            refusal = InvalidStateTransition.code  # no payment on a checkout that FAILED
        if operation == "cancel":
            write = self.service.cancel_checkout_session(**ids)
        elif operation == "fail":
            write = self.service.fail_checkout_session(**ids, reason="declined")
        else:
            write = self.service.complete_checkout_session(**ids, payment_method=method)
        if self.attempt(write, refused_with=refusal) is None:
            return
        status = {"cancel": CANCELED, "fail": FAILED, "complete": COMPLETED}[operation]
        self._close_in_model(session_id, status)
        if status is COMPLETED:
            session.payment_method = method
            if parent is not None and parent.is_open(self.now):
                parent.payment_method = method
                self._close_in_model(session.parent_id, COMPLETED)  # type: ignore[arg-type]

    # --- rules: a checkout's events --------------------------------------------------------

    @initialize(expires_in=EXPIRES_IN)
    def start_checkout(self, expires_in: int) -> None:
        self._create(expires_in=expires_in)

    @precondition(lambda self: not self.model[self._newest(children=False)].is_open(self.now))
    @rule(expires_in=EXPIRES_IN)
    def start_next_checkout(self, expires_in: int) -> None:
        self._create(expires_in=expires_in)

    @rule(expires_in=EXPIRES_IN, of=st.sampled_from(["checkout"] * 3 + ["child session"]))
    def retry_with_a_child_session(self, expires_in: int, of: str) -> None:
        """A child of the newest checkout, or (refused) of the newest child session."""
        parent_id = self._newest(children=of == "child session")
        self._create(expires_in=expires_in, parent_id=parent_id or self._newest(children=False))

    @precondition(lambda self: self._newest(children=True) is not None)
    @rule(operation=CLOSINGS, method=PAYMENT_METHODS)
    def customer_closes_the_child_session(self, operation: str, method: PaymentMethod) -> None:
        self._close(self._newest(children=True), operation, method)  # type: ignore[arg-type]

    @rule(operation=CLOSINGS, method=PAYMENT_METHODS)
    def merchant_closes_the_checkout(self, operation: str, method: PaymentMethod) -> None:
        self._close(self._newest(children=False), operation, method)  # type: ignore[arg-type]

    @rule(seconds=ADVANCE)
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    # --- one rule for any session, old ones included ------------------------------------------

    @rule(data=st.data(), action=ANY_SESSION_ACTIONS, method=PAYMENT_METHODS)
    def act_on_any_session(self, data: st.DataObject, action: str, method: PaymentMethod) -> None:
        session_id = data.draw(st.sampled_from(list(self.model)), label="session")
        if action == "read":
            self._read(session_id)
        elif action.startswith("another merchant "):
            self._write_as_another_merchant(session_id, action.removeprefix("another merchant "))
        else:
            self._close(session_id, action, method)

    def _write_as_another_merchant(self, session_id: UUID, operation: str) -> None:
        ids = {"merchant_id": self.other_merchant_id, "checkout_session_id": session_id}
        if operation == "cancels":
            write = self.service.cancel_checkout_session(**ids)
        elif operation == "fails":
            write = self.service.fail_checkout_session(**ids, reason=None)
        elif operation == "completes":
            write = self.service.complete_checkout_session(
                **ids, payment_method=PaymentMethod(type="CARD")
            )
        else:
            write = self.service.create_checkout_session(
                merchant_id=self.other_merchant_id,
                request=new_session(expires_in=3600, parent_id=session_id),
            )
        self.attempt(write, refused_with=Forbidden.code)

    def _read(self, session_id: UUID) -> None:
        modelled = self.model[session_id]
        expected: type[GatewayError] | None = None
        if modelled.status is CANCELED:
            expected = SessionCanceled
        elif modelled.status is INITIATED and not modelled.is_open(self.now):
            expected = SessionExpired
        read = self.service.get_checkout_session(
            merchant_id=self.merchant_id, checkout_session_id=session_id
        )
        try:
            session = self.run(read)
        except (SessionCanceled, SessionExpired) as error:
            answered: type[GatewayError] | None = type(error)
        else:
            answered = None
            assert session.status is modelled.status
        assert answered is expected

    # --- after every step ----------------------------------------------------------------------

    @invariant()
    def contract_holds(self) -> None:
        self.last_stored = stored = self.stored()
        self._check_lifecycle(stored)
        as_stored = {
            i: Modelled(s.status, s.expires_at, s.parent_id, s.current_child_id, s.payment_method)
            for i, s in stored.sessions.items()
        }
        assert as_stored == self.model
        self._check_events(stored)

    def _check_events(self, stored: Snapshot) -> None:
        """Every transition wrote exactly one webhook event, of the state it reached."""

        async def load() -> list[tuple[UUID, str]]:
            async with self.engine.connect() as conn:
                rows = await conn.execute(select(events.c.checkout_session_id, events.c.type))
                return [(row[0], row[1]) for row in rows]

        expected = [
            (session.id, EVENT_TYPE_OF_STATUS[session.status].value)
            for session in stored.sessions.values()
            if session.status is not INITIATED
        ]
        assert sorted(self.run(load())) == sorted(expected)

    def _check_lifecycle(self, stored: Snapshot) -> None:
        for session in stored.sessions.values():
            if session.status is not INITIATED:
                first = self.first_seen_terminal.setdefault(session.id, session)
                assert session == first, "a terminal session changed"
            children = stored.children_of(session.id)
            for child in children:
                assert child.expires_at <= session.expires_at, "a child outlives its parent"
            assert sum(child.is_open(self.now) for child in children) <= 1, "two open children"
            if session.status in (CANCELED, COMPLETED):
                initiated = [child.id for child in children if child.status is INITIATED]
                assert not initiated, f"a {session.status} parent has INITIATED children"
            parent = stored.sessions.get(session.parent_id) if session.parent_id else None
            if session.status is COMPLETED and parent is not None:
                assert (parent.status, parent.payment_method) == (
                    COMPLETED,
                    session.payment_method,
                ), "a COMPLETED child's parent is not COMPLETED with its payment method"


def test_the_lifecycle_keeps_its_invariants() -> None:
    run_state_machine_as_test(
        CheckoutLifecycle,
        settings=settings(
            # More than the usual 40: Hypothesis starts with short, simple runs, and the
            # steps are cheap (a few ms each); 100 examples take 10-20 s.
            max_examples=100,
            stateful_step_count=25,
            deadline=None,
            database=None,
            # No shrinking: it replays whole sequences against SQLite, for up to Hypothesis's
            # five-minute cap. A failing sequence (25 steps at most) is printed as found;
            # its minimal form becomes a plain test like the one below.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_a_child_paid_after_its_parent_failed() -> None:
    """The sequence the machine found: the parent FAILED, then its open child COMPLETED,
    a payment on a checkout that says FAILED. Completing that child is refused now."""
    machine = CheckoutLifecycle()
    try:
        machine.start_checkout(expires_in=3600)
        machine.retry_with_a_child_session(expires_in=3600, of="checkout")
        machine.merchant_closes_the_checkout("fail", PaymentMethod(type="CARD"))
        machine.contract_holds()

        machine.customer_closes_the_child_session("complete", PaymentMethod(type="CARD"))

        machine.contract_holds()
    finally:
        machine.teardown()
