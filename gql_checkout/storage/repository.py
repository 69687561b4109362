"""Queries by key and by many keys; rows in, domain objects out. No rules here."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Table, and_, bindparam, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from gql_checkout.domain.checkout_sessions import (
    CheckoutSession,
    CheckoutSessionStatus,
    PaymentMethod,
)
from gql_checkout.domain.merchants import Appearance, CardCategory, Merchant, MerchantProfile, Theme
from gql_checkout.storage.tables import CheckoutSessionRow, MerchantRow

sessions = cast(Table, CheckoutSessionRow.__table__)
merchants = cast(Table, MerchantRow.__table__)

# A session's stored fields are the domain dataclass's, named as its columns are.
_SESSION_COLUMNS = tuple(sessions.c[field.name] for field in fields(CheckoutSession))
_STATUS = next(i for i, column in enumerate(_SESSION_COLUMNS) if column.name == "status")
_PAYMENT_METHOD = next(
    i for i, column in enumerate(_SESSION_COLUMNS) if column.name == "payment_method"
)
_METADATA = next(i for i, column in enumerate(_SESSION_COLUMNS) if column.name == "metadata")
_SELECT_SESSIONS = select(*_SESSION_COLUMNS)
_INITIATED = CheckoutSessionStatus.INITIATED.value
# The enum's own lookup, ``CheckoutSessionStatus(value)``, runs Python (0.45 µs a row).
_STATUSES = {status.value: status for status in CheckoutSessionStatus}


def _session_from_row(row: Any) -> CheckoutSession:
    """A session from the values of ``_SESSION_COLUMNS``, in that order."""
    values = list(row)
    values[_STATUS] = _STATUSES[values[_STATUS]]
    payment_method = values[_PAYMENT_METHOD]
    values[_PAYMENT_METHOD] = PaymentMethod(**payment_method) if payment_method else None
    metadata = values[_METADATA]
    if len(metadata) > 1:  # stored sorted; jsonb orders keys its own way (length first)
        values[_METADATA] = dict(sorted(metadata.items()))
    return CheckoutSession(*values)


def _session_values(session: CheckoutSession) -> dict[str, Any]:
    """A session's column values (the inverse of ``_session_from_row``)."""
    values = {field.name: getattr(session, field.name) for field in fields(CheckoutSession)}
    values["status"] = session.status.value
    method = values.pop("payment_method")
    if method is not None:  # else SQL NULL, not JSON's null
        values["payment_method"] = asdict(method)
    values["metadata"] = dict(session.metadata)
    return values


_CHILD = sessions.alias("child")
SELECT_SESSIONS_WITH_CHILDREN = select(
    *_SESSION_COLUMNS, *(_CHILD.c[column.name] for column in _SESSION_COLUMNS)
).outerjoin(_CHILD, _CHILD.c.id == sessions.c.current_child_id)
_WIDTH = len(_SESSION_COLUMNS)


async def ping(conn: AsyncConnection) -> None:
    await conn.execute(select(literal(1)))


async def get_session(
    conn: AsyncConnection, *, checkout_session_id: UUID
) -> CheckoutSession | None:
    result = await conn.execute(_SESSION_BY_ID, {"id": checkout_session_id})
    row = result.first()
    return _session_from_row(row) if row else None


# The statements of writes are built once and bound per call, as the hot reads are: built
# per call, a statement is rebuilt and re-keyed for SQLAlchemy's cache (~50-100 µs each, a
# transition sends six).
_SESSION_BY_ID = _SELECT_SESSIONS.where(sessions.c.id == bindparam("id"))


# Built once: the hot reads only bind their ids (an expanding IN) on each call.
SESSIONS_WITH_CHILDREN_BY_IDS = SELECT_SESSIONS_WITH_CHILDREN.where(
    sessions.c.id.in_(bindparam("ids", expanding=True))
)


