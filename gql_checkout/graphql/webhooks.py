"""Webhook endpoints and the event log over GraphQL (CONTRACT sections 10 and 11).

Everything here needs the merchant's API key: mutations as every mutation does, the two
queries as a read made with an API key (``X-Merchant-Id`` alone, or an hcpToken, is
UNAUTHENTICATED). The rules are ``services/webhooks.py``'s.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import strawberry

from gql_checkout.domain.errors import Unauthenticated
from gql_checkout.domain.validation import parse_uuid
from gql_checkout.domain.webhooks import (
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEventFilter,
    WebhookEventType,
)
from gql_checkout.graphql.connections import PageInfo
from gql_checkout.graphql.context import GraphQLContext, Info
from gql_checkout.services.webhooks import EventPage, encode_cursor

strawberry.enum(WebhookEventType, description="What happened to a checkout session.")
strawberry.enum(WebhookDeliveryStatus, description="PENDING until acknowledged or given up.")


@strawberry.type(name="WebhookEndpoint", description="Where a merchant's events are POSTed.")
class WebhookEndpointType:
    id: strawberry.ID
    url: str
    events: list[WebhookEventType]
    description: str | None
    enabled: bool = strawberry.field(description="False once disabled, or after a 410 Gone.")
    created_at: datetime

    @classmethod
    def from_domain(cls, endpoint: WebhookEndpoint) -> WebhookEndpointType:
        return cls(
            id=strawberry.ID(str(endpoint.id)),
            url=endpoint.url,
            events=list(endpoint.events),
            description=endpoint.description,
            enabled=endpoint.enabled,
            created_at=endpoint.created_at,
        )


@strawberry.type(name="CreatedWebhookEndpoint")
class CreatedWebhookEndpointType:
    endpoint: WebhookEndpointType
    secret: str = strawberry.field(
        description="The signing secret (whsec_...), shown only here: keep it."
    )


@strawberry.type(name="WebhookDelivery", description="An event's delivery to one endpoint.")
class WebhookDeliveryType:
    endpoint: WebhookEndpointType
    status: WebhookDeliveryStatus
    attempts: int
    last_response_status: int | None
    next_attempt_at: datetime | None = strawberry.field(
        description="When the next attempt is due, while PENDING."
    )

    @classmethod
    def from_domain(
        cls, delivery: WebhookDelivery, endpoint: WebhookEndpoint
    ) -> WebhookDeliveryType:
        return cls(
            endpoint=WebhookEndpointType.from_domain(endpoint),
            status=delivery.status,
            attempts=delivery.attempts,
            last_response_status=delivery.last_response_status,
            next_attempt_at=delivery.next_attempt_at,
        )


@strawberry.type(name="WebhookEvent")
class WebhookEventNode:
    id: strawberry.ID
    type: WebhookEventType
    created_at: datetime
    checkout_session_id: strawberry.ID
    deliveries: list[WebhookDeliveryType]


@strawberry.type(name="WebhookEventEdge")
class WebhookEventEdge:
    cursor: str
    node: WebhookEventNode


@strawberry.type(name="WebhookEventConnection")
class WebhookEventConnection:
    edges: list[WebhookEventEdge]
    page_info: PageInfo


@strawberry.input(description="A new webhook endpoint.")
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="https in production; a public address.")
    events: list[WebhookEventType]
    description: str | None = None


@strawberry.input(description="What to change; fields left out stay as they are.")
class UpdateWebhookEndpointInput:
    url: str | None = None
    events: list[WebhookEventType] | None = None
    description: str | None = None
    enabled: bool | None = None


@strawberry.input(name="WebhookEventFilter", description="Events matching all that is given.")
class WebhookEventFilterInput:
    type: list[WebhookEventType] | None = strawberry.field(default=None, description="Any of.")
    delivery_status: WebhookDeliveryStatus | None = strawberry.field(
        default=None, description="Events with at least one delivery in this status."
    )
    checkout_session_id: strawberry.ID | None = None


async def _api_key_merchant(context: GraphQLContext) -> UUID:
    if context.authorization is None:
        raise Unauthenticated("Webhooks need an Authorization: Bearer <apiKey> header.")
    reader = await context.reader()
    if reader.checkout_session_id is not None:
        raise Unauthenticated("Webhooks need the merchant's API key, not an hcpToken.")
    return reader.merchant_id


def _connection(page: EventPage) -> WebhookEventConnection:
    edges = [
        WebhookEventEdge(
            cursor=encode_cursor(event),
            node=WebhookEventNode(
                id=strawberry.ID(str(event.id)),
                type=event.type,
                created_at=event.created_at,
                checkout_session_id=strawberry.ID(str(event.checkout_session_id)),
                deliveries=[
                    WebhookDeliveryType.from_domain(delivery, page.endpoints[delivery.endpoint_id])
                    for delivery in page.deliveries[event.id]
                ],
            ),
        )
        for event in page.events
    ]
    return WebhookEventConnection(
        edges=edges,
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
    )


def _filter(given: WebhookEventFilterInput | None) -> WebhookEventFilter:
    if given is None:
        return WebhookEventFilter()
    session_id = given.checkout_session_id
    return WebhookEventFilter(
        types=tuple(given.type) if given.type is not None else None,
        delivery_status=given.delivery_status,
        checkout_session_id=(
            parse_uuid(session_id, field="filter.checkoutSessionId")
            if session_id is not None
            else None
        ),
    )


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="The calling merchant's webhook endpoints (API key).")
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpointType]:
        context = info.context
        merchant_id = await _api_key_merchant(context)
        found = await context.webhooks.list_endpoints(merchant_id=merchant_id)
        return [WebhookEndpointType.from_domain(endpoint) for endpoint in found]

    @strawberry.field(description="The merchant's webhook events, newest first (API key).")
    async def webhook_events(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: WebhookEventFilterInput | None = None,
    ) -> WebhookEventConnection:
        context = info.context
        merchant_id = await _api_key_merchant(context)
        page = await context.webhooks.list_events(
            merchant_id=merchant_id,
            first=20 if first is None else first,
            after=after,
            event_filter=_filter(filter),
        )
        return _connection(page)


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(description="Registers an endpoint; its secret is shown only here.")
    async def create_webhook_endpoint(
        self, info: Info, input: CreateWebhookEndpointInput
    ) -> CreatedWebhookEndpointType:
        context = info.context
        merchant = await context.writer()
        endpoint, secret = await context.webhooks.create_endpoint(
            merchant_id=merchant.id,
            url=input.url,
            events=input.events,
            description=input.description,
        )
        return CreatedWebhookEndpointType(
            endpoint=WebhookEndpointType.from_domain(endpoint), secret=secret
        )

    @strawberry.mutation(description="Changes an endpoint's url, events, description or enabled.")
    async def update_webhook_endpoint(
        self, info: Info, id: strawberry.ID, input: UpdateWebhookEndpointInput
    ) -> WebhookEndpointType:
        context = info.context
        merchant = await context.writer()
        endpoint = await context.webhooks.update_endpoint(
            merchant_id=merchant.id,
            endpoint_id=parse_uuid(id, field="id"),
            url=input.url,
            events=input.events,
            description=input.description,
            enabled=input.enabled,
        )
        return WebhookEndpointType.from_domain(endpoint)

    @strawberry.mutation(description="Deletes an endpoint; nothing more is sent to it.")
    async def delete_webhook_endpoint(self, info: Info, id: strawberry.ID) -> bool:
        context = info.context
        merchant = await context.writer()
        return await context.webhooks.delete_endpoint(
            merchant_id=merchant.id, endpoint_id=parse_uuid(id, field="id")
        )

    @strawberry.mutation(
        description="A new signing secret (shown only here); the old one also signs for 24 h."
    )
    async def rotate_webhook_endpoint_secret(
        self, info: Info, id: strawberry.ID
    ) -> CreatedWebhookEndpointType:
        context = info.context
        merchant = await context.writer()
        endpoint, secret = await context.webhooks.rotate_secret(
            merchant_id=merchant.id, endpoint_id=parse_uuid(id, field="id")
        )
        return CreatedWebhookEndpointType(
            endpoint=WebhookEndpointType.from_domain(endpoint), secret=secret
        )

    @strawberry.mutation(description="Sends an event to an endpoint again, now.")
    async def redeliver_webhook_event(
        self, info: Info, id: strawberry.ID, endpoint_id: strawberry.ID
    ) -> WebhookDeliveryType:
        context = info.context
        merchant = await context.writer()
        delivery, endpoint = await context.webhooks.redeliver(
            merchant_id=merchant.id,
            event_id=parse_uuid(id, field="id"),
            endpoint_id=parse_uuid(endpoint_id, field="endpointId"),
        )
        return WebhookDeliveryType.from_domain(delivery, endpoint)
