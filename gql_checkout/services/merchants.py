"""Merchants and their API keys: who is calling."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from gql_checkout.domain.clock import Clock, stamp, utc_now
from gql_checkout.domain.errors import Forbidden, Unauthenticated, ValidationError
from gql_checkout.domain.merchants import (
    DEFAULT_CARD_CATEGORIES,
    Appearance,
    Merchant,
    MerchantProfile,
)
from gql_checkout.domain.validation import parse_bearer
from gql_checkout.services.rate_limits import RateLimiter
from gql_checkout.storage import repository

API_KEY_PREFIX = "gqlc_sk_"


def _new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def _hash_api_key(api_key: str) -> str:
    # Keys are 256-bit random: a fast hash suffices and lets a key be found by index.
    return hashlib.sha256(api_key.encode()).hexdigest()


class MerchantService:
    def __init__(
        self, *, engine: AsyncEngine, limiter: RateLimiter, clock: Clock = utc_now
    ) -> None:
        self._engine = engine
        self._limiter = limiter
        self._clock = clock

    async def authenticate(self, *, authorization: str) -> Merchant:
        """The merchant whose API key is in an ``Authorization: Bearer`` header."""
        api_key = parse_bearer(authorization)
        api_key_hash = _hash_api_key(api_key)
        async with self._engine.connect() as conn:
            found = await repository.get_merchant_by_api_key_hash(conn, api_key_hash=api_key_hash)
        if found is None or not hmac.compare_digest(found[1], api_key_hash):
            raise Unauthenticated("The API key is not valid.")
        return found[0]

    async def resolve_reader(
        self, *, merchant_id: UUID | None, authorization: str | None, client: str
    ) -> UUID:
        """The merchant a read acts for: X-Merchant-Id, or the API key's, which must agree;
        counted against the read limit of that merchant and client address."""
        if authorization is None:
            if merchant_id is None:
                raise ValidationError.on(
                    "X-Merchant-Id", "is required (or an Authorization: Bearer <apiKey> header)"
                )
            reader = merchant_id
        else:
            reader = (await self._authorized(authorization, claimed=merchant_id)).id
        await self._limiter.check_read(merchant_id=reader, client=client)
        return reader

    async def resolve_writer(
        self, *, authorization: str | None, merchant_id: UUID | None
    ) -> Merchant:
        """The merchant a write acts for: its API key is required; counted per merchant."""
        if authorization is None:
            raise Unauthenticated("Writes need an Authorization: Bearer <apiKey> header.")
        merchant = await self._authorized(authorization, claimed=merchant_id)
        await self._limiter.check_write(merchant_id=merchant.id)
        return merchant

    async def _authorized(self, authorization: str, *, claimed: UUID | None) -> Merchant:
        merchant = await self.authenticate(authorization=authorization)
        if claimed is not None and claimed != merchant.id:
            raise Forbidden("The API key belongs to another merchant than X-Merchant-Id.")
        return merchant

    async def create_merchant(
        self, *, name: str, appearance: Appearance | None = None
    ) -> tuple[Merchant, str]:
        """Creates a merchant; the API key is returned once and only its hash is kept."""
        name = name.strip()
        if not 0 < len(name) <= 200:
            raise ValidationError.on("name", "must have 1 to 200 characters")
        merchant = Merchant(id=uuid.uuid4(), name=name)
        api_key = _new_api_key()
        profile = MerchantProfile(
            merchant_id=merchant.id,
            appearance=appearance or Appearance(),
            card_categories=DEFAULT_CARD_CATEGORIES,
        )
        async with self._engine.begin() as conn:
            await repository.insert_merchant(
                conn,
                merchant=merchant,
                api_key_hash=_hash_api_key(api_key),
                profile=profile,
                now=stamp(self._clock()),
            )
        return merchant, api_key

    async def rotate_api_key(self, *, merchant_id: UUID, api_key: str | None = None) -> str:
        """Issues a new API key for a merchant (``api_key``, or a random one); the old one
        stops working."""
        api_key = api_key or _new_api_key()
        async with self._engine.begin() as conn:
            await repository.set_merchant_api_key_hash(
                conn, merchant_id=merchant_id, api_key_hash=_hash_api_key(api_key)
            )
        return api_key

    async def find_merchant(self, *, name: str) -> Merchant | None:
        async with self._engine.connect() as conn:
            return await repository.get_merchant_by_name(conn, name=name)
