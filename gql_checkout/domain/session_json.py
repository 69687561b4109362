"""A session as the REST shim shows it, rendered from the field table: the REST read and
the body of a webhook (which is the REST object without the heavy ``init`` fields) are
the same function."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from gql_checkout.domain.checkout_sessions import CheckoutSession
from gql_checkout.domain.fields import PROFILE_JSON, SESSION_FIELDS, SESSION_JSON, Rest, Source
from gql_checkout.domain.merchants import MerchantProfile

# The table's REST fields, in its order; the heavy ones with init=true. The session's own
# fields are rendered in one pass, then the rest (related sessions, the profile's), which
# the table lists after them (asserted: the keys keep its order).
_ALWAYS = tuple(field for field in SESSION_FIELDS if field.rest is Rest.ALWAYS)
_WITH_INIT = tuple(field for field in SESSION_FIELDS if field.rest is not Rest.NEVER)
_OWN = tuple((f.name, SESSION_JSON[f.name]) for f in _ALWAYS if f.source is Source.SESSION)
_OTHERS = tuple(field for field in _ALWAYS if field.source is not Source.SESSION)
_OTHERS_WITH_INIT = tuple(field for field in _WITH_INIT if field.source is not Source.SESSION)
assert _WITH_INIT[: len(_OWN)] == tuple(f for f in _WITH_INIT if f.source is Source.SESSION)


def render_session(
    session: CheckoutSession,
    *,
    now: datetime,
    related: Mapping[UUID, CheckoutSession],
    hcp_token: Callable[[CheckoutSession], str] | None = None,
    profile: MerchantProfile | None = None,
    init: bool = False,
) -> dict[str, Any]:
    """The session as REST shows it; ``related`` holds the sessions its RELATED fields may
    name (a missing one is null)."""
    rendered: dict[str, Any] = {name: json(session, now) for name, json in _OWN}
    for field in _OTHERS_WITH_INIT if init else _OTHERS:
        name = field.name
        if field.source is Source.RELATED:
            related_id = field.value(session)
            other = related.get(related_id) if related_id is not None else None
            rendered[name] = (
                render_session(other, now=now, related=related, hcp_token=hcp_token)
                if other is not None
                else None
            )
        elif field.source is Source.PROFILE:
            rendered[name] = PROFILE_JSON[name](profile)
        else:
            assert hcp_token is not None, f"{name} is rendered with an hcp_token function"
            rendered[name] = hcp_token(session)
    return rendered
