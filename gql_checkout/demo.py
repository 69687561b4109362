"""Demo data: one merchant and a few sessions in each state, seeded idempotently."""

from __future__ import annotations

import base64
import hashlib
import hmac
from contextlib import suppress
from dataclasses import dataclass
from uuid import UUID

from gql_checkout.container import Container
from gql_checkout.domain.checkout_sessions import PaymentMethod
from gql_checkout.domain.errors import InvalidStateTransition
from gql_checkout.domain.merchants import Appearance, Theme
from gql_checkout.domain.validation import parse_new_checkout_session
from gql_checkout.services.merchants import API_KEY_PREFIX

DEMO_MERCHANT_NAME = "Demo Merchant"
DEMO_APPEARANCE = Appearance(
    theme=Theme.LIGHT,
    primary_color="#635BFF",
    logo_url="https://example.com/demo-logo.svg",
)


@dataclass(frozen=True)
class DemoData:
    merchant_id: str
    api_key: str
    session_ids: dict[str, str]
    # With ``fresh_session``: an open session made by this run, for a walkthrough.
    fresh_session_id: str | None = None


def demo_api_key(*, merchant_id: UUID, secret: str) -> str:
    """The demo merchant's API key: derived from the hcpToken secret and the merchant's id,
    so it stays the same while the database and the secret do (only its hash is stored,
    so it could not be shown again otherwise)."""
    digest = hmac.new(secret.encode(), b"demo-api-key:" + merchant_id.bytes, hashlib.sha256)
    return API_KEY_PREFIX + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


async def seed_demo(container: Container, *, secret: str, fresh_session: bool = False) -> DemoData:
    """Reruns return the same merchant, the same API key and, on the same UTC day, the same
    sessions; ``fresh_session`` adds an open session of this run's own."""
    merchants, service = container.merchants, container.checkout
    merchant = await merchants.find_merchant(name=DEMO_MERCHANT_NAME)
    if merchant is None:
        merchant, _random_key = await merchants.create_merchant(
            name=DEMO_MERCHANT_NAME, appearance=DEMO_APPEARANCE
        )
    api_key = await merchants.rotate_api_key(
        merchant_id=merchant.id, api_key=demo_api_key(merchant_id=merchant.id, secret=secret)
    )
    # Keys carry the date: a rerun the next day seeds sessions that are open again.
    day = service.clock().date().isoformat()

    async def create(name: str, parent_id: str | None = None) -> str:
        request = parse_new_checkout_session(
            amount=4_990,
            currency="EUR",
            merchant_reference=f"demo-{name}",
            expires_in_seconds=86_400,
            parent_session_id=parent_id,
            idempotency_key=f"demo-{day}-{name}",
        )
        session = await service.create_checkout_session(merchant_id=merchant.id, request=request)
        return str(session.id)

    ids = {"open": await create("open"), "parent": await create("parent")}
    ids["child"] = await create("child", parent_id=ids["parent"])
    ids["completed"] = await create("completed")
    ids["canceled"] = await create("canceled")
    # Closing is idempotent in effect: a rerun finds them closed already.
    with suppress(InvalidStateTransition):
        await service.complete_checkout_session(
            merchant_id=merchant.id,
            checkout_session_id=UUID(ids["completed"]),
            payment_method=PaymentMethod(type="CARD", brand="VISA", last4="4242"),
        )
    with suppress(InvalidStateTransition):
        await service.cancel_checkout_session(
            merchant_id=merchant.id, checkout_session_id=UUID(ids["canceled"])
        )
    fresh_session_id = None
    if fresh_session:
        request = parse_new_checkout_session(
            amount=4_990,
            currency="EUR",
            merchant_reference="demo-walkthrough",
            expires_in_seconds=86_400,
            parent_session_id=None,
            idempotency_key=None,
        )
        fresh = await service.create_checkout_session(merchant_id=merchant.id, request=request)
        fresh_session_id = str(fresh.id)
    return DemoData(
        merchant_id=str(merchant.id),
        api_key=api_key,
        session_ids=ids,
        fresh_session_id=fresh_session_id,
    )