async def get_sessions_with_current_children(
    conn: AsyncConnection, *, checkout_session_ids: Iterable[UUID]
) -> dict[UUID, CheckoutSession]:
    """The sessions and their current children, in one statement (a self-join)."""
    result = await conn.execute(
        SESSIONS_WITH_CHILDREN_BY_IDS, {"ids": list(set(checkout_session_ids))}
    )
    return sessions_with_children_from_rows(result)


def sessions_with_children_from_rows(
    rows: Iterable[Sequence[Any]],
) -> dict[UUID, CheckoutSession]:
    """The sessions of ``SESSIONS_WITH_CHILDREN_BY_IDS`` rows, children included, by id."""
    found: dict[UUID, CheckoutSession] = {}
    for row in rows:
        found[row[0]] = _session_from_row(row[:_WIDTH])
        if row[_WIDTH] is not None:
            found[row[_WIDTH]] = _session_from_row(row[_WIDTH:])
    return found


async def get_session_id_by_idempotency_key(
    conn: AsyncConnection, *, merchant_id: UUID, idempotency_key: str
) -> tuple[UUID, str | None] | None:
    result = await conn.execute(
        select(sessions.c.id, sessions.c.idempotency_fingerprint).where(
            sessions.c.merchant_id == merchant_id, sessions.c.idempotency_key == idempotency_key
        )
    )
    row = result.first()
    return (row.id, row.idempotency_fingerprint) if row else None


async def insert_session(
    conn: AsyncConnection,
    *,
    session: CheckoutSession,
    idempotency_key: str | None,
    idempotency_fingerprint: str | None,
) -> None:
    await conn.execute(
        _INSERT_SESSION,
        {
            **_session_values(session),
            "idempotency_key": idempotency_key,
            "idempotency_fingerprint": idempotency_fingerprint,
        },
    )


# Built once, values bound per call: ``insert().values(...)`` per call would rebuild and
# re-key the statement (~0.3 ms of a create's CPU).
_INSERT_SESSION = insert(sessions)


def _open(now: datetime | BindParameter[Any]) -> Any:
    return and_(sessions.c.status == _INITIATED, sessions.c.expires_at > now)


def expired_at(now: datetime) -> Any:
    """``CheckoutSession.is_expired(now)`` in SQL (tests/storage/test_listing.py holds the
    two to the same answers)."""
    return and_(sessions.c.status == _INITIATED, sessions.c.expires_at <= now)


async def expire_open_session(
    conn: AsyncConnection, *, checkout_session_id: UUID, now: datetime
) -> bool:
    """Ends an open session now (its expiry becomes ``now``), in one conditional UPDATE;
    False if it was not open. Its stored hcpToken, signed for the old expiry, is dropped:
    a read signs one for the new expiry (``service.hcp_token``)."""
    result = await conn.execute(
        update(sessions)
        .where(sessions.c.id == checkout_session_id, _open(now))
        .values(_expired_values(now))
    )
    return result.rowcount == 1


async def expire_open_children(
    conn: AsyncConnection, *, parent_id: UUID, now: datetime
) -> list[UUID]:
    """Ends every open child of a parent now (a child never outlives its parent)."""
    result = await conn.execute(
        update(sessions)
        .where(sessions.c.parent_id == parent_id, _open(now))
        .values(_expired_values(now))
        .returning(sessions.c.id)
    )
    return list(result.scalars())


def _expired_values(now: datetime) -> dict[str, Any]:
    return {
        "expires_at": now,
        "updated_at": now,
        "hcp_token": None,
        "version": sessions.c.version + 1,
    }


