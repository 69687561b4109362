"""The ledger of acknowledged writes, and the checks that every one of them survived.

A write is acknowledged when the server answered it without errors: a create that
returned an id, a transition that returned its new status. A write whose answer never
came (timeout, reset connection, a killed server) is *uncertain*: it may or may not have
happened, so the checks allow both outcomes for it.

`verify()` reads every recorded session back through the REST shim and `judge()` compares
what is stored with what was acknowledged, allowing only the changes the contract's
propagation rules make (section 8). `check_database()` reads the rows themselves and
checks the invariants a half-applied transaction would break.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import httpx
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import create_async_engine

from gql_checkout.storage.tables import CheckoutSessionRow

INITIATED = "INITIATED"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELED = "CANCELED"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELED})
# A parent that becomes one of these cancels its INITIATED children in the same transaction.
CLOSES_CHILDREN = frozenset({COMPLETED, CANCELED})


@dataclass
class SessionRecord:
    session_id: str
    parent_id: str | None
    created_at: float  # time.monotonic() when the create was acknowledged
    status: str | None = None  # the acknowledged transition, if any
    status_at: float | None = None
    payment_method: dict[str, Any] | None = None
    uncertain: set[str] = field(default_factory=set)  # transitions without an answer


class Ledger:
    """Every acknowledged create and transition, in the order the answers arrived."""

    def __init__(self) -> None:
        self.sessions: dict[str, SessionRecord] = {}
        self.children: defaultdict[str, list[str]] = defaultdict(list)
        self.transitions = 0
        self.uncertain_creates = 0
        self.uncertain_transitions = 0
        # Acknowledgements that contradict each other (two winners of one session, one
        # idempotency key answered with two sessions): lost writes by another name.
        self.conflicts: list[str] = []

    @property
    def creates(self) -> int:
        return len(self.sessions)

    def created(self, session_id: str, *, parent_id: str | None, at: float) -> SessionRecord:
        existing = self.sessions.get(session_id)
        if existing is not None:  # an idempotent replay answered with the same session
            if existing.parent_id != parent_id:
                self.conflicts.append(
                    f"{session_id}: created as a child of {existing.parent_id}, "
                    f"then returned for a create with parent {parent_id}"
                )
            return existing
        record = SessionRecord(session_id=session_id, parent_id=parent_id, created_at=at)
        self.sessions[session_id] = record
        if parent_id is not None:
            self.children[parent_id].append(session_id)
        return record

    def transitioned(
        self,
        session_id: str,
        status: str,
        *,
        at: float,
        payment_method: dict[str, Any] | None = None,
    ) -> None:
        record = self.sessions[session_id]
        self.transitions += 1
        if record.status is not None:
            self.conflicts.append(
                f"{session_id}: acknowledged {record.status}, later acknowledged {status} too"
            )
            return
        record.status, record.status_at, record.payment_method = status, at, payment_method

    def transition_uncertain(self, session_id: str, status: str) -> None:
        self.uncertain_transitions += 1
        self.sessions[session_id].uncertain.add(status)

    def create_uncertain(self) -> None:
        self.uncertain_creates += 1

    def status_known_before(self, session_id: str, moment: float) -> str | None:
        """The acknowledged status a read sent at ``moment`` must show (None: not known)."""
        record = self.sessions.get(session_id)
        if record is None or record.status_at is None or record.status_at >= moment:
            return None
        return record.status


@dataclass(frozen=True)
class Stored:
    """A session as the server shows it now."""

    status: str
    payment_method: dict[str, Any] | None  # None also where the read does not show it


@dataclass
class Findings:
    sessions_read: int = 0
    lost_creates: list[str] = field(default_factory=list)
    lost_transitions: list[str] = field(default_factory=list)
    broken_invariants: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost_creates or self.lost_transitions or self.broken_invariants or self.unreadable
        )

    def details(self, limit: int = 10) -> list[str]:
        lines: list[str] = []
        for name, items in (
            ("lost create", self.lost_creates),
            ("lost transition", self.lost_transitions),
            ("broken invariant", self.broken_invariants),
            ("unreadable", self.unreadable),
        ):
            lines += [f"{name}: {item}" for item in items[:limit]]
            if len(items) > limit:
                lines.append(f"{name}: ... and {len(items) - limit} more")
        return lines


async def read_stored(
    client: httpx.AsyncClient, *, merchant_id: str, session_id: str
) -> Stored | str | None:
    """The stored state through `GET /v1/checkout-sessions/{id}`: None if not found, a
    description if the read itself failed. 410 and 401 still prove the session exists and
    tell its state: only a CANCELED session is 410, only an expired INITIATED one 401."""
    try:
        response = await client.get(
            f"/v1/checkout-sessions/{session_id}", headers={"X-Merchant-Id": merchant_id}
        )
    except httpx.HTTPError as error:
        return f"{session_id}: {error!r}"
    code = _problem_code(response)
    if response.status_code == 200:
        session = response.json()["data"]["checkoutSession"]
        return Stored(session["checkoutSessionStatus"], session["paymentMethod"])
    if response.status_code == 410 and code == "SESSION_CANCELED":
        return Stored(CANCELED, None)
    if response.status_code == 401 and code == "SESSION_EXPIRED":
        return Stored(INITIATED, None)
    if response.status_code == 404 and code == "SESSION_NOT_FOUND":
        return None
    return f"{session_id}: {response.status_code} {code or response.text[:200]}"


def _problem_code(response: httpx.Response) -> str | None:
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("code"), str):
            return cast(str, body["code"])
    return None


async def verify(
    client: httpx.AsyncClient, *, merchant_id: str, ledger: Ledger, concurrency: int = 16
) -> tuple[Findings, dict[str, Stored]]:
    """Reads every recorded session back and judges it against the ledger."""
    limit = asyncio.Semaphore(concurrency)

    async def read(session_id: str) -> tuple[str, Stored | str | None]:
        async with limit:
            return session_id, await read_stored(
                client, merchant_id=merchant_id, session_id=session_id
            )

    reads = await asyncio.gather(*(read(session_id) for session_id in ledger.sessions))
    stored: dict[str, Stored] = {}
    findings = Findings(sessions_read=len(reads))
    unreadable: set[str] = set()
    for session_id, outcome in reads:
        if isinstance(outcome, Stored):
            stored[session_id] = outcome
        elif isinstance(outcome, str):
            findings.unreadable.append(outcome)
            unreadable.add(session_id)
    judge(ledger, stored, findings, unreadable=unreadable)
    return findings, stored


def judge(
    ledger: Ledger,
    stored: dict[str, Stored],
    findings: Findings,
    *,
    unreadable: set[str] | None = None,
) -> None:
    """Compares what is stored with what was acknowledged; a session neither in ``stored``
    nor in ``unreadable`` was not found."""
    findings.broken_invariants += ledger.conflicts
    unreadable = unreadable or set()
    for session_id, record in ledger.sessions.items():
        if session_id in unreadable:
            continue
        now = stored.get(session_id)
        if now is None:
            findings.lost_creates.append(f"{session_id}: acknowledged create, not found")
            continue
        if record.status is not None:
            if now.status != record.status:
                findings.lost_transitions.append(
                    f"{session_id}: acknowledged {record.status}, stored {now.status}"
                )
            elif now.payment_method is not None and now.payment_method != record.payment_method:
                findings.lost_transitions.append(
                    f"{session_id}: acknowledged payment method {record.payment_method}, "
                    f"stored {now.payment_method}"
                )
            continue
        allowed = {INITIATED, *record.uncertain, *_propagated(ledger, stored, record)}
        if now.status not in allowed:
            findings.broken_invariants.append(
                f"{session_id}: stored {now.status}, which no acknowledged or uncertain write "
                f"and no propagation explains (allowed: {sorted(allowed)})"
            )
    findings.broken_invariants += _relation_problems(ledger, stored)


def _propagated(ledger: Ledger, stored: dict[str, Stored], record: SessionRecord) -> set[str]:
    """States another session's transition may have given this one (section 8)."""
    if record.parent_id is not None:
        parent = stored.get(record.parent_id)
        return {CANCELED} if parent is not None and parent.status in CLOSES_CHILDREN else set()
    children = [stored.get(child_id) for child_id in ledger.children.get(record.session_id, [])]
    if any(child is not None and child.status == COMPLETED for child in children):
        return {COMPLETED}
    return set()


