"""A checkout session's public fields, defined once.

Each row names a field as the API does (the GraphQL field and the REST key), gives its
type, where its value comes from and whether REST shows it. Everything that shows a
session reads this table:

- ``graphql/types.py`` generates the Strawberry ``CheckoutSession`` type from it;
- the compiled plans (``graphql/compiled.py``) and the REST shim (``rest/``) render it
  with ``SESSION_JSON`` and ``PROFILE_JSON`` (``json_of`` a field's type: the JSON form
  Strawberry gives the same values; tests/graphql/test_compiled.py holds the plans to
  Strawberry, byte for byte).

Adding a field to ``CheckoutSession`` is one row here, then ``make schema`` (and, for a
REST field, its line in ``http/openapi.json``, which tests/http/test_openapi.py checks
against this table).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from operator import attrgetter
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints
from uuid import UUID

from gql_checkout.domain.checkout_sessions import (
    CheckoutSession,
    CheckoutSessionStatus,
    Metadata,
    PaymentMethod,
)
from gql_checkout.domain.clock import rfc3339
from gql_checkout.domain.merchants import Appearance, CardCategory, MerchantProfile


class Source(Enum):
    """Where a field's value comes from: what a resolver or a plan must load first."""

    SESSION = "session"  # the session itself, at the instant of the answer
    RELATED = "related"  # another session, by an id the session holds (null without one)
    PROFILE = "profile"  # the merchant's profile (``missing`` when there is none)
    HCP_TOKEN = "hcpToken"  # noqa: S105 (a name): the service's hcp_token(session)


class Rest(Enum):
    """Whether the REST shim shows a field."""

    NEVER = "never"
    ALWAYS = "always"
    INIT = "init"  # with ``init=true`` only (the heavy fields)


@dataclass(frozen=True, slots=True)
class SessionField:
    name: str  # the API name: the GraphQL field, the REST key
    type: Any  # the Python type the GraphQL type is generated from
    source: Source
    # SESSION: (session, now) -> value; RELATED: session -> id or None;
    # PROFILE: profile -> value; HCP_TOKEN: unused.
    value: Callable[..., Any]
    description: str | None = None
    rest: Rest = Rest.NEVER
    missing: Any = None  # PROFILE: the value shown when the merchant has no profile

    @property
    def attribute(self) -> str:
        """The Python name (Strawberry turns it back into ``name``)."""
        return _snake(self.name)


