"""The baseline for bench.perf: `checkoutSession(id)` written the obvious way.

    BENCH_DATABASE_URL=sqlite+aiosqlite:///… uvicorn bench.naive_app:app

Strawberry's ASGI view mounted in Starlette, its own small SQLAlchemy ORM model of the
`merchants` and `checkout_sessions` tables that gql_checkout migrates, one AsyncSession
per request (closed by a schema extension when the operation ends), and a resolver per
lazy field that runs its own query: no DataLoaders, no caches, no middleware, no rate
limits, no metrics, no logging per request. It reads the same database file.

It keeps the access rules a real implementation cannot skip (X-Merchant-Id must own the
session; canceled and expired sessions are errors) so both do the same work for a valid
read. The one thing that is not "obvious": an AsyncSession must not run two statements
at once, and graphql-core resolves sibling fields concurrently (appearance and
cardCategories), so queries take a per-request lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import strawberry
from sqlalchemy import JSON, DateTime, String, Uuid, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import Select
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import SchemaExtension

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "sqlite+aiosqlite:///./gql_checkout.db")

engine = create_async_engine(DATABASE_URL)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)

T = TypeVar("T")


class Base(DeclarativeBase):
    pass


class MerchantRow(Base):
    __tablename__ = "merchants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    appearance: Mapped[dict[str, Any]] = mapped_column(JSON)
    card_categories: Mapped[list[str]] = mapped_column(JSON)


class CheckoutSessionRow(Base):
    __tablename__ = "checkout_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # gql_checkout stores naive UTC on SQLite; a plain DateTime reads it back naive.
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    current_child_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


@dataclass
class Context:
    db: AsyncSession
    merchant_id: str | None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def one(self, statement: Select[T]) -> T | None:
        async with self.lock:
            return await self.db.scalar(statement)


Info = strawberry.Info[Context, None]


@strawberry.enum
class CheckoutSessionStatus(enum.Enum):
    INITIATED = "INITIATED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


@strawberry.type
class Appearance:
    theme: str
    primary_color: str


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@strawberry.type
class CheckoutSession:
    id: strawberry.ID
    checkout_session_status: CheckoutSessionStatus
    is_expired: bool
    created_at: datetime
    expires_at: datetime
    amount: int
    currency: str
    merchant_id: strawberry.Private[uuid.UUID]
    current_child_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: CheckoutSessionRow) -> CheckoutSession:
        return cls(
            id=strawberry.ID(str(row.id)),
            checkout_session_status=CheckoutSessionStatus(row.status),
            is_expired=row.status == "INITIATED" and _utc_now() >= row.expires_at,
            created_at=row.created_at.replace(tzinfo=UTC),
            expires_at=row.expires_at.replace(tzinfo=UTC),
            amount=row.amount,
            currency=row.currency,
            merchant_id=row.merchant_id,
            current_child_id=row.current_child_id,
        )

    @strawberry.field
    async def child_session(self, info: Info) -> CheckoutSession | None:
        if self.current_child_id is None:
            return None
        row = await info.context.one(
            select(CheckoutSessionRow).where(CheckoutSessionRow.id == self.current_child_id)
        )
        return CheckoutSession.from_row(row) if row else None

    @strawberry.field
    async def appearance(self, info: Info) -> Appearance | None:
        merchant = await info.context.one(
            select(MerchantRow).where(MerchantRow.id == self.merchant_id)
        )
        if merchant is None:
            return None
        return Appearance(
            theme=merchant.appearance["theme"], primary_color=merchant.appearance["primary_color"]
        )

    @strawberry.field
    async def card_categories(self, info: Info) -> list[str]:
        merchant = await info.context.one(
            select(MerchantRow).where(MerchantRow.id == self.merchant_id)
        )
        return list(merchant.card_categories) if merchant else []


class ReadError(Exception):
    pass


@strawberry.type
class Query:
    @strawberry.field
    async def checkout_session(self, info: Info, id: strawberry.ID) -> CheckoutSession | None:
        if info.context.merchant_id is None:
            raise ReadError("X-Merchant-Id is required")
        try:
            merchant_id = uuid.UUID(info.context.merchant_id)
            session_id = uuid.UUID(id)
        except ValueError:
            raise ReadError("not a UUID") from None
        row = await info.context.one(
            select(CheckoutSessionRow).where(CheckoutSessionRow.id == session_id)
        )
        if row is None:
            raise ReadError("SESSION_NOT_FOUND")
        if row.merchant_id != merchant_id:
            raise ReadError("FORBIDDEN")
        if row.status == "CANCELED":
            raise ReadError("SESSION_CANCELED")
        session = CheckoutSession.from_row(row)
        if session.is_expired:
            raise ReadError("SESSION_EXPIRED")
        return session


class CloseDatabaseSession(SchemaExtension):
    async def on_operation(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        if isinstance(context, Context):
            await context.db.close()


class NaiveGraphQL(GraphQL[Context, None]):
    async def get_context(self, request: Any, response: Any) -> Context:
        return Context(db=SessionLocal(), merchant_id=request.headers.get("x-merchant-id"))


schema = strawberry.Schema(query=Query, extensions=[CloseDatabaseSession])


@contextlib.asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    yield
    await engine.dispose()


app = Starlette(
    routes=[Route("/graphql", NaiveGraphQL(schema, graphql_ide=None), methods=["POST"])],
    lifespan=lifespan,
)
