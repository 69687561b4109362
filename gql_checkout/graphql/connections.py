"""Relay-style connections of the back office: ``checkoutSessions`` and its filter.

``PageInfo`` is the one of every connection (webhook events' too). Nodes are primed into
the request's ``CheckoutSessionByIdLoader``: their ``childSession`` (read with the page)
costs nothing more, and ``parentSession`` / ``recoveredFrom`` of the whole page is one
batched read, as for any root.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from gql_checkout.domain.checkout_sessions import CheckoutSessionStatus
from gql_checkout.domain.listing import Position, SessionFilter, encode_cursor, parse_session_filter
from gql_checkout.graphql.context import GraphQLContext
from gql_checkout.graphql.types import CheckoutSessionType
from gql_checkout.services.checkout_sessions import SessionPage


@strawberry.type(description="Where a page ends, and whether another follows.")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None = strawberry.field(description="Pass as `after` for the next page.")


@strawberry.type
class CheckoutSessionEdge:
    cursor: str
    node: CheckoutSessionType


@strawberry.type(description="A merchant's sessions, newest first (createdAt, then id).")
class CheckoutSessionConnection:
    edges: list[CheckoutSessionEdge]
    page_info: PageInfo

    @classmethod
    def from_page(cls, page: SessionPage, context: GraphQLContext) -> CheckoutSessionConnection:
        loader = context.sessions_by_id
        for session_id, session in page.related.items():
            loader.prime(session_id, session)
        edges = [
            CheckoutSessionEdge(
                cursor=encode_cursor(Position(session.created_at, session.id)),
                node=CheckoutSessionType.from_domain(session, now=page.now),
            )
            for session in page.sessions
        ]
        end_cursor = edges[-1].cursor if edges else None
        return cls(
            edges=edges, page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=end_cursor)
        )


@strawberry.input(description="Every filter given must hold.")
class CheckoutSessionFilter:
    status: list[CheckoutSessionStatus] | None = strawberry.field(
        default=None, description="Any of these."
    )
    is_expired: bool | None = None
    created_after: datetime | None = strawberry.field(default=None, description="Inclusive.")
    created_before: datetime | None = strawberry.field(default=None, description="Exclusive.")
    merchant_reference: str | None = strawberry.field(default=None, description="Exact.")
    parent_session_id: strawberry.ID | None = strawberry.field(
        default=None, description="The children of one session."
    )

    def to_domain(self) -> SessionFilter:
        return parse_session_filter(
            statuses=self.status,
            is_expired=self.is_expired,
            created_after=self.created_after,
            created_before=self.created_before,
            merchant_reference=self.merchant_reference,
            parent_session_id=self.parent_session_id,
        )
