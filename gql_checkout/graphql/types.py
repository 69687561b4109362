"""Strawberry types: the shapes of schema.graphql.

``CheckoutSession`` and the value objects it shows are generated from the domain: the
session's fields from ``domain.fields.SESSION_FIELDS``, ``PaymentMethod`` and
``Appearance`` from their dataclasses. Their resolvers are the four kinds of source the
table names, written once here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any, get_args, get_origin, get_type_hints
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from gql_checkout.domain.checkout_sessions import (
    CheckoutSession,
    CheckoutSessionStatus,
    PaymentMethod,
)
from gql_checkout.domain.fields import SESSION_FIELDS, SessionField, Source, profile_value
from gql_checkout.domain.merchants import Appearance, CardCategory, Theme
from gql_checkout.graphql.context import Info

# The domain enums become GraphQL enums as they are: one list of values, not two.
strawberry.enum(CheckoutSessionStatus, description="INITIATED until paid, failed or canceled.")
strawberry.enum(CardCategory, description="A card brand a merchant accepts.")
strawberry.enum(Theme, description="Colour scheme of the hosted checkout page.")


def _value_type(value_class: type, *, description: str | None = None) -> Any:
    """A Strawberry type of a domain dataclass's fields; resolvers read the domain object
    itself (its attributes are the fields' Python names)."""
    hints = get_type_hints(value_class)
    namespace: dict[str, Any] = {"__annotations__": {}}
    for field in dataclasses.fields(value_class):
        namespace["__annotations__"][field.name] = hints[field.name]
        if "description" in field.metadata:
            namespace[field.name] = strawberry.field(description=field.metadata["description"])
    generated = type(f"{value_class.__name__}Type", (), namespace)
    return strawberry.type(generated, name=value_class.__name__, description=description)


PaymentMethodType = _value_type(PaymentMethod)
AppearanceType = _value_type(Appearance, description="How the hosted checkout page looks.")
# Domain types as the schema shows them; the session is the type generated below.
_SCHEMA_TYPES: dict[Any, Any] = {
    UUID: strawberry.ID,
    PaymentMethod: PaymentMethodType,
    Appearance: AppearanceType,
}


def _schema_type(python_type: Any) -> Any:
    origin = get_origin(python_type)
    if origin is Mapping:  # metadata: an object of the merchant's strings
        return JSON
    if origin is list:
        return list[_schema_type(get_args(python_type)[0])]  # type: ignore[misc]
    if origin is not None:  # X | None
        (inner,) = (arg for arg in get_args(python_type) if arg is not type(None))
        return _schema_type(inner) | None
    return _SCHEMA_TYPES.get(python_type, python_type)


# --- resolvers, one per kind of source --------------------------------------------------


def _related(field: SessionField) -> Any:
    async def resolve(root: Any, info: Info) -> Any:
        related_id = field.value(root.session)
        if related_id is None:
            return None
        related = await info.context.sessions_by_id.load(related_id)
        return CheckoutSessionType.from_domain(related, now=info.context.now) if related else None

    resolve.__annotations__["return"] = "CheckoutSessionType | None"
    return resolve


def _profile(field: SessionField) -> Any:
    async def resolve(root: Any, info: Info) -> Any:
        profile = await info.context.profiles_by_merchant_id.load(root.session.merchant_id)
        return profile_value(field, profile)

    resolve.__annotations__["return"] = _schema_type(field.type)
    return resolve


def _hcp_token(_field: SessionField) -> Any:
    def resolve(root: Any, info: Info) -> str:
        return info.context.service.hcp_token(root.session)

    return resolve


_RESOLVERS = {Source.RELATED: _related, Source.PROFILE: _profile, Source.HCP_TOKEN: _hcp_token}
# Values the type holds (SESSION), and those its resolvers load.
_HELD = tuple(field for field in SESSION_FIELDS if field.source is Source.SESSION)


def _from_domain(cls: Any, session: CheckoutSession, *, now: datetime) -> Any:
    values = {field.attribute: field.value(session, now) for field in _HELD}
    return cls(session=session, **values)


def _session_type() -> Any:
    annotations: dict[str, Any] = {"session": strawberry.Private[CheckoutSession]}
    namespace: dict[str, Any] = {
        "__annotations__": annotations,
        "from_domain": classmethod(_from_domain),
    }
    for field in SESSION_FIELDS:
        if field.source is Source.SESSION:
            annotations[field.attribute] = _schema_type(field.type)
            namespace[field.attribute] = strawberry.field(description=field.description)
        else:
            resolver = _RESOLVERS[field.source](field)
            resolver.__name__ = field.attribute
            namespace[field.attribute] = strawberry.field(
                resolver=resolver, description=field.description
            )
    return strawberry.type(type("CheckoutSessionType", (), namespace), name="CheckoutSession")


CheckoutSessionType = _session_type()


@strawberry.input(description="A new checkout session (or a child of one).")
class CreateCheckoutSessionInput:
    amount: int = strawberry.field(description="Minor units, 1 or more.")
    currency: str = strawberry.field(description="ISO 4217 code, e.g. EUR.")
    merchant_reference: str | None = None
    expires_in_seconds: int = strawberry.field(default=3600, description="60 to 86400.")
    parent_session_id: strawberry.ID | None = None
    idempotency_key: str | None = strawberry.field(
        default=None, description="Same key and input return the same session."
    )
    metadata: JSON | None = strawberry.field(
        default=None,
        description="Up to 20 string keys (1-40 characters) to string values (up to 500).",
    )


@strawberry.input
class PaymentMethodInput:
    type: str = strawberry.field(description="CARD, WALLET or BANK_TRANSFER.")
    brand: str | None = None
    last4: str | None = None
