"""Lists against a brute-force model, cursors as Hypothesis finds them, the index each
filter's page reads (EXPLAIN), and migration 0004 from 0003 with data in it."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.domain.checkout_sessions import CheckoutSession, CheckoutSessionStatus
from gql_checkout.domain.errors import ValidationError
from gql_checkout.domain.listing import (
    PageRequest,
    Position,
    SessionFilter,
    decode_cursor,
    encode_cursor,
)
from gql_checkout.services.checkout_sessions import CheckoutService
from gql_checkout.settings import Settings
from gql_checkout.storage import repository
from gql_checkout.storage.listing import page_statement
from gql_checkout.storage.migrate import migrate, run_alembic
from testkit.clock import Clock
from testkit.documents import create_session, graphql
from testkit.merchants import MerchantCredentials

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
STATUSES = list(CheckoutSessionStatus)
REFERENCES = [None, "A-1", "A-2"]

# --- cursors -------------------------------------------------------------------------------

moments = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)
).map(lambda moment: moment.replace(tzinfo=UTC))


@given(moments, st.uuids())
def test_a_cursor_decodes_to_the_position_it_encodes(
    moment: datetime, session_id: uuid.UUID
) -> None:
    position = Position(moment, session_id)

    cursor = encode_cursor(position)

    assert decode_cursor(cursor) == position
    assert len(cursor) == 32


@given(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ ", max_size=40
    )
)
def test_any_other_text_is_a_validation_error_or_a_canonical_cursor(text_: str) -> None:
    if _decodes(text_):
        assert encode_cursor(decode_cursor(text_)) == text_
    else:
        with pytest.raises(ValidationError) as raised:
            decode_cursor(text_)
        assert [e.field for e in raised.value.field_errors] == ["after"]


def _decodes(text_: str) -> bool:
    try:
        decode_cursor(text_)
    except ValidationError:
        return False
    return True


# --- filters against a brute-force model --------------------------------------------------


def _dataset(merchants: list[uuid.UUID], seed: int) -> list[CheckoutSession]:
    """Sessions of every state, with many ties in created_at, some of them children."""
    rng = random.Random(seed)  # noqa: S311 - test data, not a secret
    sessions: list[CheckoutSession] = []
    for _ in range(80):
        merchant_id = rng.choice(merchants)
        created_at = NOW - timedelta(seconds=rng.randrange(0, 20) * 30)
        parents = [s for s in sessions if s.merchant_id == merchant_id and s.parent_id is None]
        parent = rng.choice(parents) if parents and rng.random() < 0.3 else None
        sessions.append(
            CheckoutSession(
                id=uuid.uuid4(),
                merchant_id=merchant_id,
                status=rng.choice(STATUSES),
                amount=100,
                currency="EUR",
                merchant_reference=rng.choice(REFERENCES),
                created_at=created_at,
                expires_at=created_at + timedelta(seconds=rng.choice([60, 300, 3600])),
                updated_at=created_at,
                version=1,
                payment_method=None,
                failure_reason=None,
                parent_id=parent.id if parent else None,
                current_child_id=None,
                hcp_token=None,
            )
        )
    return sessions


def _matches(session: CheckoutSession, wanted: SessionFilter, now: datetime) -> bool:
    return (
        (wanted.statuses is None or session.status in wanted.statuses)
        and (wanted.is_expired is None or session.is_expired(now) is wanted.is_expired)
        and (wanted.created_after is None or session.created_at >= wanted.created_after)
        and (wanted.created_before is None or session.created_at < wanted.created_before)
        and (
            wanted.merchant_reference is None
            or session.merchant_reference == wanted.merchant_reference
        )
        and (wanted.parent_session_id is None or session.parent_id == wanted.parent_session_id)
    )


instants = st.integers(min_value=-25, max_value=5).map(lambda n: NOW + timedelta(seconds=n * 30))


@st.composite
def filters(draw: st.DrawFn, parent_ids: list[uuid.UUID]) -> SessionFilter:
    return SessionFilter(
        statuses=draw(st.none() | st.frozensets(st.sampled_from(STATUSES))),
        is_expired=draw(st.none() | st.booleans()),
        created_after=draw(st.none() | instants),
        created_before=draw(st.none() | instants),
        merchant_reference=draw(st.none() | st.sampled_from(["A-1", "A-2", "none"])),
        parent_session_id=draw(st.none() | st.sampled_from([*parent_ids, uuid.uuid4()])),
    )


@pytest.fixture
def listing_service(settings: Settings) -> Iterator[tuple[asyncio.Runner, CheckoutService]]:
    runner = asyncio.Runner()
    app = create_app(settings, clock=Clock())
    runner.run(migrate(app.state.container.engine))
    yield runner, app.state.container.checkout
    runner.run(app.state.container.engine.dispose())
    runner.close()


def test_pages_list_what_a_brute_force_filter_finds(
    listing_service: tuple[asyncio.Runner, CheckoutService],
) -> None:
    runner, service = listing_service
    engine: AsyncEngine = service._engine
    merchants = [uuid.uuid4(), uuid.uuid4()]

    async def seed() -> list[CheckoutSession]:
        sessions = _dataset(merchants, seed=18)
        async with engine.begin() as conn:
            for merchant_id in merchants:
                await conn.execute(
                    repository.merchants.insert().values(
                        id=merchant_id,
                        name=str(merchant_id),
                        api_key_hash=merchant_id.hex * 2,
                        appearance={},
                        card_categories=[],
                        created_at=NOW,
                    )
                )
            for session in sessions:
                await repository.insert_session(
                    conn, session=session, idempotency_key=None, idempotency_fingerprint=None
                )
        return sessions

    sessions = runner.run(seed())
    mine = [s for s in sessions if s.merchant_id == merchants[0]]
    parent_ids = sorted({s.parent_id for s in mine if s.parent_id is not None})

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(filters(parent_ids), st.integers(min_value=1, max_value=25), instants)
    def check(wanted: SessionFilter, first: int, now: datetime) -> None:
        service.clock = lambda: now
        expected = sorted(
            (s.id for s in mine if _matches(s, wanted, now)),
            key=lambda i: (next(s.created_at for s in mine if s.id == i), i),
            reverse=True,
        )
        listed: list[uuid.UUID] = []
        after = None
        while True:
            page = runner.run(
                service.list_checkout_sessions(
                    merchant_id=merchants[0],
                    request=PageRequest(first=first, after=after, filter=wanted),
                )
            )
            listed += [s.id for s in page.sessions]
            assert len(page.sessions) <= first
            if not page.has_next_page:
                break
            last = page.sessions[-1]
            after = Position(last.created_at, last.id)
        assert listed == expected

    check()


# --- EXPLAIN: each filter's page is a range scan of its index, in list order --------------

PLANS = {
    "none": (SessionFilter(), "ix_checkout_sessions_merchant_created"),
    "status": (
        SessionFilter(statuses=frozenset({CheckoutSessionStatus.FAILED})),
        "ix_checkout_sessions_merchant_status_created",
    ),
    "statuses": (
        SessionFilter(
            statuses=frozenset({CheckoutSessionStatus.FAILED, CheckoutSessionStatus.CANCELED})
        ),
        "ix_checkout_sessions_merchant_status_created",
    ),
    "expired": (SessionFilter(is_expired=True), "ix_checkout_sessions_merchant_status_created"),
    "created": (
        SessionFilter(created_after=NOW - timedelta(days=1), created_before=NOW),
        "ix_checkout_sessions_merchant_created",
    ),
    "reference": (
        SessionFilter(merchant_reference="A-1001"),
        "ix_checkout_sessions_merchant_reference_created",
    ),
    "parent": (
        SessionFilter(parent_session_id=uuid.uuid4()),
        "ix_checkout_sessions_parent_created",
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(PLANS))
async def test_each_filter_reads_its_index_in_list_order(app: Starlette, name: str) -> None:
    wanted, index = PLANS[name]
    engine: AsyncEngine = app.state.container.engine
    postgres = engine.dialect.name == "postgresql"
    after = Position(NOW, uuid.uuid4())
    statement = page_statement(
        uuid.uuid4(), PageRequest(first=20, after=after, filter=wanted), now=NOW, limit=21
    )

    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
        sent.append((sql, parameters))

    async with engine.connect() as conn:
        if postgres:
            # An empty table: without this PostgreSQL would rightly read it whole.
            for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                await conn.execute(text(f"SET {setting} = off"))
        # The statement as the driver gets it (its parameters converted), then explained.
        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        try:
            await conn.execute(statement)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", capture)
        ((sql, parameters),) = sent
        explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
        rows = (await conn.exec_driver_sql(explain + sql, parameters)).all()
    plan = "\n".join(str(row[-1]) for row in rows)

    assert index in plan, plan
    if postgres:
        sorts = plan.count("Sort")
        assert "Seq Scan on checkout_sessions" not in plan, plan
    else:
        sorts = plan.count("USE TEMP B-TREE FOR ORDER BY")
        assert "SCAN checkout_sessions\n" not in plan + "\n", plan
    if name == "statuses":
        # One range scan per status, each stopping after a page's rows; only those rows
        # (at most a page per status) are sorted to merge them.
        assert plan.count(index) == 2, plan
    else:
        assert sorts == 0, plan


# --- migration 0004 -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_0004_upgrades_sessions_of_0003_and_comes_back_down(
    app: Starlette, client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials
) -> None:
    # given: sessions stored by revision 0003
    engine: AsyncEngine = app.state.container.engine
    parent = await create_session(client, merchant.api_key, merchantReference="A-1001")
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])
    await run_alembic(engine, command.downgrade, "0003")
    async with engine.connect() as conn:
        at_0003 = (await conn.execute(text("SELECT * FROM checkout_sessions ORDER BY id"))).all()
        columns = list((await conn.execute(text("SELECT * FROM checkout_sessions"))).keys())
    assert "metadata" not in columns

    # when
    await migrate(engine)

    # then: every row as it was, with metadata {} and no recovery; lists and metadata work
    async with engine.connect() as conn:
        at_head = (await conn.execute(text("SELECT * FROM checkout_sessions ORDER BY id"))).all()
    assert [row[: len(columns)] for row in at_head] == at_0003
    assert [row[len(columns) :] for row in at_head] == [("{}", None)] * 2 or all(
        row[len(columns) :] in (({}, None), ("{}", None)) for row in at_head
    )
    clock.advance(seconds=1)
    tagged = await create_session(client, merchant.api_key, metadata={"cart": "c-7"})
    body = await graphql(
        client,
        "query { checkoutSessions { edges { node { id metadata } } } }",
        {},
        merchant.write_headers,
    )
    listed = [edge["node"] for edge in body["data"]["checkoutSessions"]["edges"]]
    assert listed[0] == {"id": tagged["id"], "metadata": {"cart": "c-7"}}
    assert {node["id"] for node in listed[1:]} == {parent["id"], child["id"]}

    await run_alembic(engine, command.downgrade, "0003")
    async with engine.connect() as conn:
        down = (await conn.execute(text("SELECT * FROM checkout_sessions"))).all()
    assert len(down) == 3