async def close_open_session(
    conn: AsyncConnection,
    *,
    checkout_session_id: UUID,
    merchant_id: UUID,
    status: CheckoutSessionStatus,
    now: datetime,
    payment_method: PaymentMethod | None = None,
    failure_reason: str | None = None,
    parent_must_be_open: bool = False,
) -> CheckoutSession | None:
    """Moves the merchant's open session to ``status`` in one conditional UPDATE, and
    returns it as now stored; None if it was not open (or not the merchant's, or, with
    ``parent_must_be_open``, if its parent was no longer INITIATED)."""
    statement = _close_statement(
        status,
        with_payment_method=payment_method is not None,
        with_failure_reason=failure_reason is not None,
        parent_must_be_open=parent_must_be_open,
    )
    parameters: dict[str, Any] = {
        "session_id": checkout_session_id,
        "of_merchant_id": merchant_id,
        "now": now,
    }
    if payment_method is not None:
        parameters["new_payment_method"] = asdict(payment_method)
    if failure_reason is not None:
        parameters["new_failure_reason"] = failure_reason
    row = (await conn.execute(statement, parameters)).first()
    return _session_from_row(row) if row else None


@functools.cache
def _close_statement(
    status: CheckoutSessionStatus,
    *,
    with_payment_method: bool,
    with_failure_reason: bool,
    parent_must_be_open: bool,
) -> Any:
    """The UPDATE of ``close_open_session``, one per shape (a dozen at most), bound per call."""
    now = bindparam("now", type_=sessions.c.updated_at.type)
    values: dict[str, Any] = {
        "status": status.value,
        "updated_at": now,
        "version": sessions.c.version + 1,
        _CLOSED_AT[status]: now,
    }
    if with_payment_method:
        values["payment_method"] = bindparam(
            "new_payment_method", type_=sessions.c.payment_method.type
        )
    if with_failure_reason:
        values["failure_reason"] = bindparam(
            "new_failure_reason", type_=sessions.c.failure_reason.type
        )
    condition = and_(
        sessions.c.id == bindparam("session_id"),
        sessions.c.merchant_id == bindparam("of_merchant_id"),
        _open(now),
    )
    if parent_must_be_open:
        parent = sessions.alias("parent")
        parent_is_initiated = (
            select(parent.c.id)
            .where(parent.c.id == sessions.c.parent_id, parent.c.status == _INITIATED)
            .exists()
        )
        condition = and_(condition, or_(sessions.c.parent_id.is_(None), parent_is_initiated))
    return update(sessions).where(condition).values(**values).returning(*_SESSION_COLUMNS)


_CLOSED_AT = {
    CheckoutSessionStatus.COMPLETED: "completed_at",
    CheckoutSessionStatus.FAILED: "failed_at",
    CheckoutSessionStatus.CANCELED: "canceled_at",
}


async def cancel_initiated_children(
    conn: AsyncConnection, *, parent_id: UUID, now: datetime
) -> list[UUID]:
    """Cancels every INITIATED child of a parent (expired ones too: they can never reopen)."""
    result = await conn.execute(_CANCEL_INITIATED_CHILDREN, {"of_parent_id": parent_id, "now": now})
    return list(result.scalars())


_NOW = bindparam("now", type_=sessions.c.updated_at.type)
_CANCEL_INITIATED_CHILDREN = (
    update(sessions)
    .where(sessions.c.parent_id == bindparam("of_parent_id"), sessions.c.status == _INITIATED)
    .values(
        status=CheckoutSessionStatus.CANCELED.value,
        updated_at=_NOW,
        canceled_at=_NOW,
        version=sessions.c.version + 1,
    )
    .returning(sessions.c.id)
)


async def lock_session(conn: AsyncConnection, *, checkout_session_id: UUID) -> None:
    """Locks a session row until the transaction ends (PostgreSQL; SQLite's writer lock
    already serialises writes, and SQLite has no FOR UPDATE)."""
    # NO KEY UPDATE, not UPDATE: a child's INSERT holds KEY SHARE on its parent (the
    # foreign key), and FOR UPDATE would conflict with it, deadlocking two creators.
    await conn.execute(_LOCK_SESSION, {"id": checkout_session_id})


_LOCK_SESSION = (
    select(sessions.c.id).where(sessions.c.id == bindparam("id")).with_for_update(key_share=True)
)


