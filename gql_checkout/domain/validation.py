"""Parsing of untrusted input into domain values; every failure is a ValidationError."""

from __future__ import annotations

import re
from uuid import UUID

from gql_checkout.domain.checkout_sessions import Metadata, NewCheckoutSession, PaymentMethod
from gql_checkout.domain.currencies import CURRENCIES
from gql_checkout.domain.errors import FieldError, Unauthenticated, ValidationError
from gql_checkout.domain.memo import RepeatMemo
from gql_checkout.domain.uuids import uuid_from_int

MIN_EXPIRES_IN_SECONDS = 60
MAX_EXPIRES_IN_SECONDS = 86_400
DEFAULT_EXPIRES_IN_SECONDS = 3_600
MAX_AMOUNT = 99_999_999_999  # minor units; well inside a signed 64-bit column
MAX_REFERENCE_LENGTH = 255
MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_FAILURE_REASON_LENGTH = 500
MAX_METADATA_KEYS = 20
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500
_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_LAST4 = re.compile(r"[0-9]{4}")
_PAYMENT_METHOD_TYPES = frozenset({"CARD", "WALLET", "BANK_TRANSFER"})


def parse_uuid(value: str | None, *, field: str) -> UUID:
    """Only the canonical 36-character form: ids are compared as text by clients."""
    if value is None or value == "":
        raise ValidationError.on(field, "is required")
    parsed = _canonical_uuid(value)
    if parsed is None:
        raise ValidationError.on(field, "must be a UUID")
    return parsed


def _uuid_if_canonical(value: str) -> UUID | None:
    if _UUID_TEXT.fullmatch(value):
        return uuid_from_int(int(value.replace("-", ""), 16))  # 32 hex digits: < 2**128
    return None


# Pages poll the same few ids (and send the same merchant id) over and over.
_canonical_uuid = RepeatMemo(_uuid_if_canonical)


def parse_bearer(authorization: str) -> str:
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'.")
    return credentials


def parse_new_checkout_session(
    *,
    amount: int,
    currency: str,
    merchant_reference: str | None,
    expires_in_seconds: int | None,
    parent_session_id: str | None,
    idempotency_key: str | None,
    metadata: object = None,
) -> NewCheckoutSession:
    errors: list[FieldError] = []
    parsed_metadata: Metadata = {}
    try:
        parsed_metadata = parse_metadata(metadata)
    except ValidationError as error:
        errors.extend(error.field_errors)
    if not 0 < amount <= MAX_AMOUNT:
        errors.append(FieldError("amount", f"must be between 1 and {MAX_AMOUNT} (minor units)"))
    if currency not in CURRENCIES:
        errors.append(FieldError("currency", "must be an ISO 4217 code such as EUR or USD"))
    if merchant_reference is not None and not 0 < len(merchant_reference) <= MAX_REFERENCE_LENGTH:
        errors.append(
            FieldError("merchantReference", f"must have 1 to {MAX_REFERENCE_LENGTH} characters")
        )
    if expires_in_seconds is None:
        expires_in_seconds = DEFAULT_EXPIRES_IN_SECONDS
    if not MIN_EXPIRES_IN_SECONDS <= expires_in_seconds <= MAX_EXPIRES_IN_SECONDS:
        errors.append(
            FieldError(
                "expiresInSeconds",
                f"must be between {MIN_EXPIRES_IN_SECONDS} and {MAX_EXPIRES_IN_SECONDS}",
            )
        )
    parent_id: UUID | None = None
    if parent_session_id is not None:
        try:
            parent_id = parse_uuid(parent_session_id, field="parentSessionId")
        except ValidationError as error:
            errors.extend(error.field_errors)
    try:
        parse_idempotency_key(idempotency_key)
    except ValidationError as error:
        errors.extend(error.field_errors)
    if errors:
        raise ValidationError(*errors)
    return NewCheckoutSession(
        amount=amount,
        currency=currency,
        merchant_reference=merchant_reference,
        expires_in_seconds=expires_in_seconds,
        parent_session_id=parent_id,
        idempotency_key=idempotency_key,
        metadata=parsed_metadata,
    )


def parse_metadata(value: object) -> Metadata:
    """A JSON object of string keys (1-40 characters) to string values (up to 500), at
    most 20 of them; None is none. Kept sorted by key: SQLite's JSON text and
    PostgreSQL's jsonb then give back the same order, and so the same ETag."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError.on("metadata", "must be an object of string keys to string values")
    errors: list[FieldError] = []
    if len(value) > MAX_METADATA_KEYS:
        errors.append(FieldError("metadata", f"must have at most {MAX_METADATA_KEYS} keys"))
    for key, item in value.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_METADATA_KEY_LENGTH:
            message = f"keys must have 1 to {MAX_METADATA_KEY_LENGTH} characters"
            errors.append(FieldError("metadata", message))
        elif not isinstance(item, str) or len(item) > MAX_METADATA_VALUE_LENGTH:
            message = f"must be a string of at most {MAX_METADATA_VALUE_LENGTH} characters"
            errors.append(FieldError(f"metadata.{key}", message))
    if errors:
        raise ValidationError(*errors)
    return dict(sorted(value.items()))


def parse_idempotency_key(idempotency_key: str | None) -> str | None:
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValidationError.on(
            "idempotencyKey", f"must have 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
        )
    return idempotency_key


def parse_payment_method(*, type: str, brand: str | None, last4: str | None) -> PaymentMethod:
    errors: list[FieldError] = []
    if type not in _PAYMENT_METHOD_TYPES:
        allowed = ", ".join(sorted(_PAYMENT_METHOD_TYPES))
        errors.append(FieldError("paymentMethod.type", f"must be one of {allowed}"))
    if brand is not None and not 0 < len(brand) <= 32:
        errors.append(FieldError("paymentMethod.brand", "must have 1 to 32 characters"))
    if last4 is not None and not _LAST4.fullmatch(last4):
        errors.append(FieldError("paymentMethod.last4", "must be exactly four digits"))
    if errors:
        raise ValidationError(*errors)
    return PaymentMethod(type=type, brand=brand, last4=last4)


def parse_failure_reason(reason: str | None) -> str | None:
    if reason is not None and len(reason) > MAX_FAILURE_REASON_LENGTH:
        raise ValidationError.on(
            "reason", f"must have at most {MAX_FAILURE_REASON_LENGTH} characters"
        )
    return reason
