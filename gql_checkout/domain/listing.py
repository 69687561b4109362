"""Lists of sessions for the back office: the filter, the page size and the keyset cursor.

A list is newest first, by ``(created_at, id)`` descending. A cursor names the last
position a page showed; the next page is every row strictly after it in that order, so
rows inserted meanwhile (always newer, or at worst equal in time and then placed by id)
never shift a page the way an offset would.

A cursor is the 8-byte microsecond timestamp and the 16-byte id, base64url without
padding: 32 characters. It is opaque to clients but not secret: it only says where to
resume, and every list is confined to the caller's merchant, so a forged one shows
nothing a first page would not. Decoding is strict (exact length, alphabet, the one
canonical encoding, a timestamp in range), and anything else is VALIDATION_ERROR, never
a scan from an odd place or a 500.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from gql_checkout.domain.checkout_sessions import CheckoutSessionStatus
from gql_checkout.domain.errors import FieldError, ValidationError
from gql_checkout.domain.validation import parse_uuid

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PACKED = struct.Struct(">q16s")  # microseconds since the epoch, the id's bytes
_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]{32}")
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Position:
    """A row's place in a list: what a cursor encodes."""

    created_at: datetime
    checkout_session_id: UUID


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """The filters of ``checkoutSessions``; every one given must hold (None: any)."""

    statuses: frozenset[CheckoutSessionStatus] | None = None  # any of these
    is_expired: bool | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    merchant_reference: str | None = None  # exact
    parent_session_id: UUID | None = None  # the children of one session


@dataclass(frozen=True, slots=True)
class PageRequest:
    first: int
    after: Position | None
    filter: SessionFilter


def encode_cursor(position: Position) -> str:
    micros = (position.created_at - _EPOCH) // timedelta(microseconds=1)
    packed = _PACKED.pack(micros, position.checkout_session_id.bytes)
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def decode_cursor(cursor: str, *, field: str = "after") -> Position:
    invalid = ValidationError.on(field, "is not a cursor this API returned")
    if not _CURSOR_TEXT.fullmatch(cursor):
        raise invalid
    try:
        micros, id_bytes = _PACKED.unpack(base64.urlsafe_b64decode(cursor))
        created_at = _EPOCH + timedelta(microseconds=micros)
    except (binascii.Error, struct.error, OverflowError):
        raise invalid from None
    position = Position(created_at, UUID(bytes=id_bytes))
    if not _EARLIEST <= created_at <= _LATEST or encode_cursor(position) != cursor:
        raise invalid
    return position


def parse_page_request(
    *, first: int | None, after: str | None, session_filter: SessionFilter
) -> PageRequest:
    errors: list[FieldError] = []
    if first is None:
        first = DEFAULT_PAGE_SIZE
    if not 1 <= first <= MAX_PAGE_SIZE:
        errors.append(FieldError("first", f"must be between 1 and {MAX_PAGE_SIZE}"))
    position = None
    if after is not None:
        try:
            position = decode_cursor(after)
        except ValidationError as error:
            errors.extend(error.field_errors)
    if errors:
        raise ValidationError(*errors)
    return PageRequest(first=first, after=position, filter=session_filter)


def parse_session_filter(
    *,
    statuses: list[CheckoutSessionStatus] | None = None,
    is_expired: bool | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    merchant_reference: str | None = None,
    parent_session_id: str | None = None,
) -> SessionFilter:
    """The filter as given; an empty ``statuses`` list matches nothing, as "any of none"."""
    parent_id = None
    if parent_session_id is not None:
        parent_id = parse_uuid(parent_session_id, field="filter.parentSessionId")
    return SessionFilter(
        statuses=frozenset(statuses) if statuses is not None else None,
        is_expired=is_expired,
        created_after=created_after,
        created_before=created_before,
        merchant_reference=merchant_reference,
        parent_session_id=parent_id,
    )
