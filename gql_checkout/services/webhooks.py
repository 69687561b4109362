"""The webhook rules a merchant reaches through the API: endpoints, secrets, the event
log and redelivery. The outbox (storage/outbox.py) writes events; the dispatcher
(services/webhook_dispatcher.py) delivers them."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from gql_checkout.domain.clock import Clock, stamp, utc_now
from gql_checkout.domain.errors import Forbidden, InvalidStateTransition, NotFound, ValidationError
from gql_checkout.domain.webhook_urls import UrlPolicy, parse_webhook_url
from gql_checkout.domain.webhooks import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventFilter,
    WebhookEventType,
    parse_description,
    parse_event_types,
)
from gql_checkout.services.webhook_secrets import SecretBox, new_secret
from gql_checkout.storage import webhook_repository as webhooks
from gql_checkout.storage.writes import Writes

# After a rotation the old secret keeps signing (beside the new one) this long, so
# receivers can switch without losing a delivery.
PREVIOUS_SECRET_LIFETIME = timedelta(hours=24)
MAX_PAGE = 100


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[WebhookEvent]
    deliveries: Mapping[UUID, list[WebhookDelivery]]  # by event id
    endpoints: Mapping[UUID, WebhookEndpoint]  # every endpoint the deliveries name
    has_next_page: bool
    end_cursor: str | None


class WebhookService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        writes: Writes,
        secret_box: SecretBox,
        url_policy: UrlPolicy,
        clock: Clock = utc_now,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._writes = writes
        self._box = secret_box
        self._policy = url_policy
        self._clock = clock
        # Tells this process's dispatcher that a delivery is due now (redelivery).
        self.wake = wake

    # --- endpoints ------------------------------------------------------------------------

    async def create_endpoint(
        self,
        *,
        merchant_id: UUID,
        url: str,
        events: list[WebhookEventType],
        description: str | None,
    ) -> tuple[WebhookEndpoint, str]:
        """Registers an endpoint; its signing secret is returned here only."""
        endpoint = WebhookEndpoint(
            id=uuid.uuid4(),
            merchant_id=merchant_id,
            url=parse_webhook_url(url, policy=self._policy),
            events=parse_event_types(events),
            description=parse_description(description),
            enabled=True,
            created_at=stamp(self._clock()),
        )
        secret = new_secret()
        async with self._writes.begin() as conn:
            await webhooks.insert_endpoint(
                conn, endpoint=endpoint, sealed_secret=self._box.seal(secret)
            )
        return endpoint, secret

    async def list_endpoints(self, *, merchant_id: UUID) -> list[WebhookEndpoint]:
        """The merchant's endpoints, oldest first."""
        async with self._engine.connect() as conn:
            return await webhooks.list_endpoints(conn, merchant_id=merchant_id)

    async def update_endpoint(
        self,
        *,
        merchant_id: UUID,
        endpoint_id: UUID,
        url: str | None = None,
        events: list[WebhookEventType] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> WebhookEndpoint:
        """Changes what is given (None leaves a value as it is)."""
        values: dict[str, Any] = {}
        if url is not None:
            values["url"] = parse_webhook_url(url, policy=self._policy)
        if events is not None:
            values["events"] = [event_type.value for event_type in parse_event_types(events)]
        if description is not None:
            values["description"] = parse_description(description)
        if enabled is not None:
            values["enabled"] = enabled
        async with self._writes.begin() as conn:
            await self._owned(conn, merchant_id=merchant_id, endpoint_id=endpoint_id)
            if values:
                await webhooks.update_endpoint(
                    conn, endpoint_id=endpoint_id, values=values, now=stamp(self._clock())
                )
            updated = await webhooks.get_endpoint(conn, endpoint_id=endpoint_id)
        assert updated is not None
        return updated

    async def delete_endpoint(self, *, merchant_id: UUID, endpoint_id: UUID) -> bool:
        """Deletes the endpoint with its deliveries; nothing more is sent to it."""
        async with self._writes.begin() as conn:
            await self._owned(conn, merchant_id=merchant_id, endpoint_id=endpoint_id)
            await webhooks.delete_endpoint(conn, endpoint_id=endpoint_id)
        return True

    async def rotate_secret(
        self, *, merchant_id: UUID, endpoint_id: UUID
    ) -> tuple[WebhookEndpoint, str]:
        """A new signing secret (returned here only); the current one signs too for 24 h."""
        secret = new_secret()
        now = stamp(self._clock())
        async with self._writes.begin() as conn:
            endpoint = await self._owned(conn, merchant_id=merchant_id, endpoint_id=endpoint_id)
            stored = await webhooks.get_endpoint_secrets(conn, endpoint_id=endpoint_id)
            assert stored is not None
            await webhooks.update_endpoint(
                conn,
                endpoint_id=endpoint_id,
                values={
                    "secret": self._box.seal(secret),
                    "previous_secret": stored[0],
                    "previous_secret_expires_at": now + PREVIOUS_SECRET_LIFETIME,
                },
                now=now,
            )
        return endpoint, secret

    async def _owned(self, conn: Any, *, merchant_id: UUID, endpoint_id: UUID) -> WebhookEndpoint:
        endpoint = await webhooks.get_endpoint(conn, endpoint_id=endpoint_id)
        if endpoint is None:
            raise NotFound("No webhook endpoint has this id.")
        if endpoint.merchant_id != merchant_id:
            raise Forbidden("The webhook endpoint belongs to another merchant.")
        return endpoint

    # --- events ---------------------------------------------------------------------------

    async def redeliver(
        self, *, merchant_id: UUID, event_id: UUID, endpoint_id: UUID
    ) -> tuple[WebhookDelivery, WebhookEndpoint]:
        """Schedules an attempt now (with a fresh retry schedule), to any enabled endpoint
        of the merchant, subscribed or not."""
        async with self._writes.begin() as conn:
            event = await webhooks.get_event(conn, event_id=event_id)
            if event is None:
                raise NotFound("No webhook event has this id.")
            if event.merchant_id != merchant_id:
                raise Forbidden("The webhook event belongs to another merchant.")
            endpoint = await self._owned(conn, merchant_id=merchant_id, endpoint_id=endpoint_id)
            if not endpoint.enabled:
                raise InvalidStateTransition(
                    "The webhook endpoint is disabled; enable it before redelivering."
                )
            delivery = await webhooks.schedule_now(
                conn,
                delivery_id=uuid.uuid4(),
                event_id=event_id,
                endpoint_id=endpoint_id,
                now=self._clock(),
            )
        self.wake()
        return delivery, endpoint

    async def list_events(
        self,
        *,
        merchant_id: UUID,
        first: int,
        after: str | None,
        event_filter: WebhookEventFilter,
    ) -> EventPage:
        """A page of the merchant's events, newest first, with their deliveries and the
        endpoints those name: three statements, whatever the page's size."""
        if not 1 <= first <= MAX_PAGE:
            raise ValidationError.on("first", f"must be between 1 and {MAX_PAGE}")
        keyset = _decode_cursor(after) if after is not None else None
        async with self._engine.connect() as conn:
            found = await webhooks.list_events(
                conn,
                merchant_id=merchant_id,
                event_filter=event_filter,
                after=keyset,
                limit=first + 1,
            )
            page = found[:first]
            delivered = await webhooks.deliveries_of_events(
                conn, event_ids=[event.id for event in page]
            )
            endpoints = await webhooks.get_endpoints(
                conn, endpoint_ids={delivery.endpoint_id for delivery in delivered}
            )
        by_event: dict[UUID, list[WebhookDelivery]] = {event.id: [] for event in page}
        for delivery in delivered:
            by_event[delivery.event_id].append(delivery)
        return EventPage(
            events=page,
            deliveries=by_event,
            endpoints=endpoints,
            has_next_page=len(found) > first,
            end_cursor=encode_cursor(page[-1]) if page else None,
        )


_CURSOR_PREFIX = "whev1:"


def encode_cursor(event: WebhookEvent) -> str:
    """Opaque to clients: the keyset (created_at, id) of the page's last event."""
    raw = f"{_CURSOR_PREFIX}{event.created_at.isoformat()}|{event.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith(_CURSOR_PREFIX) or len(cursor) > 200:
            raise ValueError
        created_at, _, event_id = raw.removeprefix(_CURSOR_PREFIX).partition("|")
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError
        return moment, UUID(event_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError.on("after", "is not a cursor of this list") from None
