"""Demo data: one merchant and a few sessions in each state, seeded idempotently."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from uuid import UUID

from gql_checkout.domain import Appearance, PaymentMethod, Theme
from gql_checkout.errors import InvalidStateTransition
from gql_checkout.services import Services
from gql_checkout.validation import parse_new_checkout_session

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


async def seed_demo(services: Services) -> DemoData:
    """Reruns return the same merchant and, on the same UTC day, the same sessions.

    The API key is shown only once at creation, so each run issues the demo merchant a
    fresh one (the previous demo key stops working).
    """
    merchants, service = services.merchants, services.checkout
    merchant = await merchants.find_merchant(name=DEMO_MERCHANT_NAME)
    if merchant is None:
        merchant, api_key = await merchants.create_merchant(
            name=DEMO_MERCHANT_NAME, appearance=DEMO_APPEARANCE
        )
    else:
        api_key = await merchants.rotate_api_key(merchant_id=merchant.id)
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
    return DemoData(merchant_id=str(merchant.id), api_key=api_key, session_ids=ids)
