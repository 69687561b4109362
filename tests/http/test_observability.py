"""Metrics at /metrics and JSON logs that carry the request id."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from gql_checkout.app import create_app
from gql_checkout.settings import Settings
from testkit.clock import Clock
from testkit.documents import CANCEL_MUTATION, create_session, graphql
from testkit.merchants import MerchantCredentials
from testkit.server import running_server

pytestmark = pytest.mark.anyio

# OpenTelemetry takes one global tracer provider per process: set it once, here.
_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
trace.set_tracer_provider(_PROVIDER)

STATUS_QUERY = "query($id: ID!) { checkoutSession(id: $id) { checkoutSessionStatus } }"


def _sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text format."""
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(2))
    raise AssertionError(f"no sample {name} {labels}")


async def test_requests_and_operations_are_counted(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    path = f"/v1/checkout-sessions/{session['id']}"
    await client.get(path, headers=merchant.read_headers)
    await client.get(path, headers=merchant.read_headers)
    await client.get("/v1/checkout-sessions/nope", headers=merchant.read_headers)
    await graphql(client, STATUS_QUERY, {"id": session["id"]}, merchant.read_headers)
    await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, merchant.write_headers)
    await graphql(client, CANCEL_MUTATION, {"id": session["id"]}, merchant.write_headers)

    metrics = (await client.get("/metrics")).text

    route = "/v1/checkout-sessions/{checkoutSessionId}"
    requests = "gql_checkout_http_requests_total"
    assert _sample(metrics, requests, route=route, method="GET", status="200") == 2
    assert _sample(metrics, requests, route=route, method="GET", status="400") == 1
    # The latency histogram is by route and method: all three requests, every one in +Inf.
    latency = "gql_checkout_http_request_duration_seconds"
    assert _sample(metrics, f"{latency}_count", route=route, method="GET") == 3
    assert _sample(metrics, f"{latency}_bucket", route=route, method="GET", le="+Inf") == 3
    assert 0 < _sample(metrics, f"{latency}_sum", route=route, method="GET") < 10
    assert _sample(metrics, f"{latency}_bucket", route=route, method="GET", le="10.0") == 3
    operations = "gql_checkout_graphql_operations_total"
    assert _sample(metrics, operations, root_fields="checkoutSession", code="OK") == 1
    cancels = {"operation_type": "mutation", "root_fields": "cancelCheckoutSession"}
    assert _sample(metrics, operations, **cancels, code="OK") == 1
    assert _sample(metrics, operations, **cancels, code="INVALID_STATE_TRANSITION") == 1
    operation_latency = "gql_checkout_graphql_operation_duration_seconds_count"
    assert _sample(metrics, operation_latency, **cancels) == 2
    assert _sample(metrics, "gql_checkout_db_pool_connections", state="checked_out") == 0
    assert _sample(metrics, "gql_checkout_subscriptions_open") == 0


async def test_client_chosen_names_never_become_labels(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    await graphql(client, "{ noSuchField123 }", headers=merchant.read_headers)
    await client.get("/v1/random-path-42")

    metrics = (await client.get("/metrics")).text

    assert "noSuchField123" not in metrics
    assert "random-path-42" not in metrics
    assert (
        _sample(
            metrics,
            "gql_checkout_graphql_operations_total",
            root_fields="invalid",
            code="GRAPHQL_VALIDATION_FAILED",
        )
        == 1
    )


@pytest.mark.server
def test_logs_are_json_lines_with_the_request_id(tmp_path: Path) -> None:
    with (
        running_server(tmp_path, extra_env={"GQL_CHECKOUT_ACCESS_LOG": "true"}) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        client.get("/v1/checkout-sessions/not-a-uuid", headers={"X-Request-Id": "trace-123"})
        client.get("/healthz")
        assert server.log_path is not None
        log_path = server.log_path

    records = [
        json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")
    ]
    access = [record for record in records if record.get("request_id") == "trace-123"]
    assert access, records
    assert access[0]["logger"] == "gql_checkout.access"
    assert access[0]["path"] == "/v1/checkout-sessions/not-a-uuid"
    assert access[0]["status"] == 400
    assert {"time", "level", "message"} <= access[0].keys()


@pytest.mark.server
@pytest.mark.parametrize("access_log", [False, True])
def test_a_websocket_handshake_is_logged_only_with_the_access_log(
    tmp_path: Path, access_log: bool
) -> None:
    # given: a server with its access log off (the default) or on
    extra_env = {"GQL_CHECKOUT_ACCESS_LOG": "true"} if access_log else {}
    with running_server(tmp_path, extra_env=extra_env) as server:
        # when: a page opens a graphql-transport-ws connection
        url = server.base_url.replace("http://", "ws://") + "/graphql"
        with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as websocket:
            assert websocket.subprotocol == "graphql-transport-ws"  # accepted
        assert server.log_path is not None
        log_path = server.log_path

    # then: uvicorn's line for the handshake is there with the access log only
    handshakes = [line for line in log_path.read_text().splitlines() if '"WebSocket /' in line]
    assert bool(handshakes) is access_log, handshakes


async def test_operations_are_traced_when_configured(
    settings: Settings, clock: Clock, app: Starlette, merchant: MerchantCredentials
) -> None:
    exporter = _EXPORTER
    exporter.clear()
    traced = create_app(replace(settings, otel_tracing=True), clock=clock)
    transport = httpx.ASGITransport(app=traced)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            session = await create_session(client, merchant.api_key)
            await graphql(client, STATUS_QUERY, {"id": session["id"]}, merchant.read_headers)
    finally:
        await traced.state.container.stop()

    names = {span.name for span in exporter.get_finished_spans()}
    assert {"GraphQL Query: Create", "GraphQL Resolving: checkoutSession"} <= names, names
