"""SQLAlchemy rows. Only tables here: the rules live in service.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    String,
    TypeDecorator,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps naive text that sorts correctly)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite keeps JSON as text; PostgreSQL as jsonb (compact, comparable, indexable later).
JSON_DOCUMENT = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {datetime: UTCDateTime, dict[str, Any]: JSON, UUID: Uuid}


class MerchantRow(Base):
    __tablename__ = "merchants"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    # sha256 of the API key: keys are 256-bit random, so a fast hash is enough and
    # lets the key be looked up by index.
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    appearance: Mapped[dict[str, Any]]
    card_categories: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class CheckoutSessionRow(Base):
    __tablename__ = "checkout_sessions"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    merchant_id: Mapped[UUID] = mapped_column(ForeignKey("merchants.id"))
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    merchant_reference: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    canceled_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1)
    payment_method: Mapped[dict[str, Any] | None]
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    parent_id: Mapped[UUID | None] = mapped_column(ForeignKey("checkout_sessions.id"))
    current_child_id: Mapped[UUID | None] = mapped_column(ForeignKey("checkout_sessions.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    idempotency_fingerprint: Mapped[str | None] = mapped_column(String(64))
    # Signed when the session is created (migrations/versions/0003); NULL on older rows.
    hcp_token: Mapped[str | None] = mapped_column(String(512))
    # migrations/versions/0004. ``metadata`` is the declarative base's own attribute: the
    # column keeps its API name as its key, the class another attribute name.
    metadata_: Mapped[dict[str, str]] = mapped_column(
        "metadata", JSON_DOCUMENT, key="metadata", server_default=text("'{}'")
    )
    recovered_from_id: Mapped[UUID | None]

    __table_args__ = (
        # Lists (domain/listing.py) are newest first within one merchant: each filter has
        # an index that starts with the merchant, then what it compares for equality, then
        # (created_at, id), so a page is one range scan in list order (docs/back-office.md).
        Index("ix_checkout_sessions_merchant_created", "merchant_id", "created_at", "id"),
        Index(
            "ix_checkout_sessions_merchant_status_created",
            "merchant_id",
            "status",
            "created_at",
            "id",
        ),
        Index(
            "ix_checkout_sessions_merchant_reference_created",
            "merchant_id",
            "merchant_reference",
            "created_at",
            "id",
        ),
        # A parent's children, in list order; cancelling a parent's children uses it too.
        Index("ix_checkout_sessions_parent_created", "parent_id", "created_at", "id"),
        Index(
            "uq_checkout_sessions_merchant_idempotency_key",
            "merchant_id",
            "idempotency_key",
            unique=True,
        ),
        # The webhook expiry sweeper's range scan (migrations/versions/0005): open sessions
        # by expiry; closed ones, most of the table, stay out of it.
        Index(
            "ix_checkout_sessions_initiated_expires_at",
            "expires_at",
            sqlite_where=text("status = 'INITIATED'"),
            postgresql_where=text("status = 'INITIATED'"),
        ),
        # One B-tree, by id, on SQLite: see migrations/versions/0002.
        {"sqlite_with_rowid": False},
    )
