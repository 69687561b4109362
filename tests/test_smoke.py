from __future__ import annotations

import httpx
import pytest

from tests.conftest import MerchantCredentials, StatementCounter
from tests.helpers import create_session, graphql

pytestmark = pytest.mark.anyio

STATUS_QUERY = """
query Status($id: ID!) { checkoutSession(id: $id) { checkoutSessionStatus } }
"""


async def test_status_only_query_issues_one_statement(
    client: httpx.AsyncClient, merchant: MerchantCredentials, statements: StatementCounter
) -> None:
    session = await create_session(client, merchant.api_key)
    statements.reset()

    body = await graphql(client, STATUS_QUERY, {"id": session["id"]}, merchant.read_headers)

    assert body == {"data": {"checkoutSession": {"checkoutSessionStatus": "INITIATED"}}}
    assert statements.count == 1
