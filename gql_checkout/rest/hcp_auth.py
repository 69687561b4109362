"""GET /v1/hcp/auth: nginx's auth_request asks whether an hcpToken opens its session."""

from __future__ import annotations

from http import HTTPStatus

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gql_checkout.domain.errors import Unauthenticated
from gql_checkout.domain.validation import parse_bearer
from gql_checkout.services.checkout_sessions import CheckoutService


def hcp_auth_route(*, checkout: CheckoutService) -> Route:
    async def hcp_auth(request: Request) -> Response:
        """For nginx auth_request: 204 with the session's ids, or 401."""
        authorization = request.headers.get("authorization")
        if authorization is None:
            raise Unauthenticated("An hcpToken is required: Authorization: Bearer <hcpToken>.")
        session = await checkout.authorize_hcp_token(token=parse_bearer(authorization))
        return Response(
            status_code=HTTPStatus.NO_CONTENT,
            headers={
                "X-Checkout-Session-Id": str(session.id),
                "X-Merchant-Id": str(session.merchant_id),
                "Cache-Control": "no-store",
            },
        )

    return Route("/v1/hcp/auth", hcp_auth, methods=["GET"])
