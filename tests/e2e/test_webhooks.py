"""Webhooks across real processes: several dispatchers on one PostgreSQL database, and a
server killed (SIGKILL) right after acknowledged transitions with deliveries in flight."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testkit.documents import CANCEL_MUTATION, create_session_now
from testkit.merchants import MerchantCredentials
from testkit.receiver import Receiver, running_receiver
from testkit.server import gql_checkout_executable, running_server, stop_process
from testkit.webhooks import ALL_EVENTS, CREATE_ENDPOINT, EVENTS

pytestmark = [pytest.mark.server]

# Fast retries, a short timeout (and so a short lease: a killed process's claims are
# retried after about 14 s), no rate limits.
FAST_WEBHOOKS = {
    "GQL_CHECKOUT_WEBHOOK_TIMEOUT_SECONDS": "1",
    "GQL_CHECKOUT_WEBHOOK_RETRY_SCHEDULE": "0.2,0.5,1,1,1,1,1,1",
    "GQL_CHECKOUT_READS_PER_CLIENT": "off",
    "GQL_CHECKOUT_WRITES_PER_MERCHANT": "off",
}


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with running_receiver(tmp_path) as running:
        yield running


def _register(client: httpx.Client, merchant: MerchantCredentials, url: str) -> str:
    body = client.post(
        "/graphql",
        json={"query": CREATE_ENDPOINT, "variables": {"input": {"url": url, "events": ALL_EVENTS}}},
        headers=merchant.write_headers,
    ).json()
    secret: str = body["data"]["createWebhookEndpoint"]["secret"]
    return secret


def _cancel_sessions(client: httpx.Client, merchant: MerchantCredentials, count: int) -> list[str]:
    """Sessions created and canceled; the ids of the cancellations acknowledged."""
    acknowledged = []
    for _ in range(count):
        session = create_session_now(client, merchant.api_key)
        body = client.post(
            "/graphql",
            json={"query": CANCEL_MUTATION, "variables": {"id": session["id"]}},
            headers=merchant.write_headers,
        ).json()
        assert "errors" not in body, body
        acknowledged.append(session["id"])
    return acknowledged


def _by_session(received: list[dict[str, object]]) -> dict[str, set[str]]:
    """The webhook-ids each session's deliveries came with."""
    ids: defaultdict[str, set[str]] = defaultdict(set)
    for delivery in received:
        body = json.loads(str(delivery["body"]))
        ids[body["data"]["checkoutSession"]["id"]].add(str(delivery["webhookId"]))
    return ids


@pytest.mark.postgres
def test_several_dispatchers_deliver_each_attempt_once(
    tmp_path: Path, postgres_server: str, receiver: Receiver
) -> None:
    # given: a server that records events but does not deliver, and three dispatchers
    database_url = _fresh_database(postgres_server)
    env = {**FAST_WEBHOOKS, "GQL_CHECKOUT_WEBHOOKS": "off"}
    with running_server(tmp_path, database_url=database_url, extra_env=env) as server:
        merchant = server.create_merchant("Many")
        dispatchers = [
            _dispatcher({**server.env, **FAST_WEBHOOKS}, tmp_path / f"dispatcher-{n}.log")
            for n in range(3)
        ]
        try:
            with httpx.Client(base_url=server.base_url, timeout=10) as client:
                secret = _register(client, merchant, receiver.url("/many"))
                receiver.trust("/many", secret)
                # when: 60 transitions
                acknowledged = _cancel_sessions(client, merchant, 60)
            received = receiver.wait_for("/many", 60)
            time.sleep(2.0)  # anything delivered twice would have arrived by now
            received = receiver.received("/many")
        finally:
            for process in dispatchers:
                stop_process(process)

    # then: each event arrived once, verified
    assert sorted(_by_session(received)) == sorted(acknowledged)
    assert len(received) == 60
    assert all(delivery["verifiedWith"] == [0] for delivery in received)


def test_a_killed_server_loses_no_event(
    tmp_path: Path, database_url: str, receiver: Receiver
) -> None:
    # given: a receiver that holds the first deliveries (as many as the server sends to
    # one endpoint at once): the server dies mid-delivery
    receiver.script("/crash", *[{"delay": 5}] * 8)
    with running_server(tmp_path, database_url=database_url, extra_env=FAST_WEBHOOKS) as first:
        merchant = first.create_merchant("Crash")
        with httpx.Client(base_url=first.base_url, timeout=10) as client:
            secret = _register(client, merchant, receiver.url("/crash"))
            receiver.trust("/crash", secret)
            acknowledged = _cancel_sessions(client, merchant, 30)
        # when: SIGKILL right after the last acknowledged transition
        assert first.process is not None
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
    # The first arrivals were held by the receiver: their attempts died with the server.
    held = {_session_of(delivery) for delivery in receiver.received("/crash")[:8]}

    # then: a new server delivers every acknowledged change, under the same webhook-ids,
    # and each delivery ends acknowledged
    with (
        running_server(tmp_path, database_url=database_url, extra_env=FAST_WEBHOOKS) as second,
        httpx.Client(base_url=second.base_url, timeout=10) as client,
    ):
        statuses = _delivery_statuses(client, merchant)
        deadline = time.monotonic() + 60
        while statuses != ["SUCCEEDED"] * 30 and time.monotonic() < deadline:
            time.sleep(0.2)
            statuses = _delivery_statuses(client, merchant)
    assert len(held) == 8, "the kill must cut deliveries off mid-flight"
    assert statuses == ["SUCCEEDED"] * 30
    received = receiver.received("/crash")
    assert all(delivery["verifiedWith"] == [0] for delivery in received)
    by_session = _by_session(received)
    assert set(by_session) == set(acknowledged)
    assert all(len(ids) == 1 for ids in by_session.values())
    # those cut off mid-delivery were sent again
    again = {s for s, n in Counter(_session_of(d) for d in received).items() if n > 1}
    assert again >= held


def _dispatcher(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`gql-checkout webhooks dispatch`, its output in a file (a pipe could fill up)."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [gql_checkout_executable(), "webhooks", "dispatch"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _session_of(delivery: dict[str, object]) -> str:
    return str(json.loads(str(delivery["body"]))["data"]["checkoutSession"]["id"])


def _delivery_statuses(client: httpx.Client, merchant: MerchantCredentials) -> list[str]:
    body = client.post(
        "/graphql",
        json={"query": EVENTS, "variables": {"first": 100}},
        headers=merchant.write_headers,
    ).json()
    return [
        delivery["status"]
        for edge in body["data"]["webhookEvents"]["edges"]
        for delivery in edge["node"]["deliveries"]
    ]


def _fresh_database(server: str) -> str:
    import uuid

    import psycopg

    name = f"test_{uuid.uuid4().hex[:16]}"
    admin_url = server.replace("postgresql+asyncpg", "postgresql") + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"