def _relation_problems(ledger: Ledger, stored: dict[str, Stored]) -> list[str]:
    problems: list[str] = []
    for parent_id, child_ids in ledger.children.items():
        parent = stored.get(parent_id)
        if parent is None:
            continue
        for child_id in child_ids:
            child = stored.get(child_id)
            if child is None:
                continue
            problems += _pair_problems(
                parent_id=parent_id,
                parent_status=parent.status,
                parent_payment=parent.payment_method,
                child_id=child_id,
                child_status=child.status,
                child_payment=child.payment_method,
            )
    return problems


def _pair_problems(
    *,
    parent_id: str,
    parent_status: str,
    parent_payment: dict[str, Any] | None,
    child_id: str,
    child_status: str,
    child_payment: dict[str, Any] | None,
) -> list[str]:
    """Section 8 between a parent and one child. A FAILED parent leaves its child as it
    is, so that child may still complete on its own (README: session lifecycle)."""
    problems: list[str] = []
    if child_status == COMPLETED:
        if parent_status not in (COMPLETED, FAILED):
            problems.append(
                f"child {child_id} is COMPLETED, its parent {parent_id} {parent_status}"
            )
        elif (
            parent_status == COMPLETED
            and parent_payment is not None
            and child_payment is not None
            and parent_payment != child_payment
        ):
            problems.append(
                f"parent {parent_id} COMPLETED with {parent_payment}, "
                f"its completed child {child_id} with {child_payment}"
            )
    if parent_status in CLOSES_CHILDREN and child_status == INITIATED:
        problems.append(f"parent {parent_id} is {parent_status}, its child {child_id} INITIATED")
    return problems


