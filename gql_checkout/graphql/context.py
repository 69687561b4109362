"""The per-request GraphQL context: who is calling, and the request's loaders."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from uuid import UUID

from strawberry.types import Info as StrawberryInfo

from gql_checkout.domain.errors import Forbidden, Unauthenticated, ValidationError
from gql_checkout.domain.merchants import Merchant, Reader
from gql_checkout.domain.validation import parse_uuid
from gql_checkout.graphql.loaders import (
    CheckoutSessionByIdLoader,
    MerchantProfileByMerchantIdLoader,
)
from gql_checkout.http.metrics import Metrics
from gql_checkout.services.checkout_sessions import CheckoutService
from gql_checkout.services.merchants import MerchantService
from gql_checkout.services.webhooks import WebhookService


@dataclass
class GraphQLContext:
    service: CheckoutService
    merchants: MerchantService
    metrics: Metrics
    webhooks: WebhookService
    merchant_id_header: str | None
    authorization: str | None
    client: str
    now: datetime
    # Set by Strawberry from a websocket's connection_init payload.
    connection_params: dict[str, object] | None = None
    # What the caller's identity is charged against the rate limits when first resolved:
    # the request's root fields (graphql/view.py counts them), else one.
    read_cost: int = 1
    write_cost: int = 1
    _reader: Reader | None = field(default=None, init=False)
    _writer: Merchant | None = field(default=None, init=False)
    # The merchant each subscription of this operation acts for, once checked (and counted).
    _subscribers: dict[UUID, UUID] = field(default_factory=dict, init=False)
    # Root fields resolve concurrently: the lock makes the credential check run once.
    _identity_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    @classmethod
    def create(
        cls,
        *,
        service: CheckoutService,
        merchants: MerchantService,
        metrics: Metrics,
        webhooks: WebhookService,
        merchant_id_header: str | None,
        authorization: str | None,
        client: str,
    ) -> GraphQLContext:
        return cls(
            service=service,
            merchants=merchants,
            metrics=metrics,
            webhooks=webhooks,
            merchant_id_header=merchant_id_header,
            authorization=authorization,
            client=client,
            now=service.clock(),
        )

    def for_operation(self) -> GraphQLContext:
        """A fresh context for one more operation of the same connection (a websocket's):
        its own instant, loaders and identity check, and as credentials those of
        connection_init (``authorization``, ``hcpToken`` as a bearer, ``merchantId``),
        else the upgrade request's headers."""
        params = self.connection_params or {}
        authorization, merchant_id = self.authorization, self.merchant_id_header
        if isinstance(params.get("authorization"), str):
            authorization = str(params["authorization"])
        elif isinstance(params.get("hcpToken"), str):
            authorization = f"Bearer {params['hcpToken']}"
        if isinstance(params.get("merchantId"), str):
            merchant_id = str(params["merchantId"])
        return replace(
            self,
            now=self.service.clock(),
            read_cost=1,
            write_cost=1,
            authorization=authorization,
            merchant_id_header=merchant_id,
        )

    async def check_connection(self) -> None:
        """connection_init's credentials (else the upgrade request's), checked as a read
        would check them, without counting one: raises if they are bad or missing."""
        params = self.connection_params or {}
        for name in ("merchantId", "hcpToken", "authorization"):
            if params.get(name) is not None and not isinstance(params[name], str):
                raise ValidationError.on(name, "must be a string")
        token = params.get("hcpToken")
        if isinstance(token, str):
            await self.service.authorize_hcp_token(token=token)
            return
        operation = self.for_operation()
        if operation.authorization is None and operation.merchant_id_header is None:
            raise Unauthenticated(
                "connection_init must carry merchantId, hcpToken or authorization."
            )
        await self.merchants.resolve_reader(
            merchant_id=operation._claimed_merchant_id(),
            authorization=operation.authorization,
            client=self.client,
            cost=0,
        )

    def refresh(self) -> None:
        """A new instant and empty loaders, for a subscription's next event: its nested
        sessions are read as they are at that event, not as at the first."""
        self.now = self.service.clock()
        self.__dict__.pop("sessions_by_id", None)
        self.__dict__.pop("profiles_by_merchant_id", None)

    # The loaders are made on first use: a compiled plan never needs them.
    @cached_property
    def sessions_by_id(self) -> CheckoutSessionByIdLoader:
        return CheckoutSessionByIdLoader(self.service)

    @cached_property
    def profiles_by_merchant_id(self) -> MerchantProfileByMerchantIdLoader:
        return MerchantProfileByMerchantIdLoader(self.service)

    async def reader(self) -> Reader:
        """The merchant reads act for: X-Merchant-Id or the API key's (checked once per request)."""
        async with self._identity_lock:
            return await self._resolve_reader()

    async def _resolve_reader(self) -> Reader:
        if self._reader is None:
            self._reader = await self.merchants.resolve_reader(
                merchant_id=self._claimed_merchant_id(),
                authorization=self.authorization,
                client=self.client,
                cost=self.read_cost,
            )
        return self._reader

    async def subscriber(self, checkout_session_id: UUID) -> UUID:
        """The merchant a subscription acts for: connection_init's hcpToken or merchantId,
        else the upgrade request's headers (as for reads). Each subscription's start counts
        as one read against the limits, however many a connection opens; asked again in
        the same operation (a compiled subscription handing an error over to Strawberry),
        the answer is remembered, not counted twice."""
        known = self._subscribers.get(checkout_session_id)
        if known is None:
            known = self._subscribers[checkout_session_id] = await self._subscriber(
                checkout_session_id
            )
        return known

    async def _subscriber(self, checkout_session_id: UUID) -> UUID:
        params = self.connection_params or {}
        token = params.get("hcpToken")
        merchant_id = params.get("merchantId")
        if token is not None:
            if not isinstance(token, str):
                raise ValidationError.on("hcpToken", "must be a string")
            session = await self.service.authorize_hcp_token(token=token)
            if session.id != checkout_session_id:
                raise Forbidden("The hcpToken grants access to another checkout session.")
            subscriber = session.merchant_id
        elif merchant_id is not None:
            if not isinstance(merchant_id, str):
                raise ValidationError.on("merchantId", "must be a UUID")
            subscriber = self.merchants.claimed_reader(parse_uuid(merchant_id, field="merchantId"))
        else:
            # The operation's reader, charged once: by the view over HTTP (SSE), at the
            # operation's start over a websocket (a context each, graphql/websockets.py).
            reader = await self.reader()
            if reader.checkout_session_id not in (None, checkout_session_id):
                raise Forbidden("The hcpToken grants access to another checkout session.")
            return reader.merchant_id
        await self.merchants.count_read(merchant_id=subscriber, client=self.client)
        return subscriber

    async def writer(self) -> Merchant:
        """The merchant of the API key; every mutation needs one."""
        async with self._identity_lock:
            return await self._resolve_writer()

    async def _resolve_writer(self) -> Merchant:
        if self._writer is None:
            self._writer = await self.merchants.resolve_writer(
                authorization=self.authorization,
                merchant_id=self._claimed_merchant_id(),
                cost=self.write_cost,
            )
        return self._writer

    async def back_office_reader(self) -> UUID:
        """The merchant a list acts for: a read whose credential is the merchant's API key
        (X-Merchant-Id alone or an hcpToken is not enough: a list names sessions the
        caller holds no id of). Checked and charged once, as every read of the request."""
        reader = await self.reader()
        if not reader.by_api_key:
            raise Unauthenticated("Lists need an Authorization: Bearer <apiKey> header.")
        return reader.merchant_id

    def _claimed_merchant_id(self) -> UUID | None:
        if self.merchant_id_header is None:
            return None
        return parse_uuid(self.merchant_id_header, field="X-Merchant-Id")


Info = StrawberryInfo[GraphQLContext, None]
