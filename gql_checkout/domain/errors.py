"""The one exception tree of gql_checkout.

Every error a client can see is a ``GatewayError``; it knows its contract
``code`` and its HTTP status. REST renders it as RFC 9457 problem+json, GraphQL
puts the same code in ``errors[].extensions.code``.

    GatewayError
    ├── ValidationError            400 VALIDATION_ERROR   (carries field errors)
    ├── Unauthenticated            401 UNAUTHENTICATED
    ├── SessionExpired             401 SESSION_EXPIRED
    ├── Forbidden                  403 FORBIDDEN
    ├── SessionNotFound            404 SESSION_NOT_FOUND
    ├── NotFound                   404 NOT_FOUND          (a webhook endpoint or event)
    ├── InvalidStateTransition     409 INVALID_STATE_TRANSITION
    ├── IdempotencyKeyReused       409 IDEMPOTENCY_KEY_REUSED
    ├── SessionCanceled            410 SESSION_CANCELED
    ├── PayloadTooLarge            413 PAYLOAD_TOO_LARGE
    ├── RateLimited                429 RATE_LIMITED       (carries retry_after)
    ├── InternalError              500 INTERNAL_ERROR     (the mask for anything unexpected)
    └── RequestTimeout             503 REQUEST_TIMEOUT    (the request ran past its time limit)
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class GatewayError(Exception):
    code: ClassVar[str]
    status: ClassVar[HTTPStatus]
    default_detail: ClassVar[str]

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.default_detail
        super().__init__(self.detail)

    @property
    def title(self) -> str:
        return self.status.phrase


class ValidationError(GatewayError):
    code = "VALIDATION_ERROR"
    status = HTTPStatus.BAD_REQUEST
    default_detail = "The request is not valid."

    def __init__(self, *field_errors: FieldError, detail: str | None = None) -> None:
        self.field_errors = field_errors
        if detail is None and field_errors:
            detail = "; ".join(f"{error.field}: {error.message}" for error in field_errors)
        super().__init__(detail)

    @classmethod
    def on(cls, field: str, message: str) -> ValidationError:
        return cls(FieldError(field=field, message=message))


class Unauthenticated(GatewayError):
    code = "UNAUTHENTICATED"
    status = HTTPStatus.UNAUTHORIZED
    default_detail = "Missing or invalid credentials."


class SessionExpired(GatewayError):
    code = "SESSION_EXPIRED"
    status = HTTPStatus.UNAUTHORIZED
    default_detail = "The checkout session has expired."


class Forbidden(GatewayError):
    code = "FORBIDDEN"
    status = HTTPStatus.FORBIDDEN
    default_detail = "The checkout session belongs to another merchant."


class SessionNotFound(GatewayError):
    code = "SESSION_NOT_FOUND"
    status = HTTPStatus.NOT_FOUND
    default_detail = "No checkout session has this id."


class NotFound(GatewayError):
    code = "NOT_FOUND"
    status = HTTPStatus.NOT_FOUND
    default_detail = "Nothing has this id."


class InvalidStateTransition(GatewayError):
    code = "INVALID_STATE_TRANSITION"
    status = HTTPStatus.CONFLICT
    default_detail = "The checkout session cannot make this transition in its current state."


class IdempotencyKeyReused(GatewayError):
    code = "IDEMPOTENCY_KEY_REUSED"
    status = HTTPStatus.CONFLICT
    default_detail = "This idempotency key was already used with a different input."


class SessionCanceled(GatewayError):
    code = "SESSION_CANCELED"
    status = HTTPStatus.GONE
    default_detail = "The checkout session was canceled."


class PayloadTooLarge(GatewayError):
    code = "PAYLOAD_TOO_LARGE"
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."


class RateLimited(GatewayError):
    code = "RATE_LIMITED"
    status = HTTPStatus.TOO_MANY_REQUESTS
    default_detail = "Too many requests."

    def __init__(self, retry_after_seconds: int, detail: str | None = None) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(detail)


class InternalError(GatewayError):
    code = "INTERNAL_ERROR"
    status = HTTPStatus.INTERNAL_SERVER_ERROR
    default_detail = "An unexpected error occurred."


class RequestTimeout(GatewayError):
    code = "REQUEST_TIMEOUT"
    status = HTTPStatus.SERVICE_UNAVAILABLE
    default_detail = "The request took too long and was abandoned; read before retrying a write."
