"""Merchants and their API keys: who is calling."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from enum import StrEnum
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from gql_checkout.domain.clock import Clock, stamp, utc_now
from gql_checkout.domain.errors import (
    Forbidden,
    GatewayError,
    Unauthenticated,
    ValidationError,
)
from gql_checkout.domain.merchants import (
    DEFAULT_CARD_CATEGORIES,
    Appearance,
    Merchant,
    MerchantProfile,
    Reader,
)
from gql_checkout.domain.validation import parse_bearer
from gql_checkout.services.hcp_tokens import HcpTokens
from gql_checkout.services.rate_limits import RateLimiter
from gql_checkout.storage import repository
from gql_checkout.storage.coalesce import Coalescer
from gql_checkout.storage.reads import Reads
from gql_checkout.storage.writes import Writes

API_KEY_PREFIX = "gqlc_sk_"
_CREDENTIAL_REQUIRED = (
    "Reads need an Authorization: Bearer <apiKey> or <hcpToken> header: "
    "a merchant id alone is not accepted."
)


class MerchantHeader(StrEnum):
    """What a merchant id named by the caller, with no credential, is worth on a read
    (``X-Merchant-Id``, connection_init's ``merchantId``)."""

    # Enough to read (the contract): the session id's random bits are the secret.
    TRUSTED = "trusted"
    # Not enough: a read also needs an API key or an hcpToken of that merchant.
    API_KEY_ONLY = "api-key-only"


def _new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def _hash_api_key(api_key: str) -> str:
    # Keys are 256-bit random: a fast hash suffices and lets a key be found by index.
    return hashlib.sha256(api_key.encode()).hexdigest()


class MerchantService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        reads: Reads,
        writes: Writes,
        limiter: RateLimiter,
        tokens: HcpTokens,
        merchant_header: MerchantHeader = MerchantHeader.TRUSTED,
        clock: Clock = utc_now,
    ) -> None:
        self._engine = engine
        self._writes = writes
        # Concurrent requests with API keys share one read (a batch, never a cache: a
        # rotated key stops working at once).
        self._merchants_by_api_key_hash = Coalescer[str, Merchant](
            reads.merchants_by_api_key_hash
        ).get_many
        self._limiter = limiter
        self._tokens = tokens
        self._merchant_header = merchant_header
        self._clock = clock

    async def authenticate(self, *, authorization: str) -> Merchant:
        """The merchant whose API key is in an ``Authorization: Bearer`` header."""
        api_key = parse_bearer(authorization)
        api_key_hash = _hash_api_key(api_key)
        found = (await self._merchants_by_api_key_hash((api_key_hash,))).get(api_key_hash)
        if found is None:
            raise Unauthenticated("The API key is not valid.")
        return found

    async def resolve_reader(
        self, *, merchant_id: UUID | None, authorization: str | None, client: str, cost: int = 1
    ) -> Reader:
        """Who a read acts for: X-Merchant-Id's merchant (if the mode trusts it alone), or
        the bearer credential's (an API key; an hcpToken, for its own session only), which
        must agree with X-Merchant-Id; ``cost`` reads counted against the read limit of
        that merchant and client."""
        if authorization is not None:
            reader = await self._credential_reader(authorization, claimed=merchant_id)
        elif merchant_id is not None:
            reader = Reader(self.claimed_reader(merchant_id))
        elif self._merchant_header is MerchantHeader.API_KEY_ONLY:
            raise Unauthenticated(_CREDENTIAL_REQUIRED)
        else:
            raise ValidationError.on(
                "X-Merchant-Id", "is required (or an Authorization: Bearer <apiKey> header)"
            )
        await self._limiter.check_read(merchant_id=reader.merchant_id, client=client, cost=cost)
        return reader

    async def carries_api_key(self, *, authorization: str | None) -> bool:
        """Whether ``authorization`` is a valid merchant API key (not an hcpToken)."""
        if authorization is None:
            return False
        try:
            credential = parse_bearer(authorization)
            if self._tokens.looks_like_token(credential):
                return False
            await self.authenticate(authorization=authorization)
        except GatewayError:
            return False
        return True

    async def count_read(self, *, merchant_id: UUID, client: str) -> None:
        """One read of a caller already identified (a subscription's start)."""
        await self._limiter.check_read(merchant_id=merchant_id, client=client)

    def claimed_reader(self, merchant_id: UUID) -> UUID:
        """A merchant the caller names without a credential (X-Merchant-Id, connection_init's
        merchantId): accepted as the reader only while the merchant header is trusted."""
        if self._merchant_header is MerchantHeader.API_KEY_ONLY:
            raise Unauthenticated(_CREDENTIAL_REQUIRED)
        return merchant_id

    async def _credential_reader(self, authorization: str, *, claimed: UUID | None) -> Reader:
        """The reader of a bearer credential: an API key's merchant, or an hcpToken's (what
        nginx passes on from the hosted checkout page) for its session alone, valid now
        (signature, audience, expiry); of the merchant X-Merchant-Id names, if it names one."""
        credential = parse_bearer(authorization)
        if not self._tokens.looks_like_token(credential):
            merchant = await self._authorized(authorization, claimed=claimed)
            return Reader(merchant.id, by_api_key=True)
        claims = self._tokens.verify(credential, now=self._clock())
        if claimed is not None and claimed != claims.merchant_id:
            raise Forbidden("The hcpToken belongs to another merchant than X-Merchant-Id.")
        return Reader(claims.merchant_id, claims.checkout_session_id)

    async def resolve_writer(
        self, *, authorization: str | None, merchant_id: UUID | None, cost: int = 1
    ) -> Merchant:
        """The merchant a write acts for: its API key is required; counted per merchant."""
        if authorization is None:
            raise Unauthenticated("Writes need an Authorization: Bearer <apiKey> header.")
        merchant = await self._authorized(authorization, claimed=merchant_id)
        await self._limiter.check_write(merchant_id=merchant.id, cost=cost)
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
        async with self._writes.begin() as conn:
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
        async with self._writes.begin() as conn:
            await repository.set_merchant_api_key_hash(
                conn, merchant_id=merchant_id, api_key_hash=_hash_api_key(api_key)
            )
        return api_key

    async def find_merchant(self, *, name: str) -> Merchant | None:
        async with self._engine.connect() as conn:
            return await repository.get_merchant_by_name(conn, name=name)
