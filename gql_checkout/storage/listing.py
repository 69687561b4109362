"""A page of one merchant's sessions: one statement, a range scan of the filter's index.

The page is read newest first, ``ORDER BY created_at DESC, id DESC``, after the cursor's
position as a row-value comparison, and joined to each session's current child as the
reads by id are (so ``childSession`` costs nothing more). ``limit`` is the page size plus
one: the extra row only says whether there is a next page.

Several statuses are one branch each, ``UNION ALL``ed and merged by the outer ORDER BY:
``status IN (…)`` on the status index would read every matching row to sort them, while
each branch is a range scan in list order that stops after ``limit`` rows.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Select, literal, not_, select, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from gql_checkout.domain.checkout_sessions import CheckoutSession
from gql_checkout.domain.listing import PageRequest
from gql_checkout.storage.repository import (
    SELECT_SESSIONS_WITH_CHILDREN,
    expired_at,
    sessions,
    sessions_with_children_from_rows,
)

_NEWEST_FIRST = (sessions.c.created_at.desc(), sessions.c.id.desc())


async def list_sessions(
    conn: AsyncConnection,
    *,
    merchant_id: UUID,
    request: PageRequest,
    now: Any,
    limit: int,
) -> tuple[list[CheckoutSession], dict[UUID, CheckoutSession]]:
    """Up to ``limit`` sessions in list order, and every session the rows held (their
    current children too) by id."""
    result = await conn.execute(page_statement(merchant_id, request, now=now, limit=limit))
    rows = result.all()
    found = sessions_with_children_from_rows(rows)
    return [found[row[0]] for row in rows], found


def page_statement(merchant_id: UUID, request: PageRequest, *, now: Any, limit: int) -> Select[Any]:
    """The page's SELECT (tests EXPLAIN it)."""
    statuses = request.filter.statuses
    if statuses is not None and len(statuses) > 1:
        ids = union_all(
            *(
                _ids(merchant_id, request, now=now, limit=limit, status=s.value)
                for s in sorted(statuses)
            )
        ).subquery("listed")
        return (
            SELECT_SESSIONS_WITH_CHILDREN.join(ids, ids.c.id == sessions.c.id)
            .order_by(*_NEWEST_FIRST)
            .limit(limit)
        )
    statement = SELECT_SESSIONS_WITH_CHILDREN.where(*_conditions(merchant_id, request, now=now))
    if statuses is not None:
        statement = statement.where(
            sessions.c.status.in_([status.value for status in statuses])
            if statuses
            else literal(False)
        )
    return statement.order_by(*_NEWEST_FIRST).limit(limit)


def _ids(
    merchant_id: UUID, request: PageRequest, *, now: Any, limit: int, status: str
) -> Select[Any]:
    """One UNION ALL branch: the ids of one status's first candidates, in list order (a
    subquery: SQLite allows no LIMIT on a compound's own members)."""
    branch = (
        select(sessions.c.id)
        .where(*_conditions(merchant_id, request, now=now), sessions.c.status == status)
        .order_by(*_NEWEST_FIRST)
        .limit(limit)
        .subquery()
    )
    return select(branch.c.id)


def _conditions(merchant_id: UUID, request: PageRequest, *, now: Any) -> list[Any]:
    wanted = request.filter
    conditions: list[Any] = [sessions.c.merchant_id == merchant_id]
    if request.after is not None:
        created_at, session_id = sessions.c.created_at, sessions.c.id
        conditions.append(
            tuple_(created_at, session_id)
            < tuple_(
                literal(request.after.created_at, created_at.type),
                literal(request.after.checkout_session_id, session_id.type),
            )
        )
    if wanted.is_expired is not None:
        expired = expired_at(now)
        conditions.append(expired if wanted.is_expired else not_(expired))
    if wanted.created_after is not None:
        conditions.append(sessions.c.created_at >= wanted.created_after)
    if wanted.created_before is not None:
        conditions.append(sessions.c.created_at < wanted.created_before)
    if wanted.merchant_reference is not None:
        conditions.append(sessions.c.merchant_reference == wanted.merchant_reference)
    if wanted.parent_session_id is not None:
        conditions.append(sessions.c.parent_id == wanted.parent_session_id)
    return conditions
