"""Real third-party clients against a real `gql-checkout serve` (CONTRACT.md section 9).

The Node clients frontends use (Apollo Client 4, urql, graphql-ws, graphql-sse) and the
GraphQL-over-HTTP reference audit run as small scripts in tests/clients/, pinned by its
package-lock.json. Each script runs one scenario and prints one JSON line with what the
client observed; the tests assert on that (data, error codes, the requests the client
really sent). gql, the Python client, runs in-process. One server serves the module.

`npm ci --prefix tests/clients` installs the Node side (.ci/run does it). Without it the
Node tests are skipped on a developer's machine (gql's still run), and fail in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

from testkit.documents import CARD, COMPLETE_MUTATION, CREATE_MUTATION
from testkit.merchants import MerchantCredentials
from testkit.server import LiveServer, running_server

pytestmark = [pytest.mark.server]

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
NODE_TIMEOUT_S = 60.0
WS_TIMEOUT_S = 10.0

POLL = "query Poll($id: ID!) { checkoutSession(id: $id) { id checkoutSessionStatus amount } }"
WATCH = """
subscription Watch($id: ID!) {
  checkoutSessionUpdated(id: $id) { id checkoutSessionStatus }
}
"""


def _node_or_skip() -> str:
    """The node binary, once tests/clients is installed; else a skip (a failure in CI)."""
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed (Node.js 20 or later)"
    elif not (CLIENTS / "node_modules").is_dir():
        missing = "tests/clients/node_modules is absent: run `npm ci --prefix tests/clients`"
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}; CI must run the real-client tests (.ci/run installs them)")
        pytest.skip(missing)
    assert node is not None
    return node


@dataclass(frozen=True)
class Gateway:
    """The module's server and its merchant."""

    server: LiveServer
    merchant: MerchantCredentials

    @property
    def url(self) -> str:
        return f"{self.server.base_url}/graphql"

    def graphql(
        self, query: str, variables: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        response = httpx.post(
            self.url, json={"query": query, "variables": variables}, headers=headers, timeout=10
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def new_session(self, **input_fields: Any) -> str:
        """An INITIATED session of the merchant, created through the public mutation."""
        variables = {"input": {"amount": 1000, "currency": "EUR", **input_fields}}
        body = self.graphql(CREATE_MUTATION, variables, self.merchant.write_headers)
        assert "errors" not in body, body
        session_id: str = body["data"]["createCheckoutSession"]["id"]
        return session_id

    def status(self, session_id: str) -> str:
        body = self.graphql(POLL, {"id": session_id}, self.merchant.read_headers)
        status: str = body["data"]["checkoutSession"]["checkoutSessionStatus"]
        return status


@dataclass(frozen=True)
class NodeClients:
    """Runs the client scripts of tests/clients against the gateway."""

    node: str
    gateway: Gateway

    def run(self, script: str, scenario: str, session_id: str | None = None) -> dict[str, Any]:
        """Runs `node tests/clients/<script> <scenario>`; returns the JSON line it printed."""
        env = {
            **os.environ,
            "GQL_CHECKOUT_URL": self.gateway.url,
            "GQL_CHECKOUT_MERCHANT_ID": self.gateway.merchant.merchant_id,
            "GQL_CHECKOUT_API_KEY": self.gateway.merchant.api_key,
        }
        if session_id is not None:
            env["GQL_CHECKOUT_SESSION_ID"] = session_id
        completed = subprocess.run(
            [self.node, str(CLIENTS / script), scenario],
            cwd=CLIENTS,
            env=env,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT_S,
            check=False,
        )
        assert completed.returncode == 0, (
            f"node {script} {scenario} exited {completed.returncode}\n"
            f"--- stderr ---\n{completed.stderr}\n--- stdout ---\n{completed.stdout}"
        )
        lines = completed.stdout.strip().splitlines()
        assert len(lines) == 1, completed.stdout
        observed: dict[str, Any] = json.loads(lines[0])
        return observed


@pytest.fixture(scope="module")
def node() -> str:
    """Resolved before the server starts, so a skip costs nothing."""
    return _node_or_skip()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_server(tmp_path_factory.mktemp("clients")) as server:
        yield Gateway(server=server, merchant=server.create_merchant("Clients"))


@pytest.fixture(scope="module")
def clients(node: str, gateway: Gateway) -> NodeClients:
    return NodeClients(node=node, gateway=gateway)


@pytest.fixture
def session_id(gateway: Gateway) -> str:
    return gateway.new_session()


def _codes(errors: list[dict[str, Any]] | None) -> list[str | None]:
    return [error.get("extensions", {}).get("code") for error in errors or []]


# Apollo Client 4 -------------------------------------------------------------------------


def test_apollo_query(clients: NodeClients, session_id: str) -> None:
    observed = clients.run("apollo.mjs", "query", session_id)

    assert observed["error"] is None
    assert observed["data"] == {
        "checkoutSession": {
            "id": session_id,
            "checkoutSessionStatus": "INITIATED",
            "amount": 1000,
            "currency": "EUR",
            "__typename": "CheckoutSession",
        }
    }
    # What Apollo really sent: __typename added, its clientLibrary extension, one POST.
    [request] = observed["requests"]
    assert request["method"] == "POST"
    assert "__typename" in request["body"]["query"]
    assert request["body"]["extensions"]["clientLibrary"]["name"] == "@apollo/client"


def test_apollo_query_with_a_named_fragment(clients: NodeClients, session_id: str) -> None:
    observed = clients.run("apollo.mjs", "fragment", session_id)

    assert observed["error"] is None
    session = observed["data"]["checkoutSession"]
    assert session["id"] == session_id
    assert session["checkoutSessionStatus"] == "INITIATED"
    assert session["isExpired"] is False
    assert session["expiresAt"].endswith("Z")
    assert session["amount"] == 1000
    assert session["__typename"] == "CheckoutSession"
    [request] = observed["requests"]
    assert "...SessionParts" in request["body"]["query"]
    assert "fragment SessionParts on CheckoutSession" in request["body"]["query"]


def test_apollo_unknown_session_is_null_with_session_not_found(clients: NodeClients) -> None:
    observed = clients.run("apollo.mjs", "not-found")

    # errorPolicy "all": Apollo 4 returns the data beside a CombinedGraphQLErrors.
    assert observed["data"] == {"checkoutSession": None}
    assert observed["error"]["name"] == "CombinedGraphQLErrors"
    assert observed["error"]["codes"] == ["SESSION_NOT_FOUND"]


def test_apollo_persisted_query_link_registers_then_sends_the_hash_alone(
    clients: NodeClients, session_id: str
) -> None:
    observed = clients.run("apollo.mjs", "persisted", session_id)

    expected = {
        "checkoutSession": {
            "id": session_id,
            "checkoutSessionStatus": "INITIATED",
            "__typename": "CheckoutSession",
        }
    }
    assert (observed["first"], observed["firstError"]) == (expected, None)
    assert (observed["second"], observed["secondError"]) == (expected, None)
    unknown, registering, known = observed["requests"]
    assert "query" not in unknown["body"]
    assert unknown["body"]["extensions"]["persistedQuery"]["version"] == 1
    assert _codes(unknown["response"]["errors"]) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert "query" in registering["body"]
    assert registering["status"] == 200
    assert "query" not in known["body"]
    assert known["status"] == 200
    assert known["response"] == {"data": expected}


def test_apollo_create_mutation_with_the_api_key(clients: NodeClients, gateway: Gateway) -> None:
    observed = clients.run("apollo.mjs", "create")

    assert observed["error"] is None
    created = observed["data"]["createCheckoutSession"]
    assert created["checkoutSessionStatus"] == "INITIATED"
    assert (created["amount"], created["currency"]) == (2500, "EUR")
    assert created["merchantReference"] == "apollo-order-1"
    assert gateway.status(created["id"]) == "INITIATED"


def test_apollo_mutation_with_a_bad_api_key_is_unauthenticated(clients: NodeClients) -> None:
    observed = clients.run("apollo.mjs", "unauthenticated")

    assert observed["data"] is None
    assert observed["error"]["name"] == "CombinedGraphQLErrors"
    assert observed["error"]["codes"] == ["UNAUTHENTICATED"]


# urql ------------------------------------------------------------------------------------


def test_urql_query_over_post(clients: NodeClients, session_id: str) -> None:
    observed = clients.run("urql.mjs", "post", session_id)

    assert observed["error"] is None
    assert observed["data"]["checkoutSession"] == {
        "id": session_id,
        "checkoutSessionStatus": "INITIATED",
        "amount": 1000,
        "currency": "EUR",
    }
    assert [request["method"] for request in observed["requests"]] == ["POST"]


def test_urql_query_over_get_its_default(clients: NodeClients, session_id: str) -> None:
    observed = clients.run("urql.mjs", "get", session_id)

    assert [request["method"] for request in observed["requests"]] == ["GET"]
    assert observed["error"] is None, observed
    assert observed["data"]["checkoutSession"]["id"] == session_id
    assert observed["data"]["checkoutSession"]["checkoutSessionStatus"] == "INITIATED"


def test_urql_unknown_session_is_null_with_session_not_found(clients: NodeClients) -> None:
    observed = clients.run("urql.mjs", "not-found")

    assert observed["data"] == {"checkoutSession": None}
    assert observed["error"]["codes"] == ["SESSION_NOT_FOUND"]
    assert observed["error"]["networkError"] is None


# graphql-ws ------------------------------------------------------------------------------


def test_graphql_ws_query_then_subscription_to_completion(
    clients: NodeClients, session_id: str
) -> None:
    observed = clients.run("graphql-ws.mjs", "subscribe", session_id)

    query = observed["query"]
    assert (query["error"], query["completed"]) == (None, True)
    assert query["results"] == [
        {
            "data": {
                "checkoutSession": {
                    "id": session_id,
                    "checkoutSessionStatus": "INITIATED",
                    "amount": 1000,
                }
            }
        }
    ]
    # The script completes the payment (POST with the API key) after the first event.
    completion = observed["completion"]
    assert completion["status"] == 200
    assert completion["body"]["data"]["completeCheckoutSession"]["checkoutSessionStatus"] == (
        "COMPLETED"
    )
    subscription = observed["subscription"]
    assert (subscription["error"], subscription["completed"]) == (None, True)
    statuses = [
        result["data"]["checkoutSessionUpdated"]["checkoutSessionStatus"]
        for result in subscription["results"]
    ]
    assert statuses == ["INITIATED", "COMPLETED"]
    assert all(
        result["data"]["checkoutSessionUpdated"]["id"] == session_id
        for result in subscription["results"]
    )


def test_graphql_ws_unknown_session_is_session_not_found(clients: NodeClients) -> None:
    observed = clients.run("graphql-ws.mjs", "not-found")

    subscription = observed["subscription"]
    # The protocol allows either form: a `next` with errors then `complete`, or `error`.
    codes = [code for result in subscription["results"] for code in _codes(result["errors"])]
    if subscription["error"] is not None:
        codes += subscription["error"]["codes"]
    assert codes == ["SESSION_NOT_FOUND"]
    assert all(result.get("data") is None for result in subscription["results"])


def test_graphql_ws_without_credentials_closes_with_4403(
    clients: NodeClients, session_id: str
) -> None:
    observed = clients.run("graphql-ws.mjs", "forbidden", session_id)

    assert observed["subscription"]["results"] == []
    assert observed["subscription"]["error"] == {"closeCode": 4403, "reason": "Forbidden"}
    assert observed["closes"] == [{"code": 4403, "reason": "Forbidden"}]


# graphql-sse -----------------------------------------------------------------------------


def test_graphql_sse_query_then_subscription_to_completion(
    clients: NodeClients, session_id: str
) -> None:
    observed = clients.run("graphql-sse.mjs", "subscribe", session_id)

    query = observed["query"]
    assert (query["error"], query["completed"]) == (None, True), observed
    assert query["results"] == [
        {
            "data": {
                "checkoutSession": {
                    "id": session_id,
                    "checkoutSessionStatus": "INITIATED",
                    "amount": 1000,
                }
            }
        }
    ]
    subscription = observed["subscription"]
    assert (subscription["error"], subscription["completed"]) == (None, True), observed
    statuses = [
        result["data"]["checkoutSessionUpdated"]["checkoutSessionStatus"]
        for result in subscription["results"]
    ]
    assert statuses == ["INITIATED", "COMPLETED"]
    assert observed["completion"]["status"] == 200
    assert all(
        request["contentType"].startswith("text/event-stream") for request in observed["requests"]
    ), observed["requests"]


# The GraphQL-over-HTTP audit -------------------------------------------------------------


def test_graphql_http_audit_has_no_error_and_no_warning(clients: NodeClients) -> None:
    observed = clients.run("audit.mjs", "run")

    results = observed["results"]
    assert len(results) > 40  # the audit ran in full
    # "notice" is the audit's word for a MAY the server does not do; only errors and
    # warnings (MUST and SHOULD) break the contract.
    failing = [result for result in results if result["status"] in {"error", "warn"}]
    assert failing == [], "\n".join(
        f"{item['status']} {item['id']} {item['name']}: {item['reason']} {item['response']}"
        for item in failing
    )
    assert {result["status"] for result in results} <= {"ok", "notice"}


# gql (Python) ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_gql_query_over_http(gateway: Gateway, session_id: str) -> None:
    transport = HTTPXAsyncTransport(url=gateway.url, headers=gateway.merchant.read_headers)
    async with Client(transport=transport) as session:
        found = await session.execute(GraphQLRequest(POLL, variable_values={"id": session_id}))
        with pytest.raises(TransportQueryError) as unknown:
            await session.execute(
                GraphQLRequest(POLL, variable_values={"id": "00000000-0000-4000-8000-000000000000"})
            )

    assert found == {
        "checkoutSession": {"id": session_id, "checkoutSessionStatus": "INITIATED", "amount": 1000}
    }
    assert unknown.value.data == {"checkoutSession": None}
    assert _codes(unknown.value.errors) == ["SESSION_NOT_FOUND"]


@pytest.mark.anyio
async def test_gql_subscription_over_graphql_transport_ws(
    gateway: Gateway, session_id: str
) -> None:
    transport = WebsocketsTransport(
        url=gateway.url.replace("http://", "ws://"),
        init_payload={"merchantId": gateway.merchant.merchant_id},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    statuses: list[str] = []
    with anyio.fail_after(WS_TIMEOUT_S):
        async with Client(transport=transport) as session:
            # A query over the socket first, with the connection_init credentials.
            over_socket = await session.execute(
                GraphQLRequest(POLL, variable_values={"id": session_id})
            )
            async for event in session.subscribe(
                GraphQLRequest(WATCH, variable_values={"id": session_id})
            ):
                statuses.append(event["checkoutSessionUpdated"]["checkoutSessionStatus"])
                if len(statuses) == 1:
                    async with httpx.AsyncClient(timeout=10) as http:
                        completed = await http.post(
                            gateway.url,
                            json={
                                "query": COMPLETE_MUTATION,
                                "variables": {"id": session_id, "paymentMethod": CARD},
                            },
                            headers=gateway.merchant.write_headers,
                        )
                    assert "errors" not in completed.json(), completed.text

    assert over_socket["checkoutSession"]["checkoutSessionStatus"] == "INITIATED"
    # The loop ended because the server completed the subscription after the terminal state.
    assert statuses == ["INITIATED", "COMPLETED"]