async def make_current_child(
    conn: AsyncConnection, *, parent_id: UUID, child_id: UUID, now: datetime
) -> bool:
    """Points an open parent at a new child unless its current child is still open."""
    # Lock the parent first. On PostgreSQL the UPDATE's subquery would otherwise judge the
    # current child by the snapshot taken before a concurrent creator committed, and both
    # would win; after the lock, the UPDATE is a new statement with a fresh snapshot.
    await lock_session(conn, checkout_session_id=parent_id)
    current = sessions.alias("current_child")
    current_is_open = (
        select(current.c.id)
        .where(
            current.c.id == sessions.c.current_child_id,
            current.c.status == _INITIATED,
            current.c.expires_at > now,
        )
        .exists()
    )
    result = await conn.execute(
        update(sessions)
        .where(
            sessions.c.id == parent_id,
            _open(now),
            or_(sessions.c.current_child_id.is_(None), ~current_is_open),
        )
        .values(current_child_id=child_id, updated_at=now, version=sessions.c.version + 1)
    )
    return result.rowcount == 1


async def insert_merchant(
    conn: AsyncConnection,
    *,
    merchant: Merchant,
    api_key_hash: str,
    profile: MerchantProfile,
    now: datetime,
) -> None:
    await conn.execute(
        insert(merchants).values(
            id=merchant.id,
            name=merchant.name,
            api_key_hash=api_key_hash,
            appearance=_appearance_json(profile.appearance),
            card_categories=[category.value for category in profile.card_categories],
            created_at=now,
        )
    )


# Keyed by the hashes (an expanding IN named ``ids``, as the reads by id are): a read
# outside transactions, on SQLite through the reader on the loop.
MERCHANTS_BY_API_KEY_HASHES = select(
    merchants.c.api_key_hash, merchants.c.id, merchants.c.name
).where(merchants.c.api_key_hash.in_(bindparam("ids", expanding=True)))


def merchants_by_api_key_hash_from_rows(rows: Iterable[Sequence[Any]]) -> dict[str, Merchant]:
    """The merchants of ``MERCHANTS_BY_API_KEY_HASHES`` rows, by API key hash."""
    return {api_key_hash: Merchant(id=id_, name=name) for api_key_hash, id_, name in rows}


async def get_merchant_by_name(conn: AsyncConnection, *, name: str) -> Merchant | None:
    result = await conn.execute(
        select(merchants.c.id, merchants.c.name).where(merchants.c.name == name).limit(1)
    )
    row = result.first()
    return Merchant(id=row.id, name=row.name) if row else None


async def set_merchant_api_key_hash(
    conn: AsyncConnection, *, merchant_id: UUID, api_key_hash: str
) -> None:
    await conn.execute(
        update(merchants).where(merchants.c.id == merchant_id).values(api_key_hash=api_key_hash)
    )


async def get_merchant_profiles(
    conn: AsyncConnection, *, merchant_ids: Iterable[UUID]
) -> dict[UUID, MerchantProfile]:
    result = await conn.execute(PROFILES_BY_IDS, {"ids": list(set(merchant_ids))})
    return profiles_from_rows(result)


PROFILES_BY_IDS = select(merchants.c.id, merchants.c.appearance, merchants.c.card_categories).where(
    merchants.c.id.in_(bindparam("ids", expanding=True))
)


def profiles_from_rows(rows: Iterable[Sequence[Any]]) -> dict[UUID, MerchantProfile]:
    """The profiles of ``PROFILES_BY_IDS`` rows, by merchant id."""
    return {
        merchant_id: MerchantProfile(
            merchant_id=merchant_id,
            appearance=_appearance_from_json(appearance),
            card_categories=tuple(CardCategory(value) for value in card_categories),
        )
        for merchant_id, appearance, card_categories in rows
    }


def _appearance_json(appearance: Appearance) -> dict[str, Any]:
    return {**asdict(appearance), "theme": appearance.theme.value}


def _appearance_from_json(data: Mapping[str, Any]) -> Appearance:
    return Appearance(**{**data, "theme": Theme(data["theme"])})