async def check_database(database_url: str) -> list[str]:
    """The invariants of every stored session, read from the rows themselves."""
    table = cast(Table, CheckoutSessionRow.__table__)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = {row.id: row for row in (await conn.execute(select(table))).all()}
            problems = []
            if engine.dialect.name == "sqlite":
                integrity = (await conn.exec_driver_sql("PRAGMA integrity_check")).scalars().all()
                if list(integrity) != ["ok"]:
                    problems.append(f"SQLite integrity_check: {list(integrity)}")
                foreign = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if foreign:
                    problems.append(f"SQLite foreign_key_check: {[tuple(row) for row in foreign]}")
    finally:
        await engine.dispose()
    return problems + _row_problems(rows)


def _row_problems(rows: dict[Any, Any]) -> list[str]:
    problems: list[str] = []
    now = datetime.now(UTC)
    open_children: defaultdict[Any, list[Any]] = defaultdict(list)
    for row in rows.values():
        problems += _single_row_problems(row)
        if row.current_child_id is not None:
            current = rows.get(row.current_child_id)
            if current is None or current.parent_id != row.id:
                problems.append(f"{row.id}: current child {row.current_child_id} is not its child")
        if row.parent_id is None:
            continue
        parent = rows.get(row.parent_id)
        if parent is None:
            problems.append(f"{row.id}: parent {row.parent_id} does not exist")
            continue
        if parent.parent_id is not None:
            problems.append(f"{row.id}: a grandchild (its parent {parent.id} is a child)")
        if parent.merchant_id != row.merchant_id:
            problems.append(f"{row.id}: another merchant's child of {parent.id}")
        problems += _pair_problems(
            parent_id=str(parent.id),
            parent_status=parent.status,
            parent_payment=parent.payment_method,
            child_id=str(row.id),
            child_status=row.status,
            child_payment=row.payment_method,
        )
        if row.status == INITIATED and _aware(row.expires_at) > now:
            open_children[parent.id].append(row.id)
    problems += [
        f"parent {parent_id} has {len(ids)} open children: {ids}"
        for parent_id, ids in open_children.items()
        if len(ids) > 1
    ]
    return problems


def _single_row_problems(row: Any) -> list[str]:
    """A status and the columns that must change with it in the same UPDATE."""
    problems: list[str] = []
    if row.status not in (INITIATED, *TERMINAL):
        problems.append(f"{row.id}: unknown status {row.status!r}")
    for status, column in ((COMPLETED, "completed_at"), (FAILED, "failed_at")):
        if (row.status == status) != (getattr(row, column) is not None):
            problems.append(f"{row.id}: status {row.status} with {column}={getattr(row, column)}")
    if (row.status == CANCELED) != (row.canceled_at is not None):
        problems.append(f"{row.id}: status {row.status} with canceled_at={row.canceled_at}")
    if (row.status == COMPLETED) != (row.payment_method is not None):
        problems.append(f"{row.id}: status {row.status} with payment method {row.payment_method}")
    if row.status in TERMINAL and row.version < 2:
        problems.append(f"{row.id}: {row.status} at version {row.version}")
    return problems


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
