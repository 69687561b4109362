"""Per-request DataLoaders: one ``IN (...)`` query per batch."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from strawberry.dataloader import DataLoader

from gql_checkout.domain.checkout_sessions import CheckoutSession
from gql_checkout.domain.merchants import MerchantProfile
from gql_checkout.services.checkout_sessions import CheckoutService


class CheckoutSessionByIdLoader(DataLoader[UUID, CheckoutSession | None]):
    def __init__(self, service: CheckoutService) -> None:
        async def load(ids: Sequence[UUID]) -> list[CheckoutSession | None]:
            found = await service.get_checkout_sessions(checkout_session_ids=ids)
            # The current children came in the same query: a childSession costs nothing more.
            for related_id, related in found.items():
                self.prime(related_id, related)
            return [found.get(checkout_session_id) for checkout_session_id in ids]

        super().__init__(load_fn=load)


class MerchantProfileByMerchantIdLoader(DataLoader[UUID, MerchantProfile | None]):
    def __init__(self, service: CheckoutService) -> None:
        async def load(ids: Sequence[UUID]) -> list[MerchantProfile | None]:
            found = await service.get_merchant_profiles(merchant_ids=ids)
            return [found.get(merchant_id) for merchant_id in ids]

        super().__init__(load_fn=load)