class _Attribute:
    """A SESSION field that is one attribute of the session: its JSON form reads the
    attribute directly (one call less a field on the polled paths)."""

    __slots__ = ("get", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.get = attrgetter(name)

    def __call__(self, session: CheckoutSession, _now: datetime) -> Any:
        return self.get(session)


SESSION_FIELDS: tuple[SessionField, ...] = (
    SessionField("id", UUID, Source.SESSION, _Attribute("id"), rest=Rest.ALWAYS),
    SessionField(
        "checkoutSessionStatus",
        CheckoutSessionStatus,
        Source.SESSION,
        _Attribute("status"),
        rest=Rest.ALWAYS,
    ),
    SessionField(
        "isExpired",
        bool,
        Source.SESSION,
        lambda session, now: session.is_expired(now),
        "INITIATED and past expiresAt.",
        Rest.ALWAYS,
    ),
    SessionField("createdAt", datetime, Source.SESSION, _Attribute("created_at"), rest=Rest.ALWAYS),
    SessionField(
        "expiresAt",
        datetime,
        Source.SESSION,
        _Attribute("expires_at"),
        "Effective expiry: a child session never outlives its parent.",
        Rest.ALWAYS,
    ),
    SessionField("updatedAt", datetime, Source.SESSION, _Attribute("updated_at")),
    SessionField(
        "amount",
        int,
        Source.SESSION,
        _Attribute("amount"),
        "Amount in minor units (cents).",
        Rest.ALWAYS,
    ),
    SessionField(
        "currency",
        str,
        Source.SESSION,
        _Attribute("currency"),
        "ISO 4217 code.",
        Rest.ALWAYS,
    ),
    SessionField(
        "merchantReference",
        str | None,
        Source.SESSION,
        _Attribute("merchant_reference"),
        rest=Rest.ALWAYS,
    ),
    SessionField(
        "paymentMethod",
        PaymentMethod | None,
        Source.SESSION,
        _Attribute("payment_method"),
        rest=Rest.ALWAYS,
    ),
    SessionField(
        "metadata",
        Metadata,
        Source.SESSION,
        _Attribute("metadata"),
        "The merchant's string keys and values ({} when none).",
        Rest.ALWAYS,
    ),
    SessionField("failureReason", str | None, Source.SESSION, _Attribute("failure_reason")),
    SessionField(
        "childSession",
        CheckoutSession,
        Source.RELATED,
        lambda s: s.current_child_id,
        "The current child session, if any (lazy).",
        Rest.ALWAYS,
    ),
    SessionField(
        "parentSession",
        CheckoutSession,
        Source.RELATED,
        lambda s: s.parent_id,
        "The parent of a child session (lazy).",
    ),
    SessionField(
        "recoveredFrom",
        CheckoutSession,
        Source.RELATED,
        lambda s: s.recovered_from_id,
        "The expired session this one recovers, if any (lazy).",
    ),
    SessionField(
        "appearance",
        Appearance | None,
        Source.PROFILE,
        lambda profile: profile.appearance,
        "The merchant's page appearance (lazy).",
        Rest.INIT,
        missing=None,
    ),
    SessionField(
        "cardCategories",
        list[CardCategory],
        Source.PROFILE,
        lambda profile: list(profile.card_categories),
        "Card brands the merchant accepts (lazy).",
        Rest.INIT,
        missing=[],
    ),
    SessionField(
        "hcpToken",
        str,
        Source.HCP_TOKEN,
        lambda session: session.hcp_token,  # unused: the service signs what is missing
        "Signed token for the hosted checkout page; works while the session is open.",
    ),
)
FIELDS_BY_NAME: Mapping[str, SessionField] = {field.name: field for field in SESSION_FIELDS}


def profile_value(field: SessionField, profile: MerchantProfile | None) -> Any:
    """A PROFILE field's value, or what is shown for a merchant without a profile."""
    return field.value(profile) if profile is not None else field.missing


# --- JSON -------------------------------------------------------------------------------


def json_of(python_type: Any) -> Callable[[Any], Any]:
    """How a value of ``python_type`` is written in JSON: as Strawberry serialises it."""
    origin = get_origin(python_type)
    if origin is UnionType or origin is Union:
        (inner,) = (arg for arg in get_args(python_type) if arg is not NoneType)
        convert = json_of(inner)
        return lambda value: None if value is None else convert(value)
    if origin is list:
        item = json_of(get_args(python_type)[0])
        return lambda values: [item(value) for value in values]
    if python_type is datetime:
        return rfc3339
    if python_type is UUID:
        return str
    if isinstance(python_type, type) and issubclass(python_type, Enum):
        return attrgetter("value")
    if isinstance(python_type, type) and dataclasses.is_dataclass(python_type):
        hints = get_type_hints(python_type)
        named = [(key, attr, _converter(hints[attr])) for key, attr in api_names(python_type)]
        return lambda value: {
            key: getattr(value, attr) if convert is None else convert(getattr(value, attr))
            for key, attr, convert in named
        }
    return _as_is


def _converter(python_type: Any) -> Callable[[Any], Any] | None:
    """``json_of``, or None where a value is written as it is (saves a call a value)."""
    convert = json_of(python_type)
    return None if convert is _as_is else convert


def value_class(python_type: Any) -> type | None:
    """The value object (a dataclass) a field's type holds, if it holds one."""
    args = [arg for arg in get_args(python_type) if arg is not NoneType]
    if args:
        return value_class(args[0])
    if isinstance(python_type, type) and dataclasses.is_dataclass(python_type):
        return python_type
    return None


def api_names(cls: type) -> tuple[tuple[str, str], ...]:
    """(API name, attribute) of a value object's fields, in their order, named as
    Strawberry names them."""
    return tuple((_camel(field.name), field.name) for field in dataclasses.fields(cls))


def _as_is(value: Any) -> Any:
    return value


def _camel(snake: str) -> str:
    first, *rest = snake.split("_")
    return first + "".join(part.capitalize() for part in rest)


def _snake(camel: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in camel)


def _session_json(field: SessionField) -> Callable[[CheckoutSession, datetime], Any]:
    value, convert = field.value, json_of(field.type)
    if isinstance(value, _Attribute):
        get = value.get
        if convert is _as_is:
            return lambda session, _now: get(session)
        return lambda session, _now: convert(get(session))
    if convert is _as_is:
        return value
    return lambda session, now: convert(value(session, now))


# A SESSION field's JSON, by name, in one call: the polled paths render these.
SESSION_JSON: Mapping[str, Callable[[CheckoutSession, datetime], Any]] = {
    field.name: _session_json(field) for field in SESSION_FIELDS if field.source is Source.SESSION
}


def _profile_json(field: SessionField) -> Callable[[MerchantProfile | None], Any]:
    convert = json_of(field.type)
    return lambda profile: convert(profile_value(field, profile))


# A PROFILE field's JSON, by name, for a merchant's profile or for none.
PROFILE_JSON: Mapping[str, Callable[[MerchantProfile | None], Any]] = {
    field.name: _profile_json(field) for field in SESSION_FIELDS if field.source is Source.PROFILE
}
