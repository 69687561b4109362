"""The soak's load: workers that poll, create and transition sessions against a real
server, and subscribers that watch sessions to their end, recording every acknowledged
write in a `Ledger` (testkit/ledger.py). bench/soak.py runs it for a while and checks the
ledger; tests/e2e/test_crash_recovery.py runs its writes until it kills the server.

Every request has a timeout; workers start nothing once stopped or past the deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException
from websockets.typing import Subprotocol

from testkit.documents import CANCEL_MUTATION, COMPLETE_MUTATION, CREATE_MUTATION, FAIL_MUTATION
from testkit.ledger import CANCELED, CLOSES_CHILDREN, COMPLETED, INITIATED, TERMINAL, Ledger
from testkit.merchants import MerchantCredentials

REQUEST_TIMEOUT_S = 10.0
# Below uvicorn's 5 s keep-alive timeout (as deploy/nginx.conf's upstream is): reusing a
# connection the server is closing at that instant fails with a ReadError that would
# say nothing about the server.
KEEPALIVE_S = 4.0
# Longer than the server's 5 s resync, the bound on a change notification that got lost.
SUBSCRIPTION_TIMEOUT_S = 15.0
# Transitions and children pick among this many newest open sessions, so workers race.
RECENT = 32
SHORT_EXPIRY_SHARE = 0.05  # created with the minimum expiresInSeconds (60)
CURRENCIES = ("EUR", "USD", "GBP", "JPY")
# One client address and one merchant make all of the load: the per-client and
# per-merchant rate limits (tests/http/test_limits.py covers them) would refuse most of it.
NO_RATE_LIMITS = {
    "GQL_CHECKOUT_READS_PER_CLIENT": "off",
    "GQL_CHECKOUT_WRITES_PER_MERCHANT": "off",
}

POLL_QUERY = """
query Poll($id: ID!) {
  checkoutSession(id: $id) {
    id checkoutSessionStatus isExpired expiresAt paymentMethod { type brand last4 }
    childSession { id checkoutSessionStatus }
    parentSession { id checkoutSessionStatus }
  }
}
"""

SUBSCRIPTION = """
subscription Watch($id: ID!) { checkoutSessionUpdated(id: $id) { checkoutSessionStatus } }
"""


class Kind(StrEnum):
    POLL_REST = "poll rest"
    POLL_GRAPHQL = "poll graphql"
    CREATE = "create"
    CREATE_KEYED = "create keyed"  # a fresh idempotency key, sent twice at once
    REPLAY = "replay key"  # a used key with its input: must return the same session
    REUSE = "reuse key"  # a used key with another input: must be refused
    CREATE_CHILD = "create child"
    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"
    SUBSCRIBE = "subscribe"


MIXED_LOAD: Mapping[Kind, int] = {
    Kind.POLL_REST: 30,
    Kind.POLL_GRAPHQL: 20,
    Kind.CREATE: 10,
    Kind.CREATE_KEYED: 3,
    Kind.REPLAY: 2,
    Kind.REUSE: 1,
    Kind.CREATE_CHILD: 10,
    Kind.COMPLETE: 8,
    Kind.FAIL: 7,
    Kind.CANCEL: 7,
}
WRITES_ONLY: Mapping[Kind, int] = {
    Kind.CREATE: 10,
    Kind.CREATE_KEYED: 3,
    Kind.REPLAY: 1,
    Kind.CREATE_CHILD: 10,
    Kind.COMPLETE: 8,
    Kind.FAIL: 6,
    Kind.CANCEL: 6,
}

# Always listed in the summary, zero or not; others (bad response, idempotency,
# subscription, unexpected HTTP status) only when they occur.
ERROR_CATEGORIES = ("5xx", "transport", "timeout", "unexpected code", "stale read")

_RACE_LOST = "INVALID_STATE_TRANSITION"
_ALWAYS_EXPECTED = frozenset({"RATE_LIMITED"})
_READ_REFUSALS = frozenset({"SESSION_CANCELED", "SESSION_EXPIRED"})
EXPECTED_REFUSALS: Mapping[Kind, frozenset[str]] = {
    Kind.POLL_REST: _READ_REFUSALS,
    Kind.POLL_GRAPHQL: _READ_REFUSALS,
    Kind.CREATE: frozenset(),
    Kind.CREATE_KEYED: frozenset(),
    Kind.REPLAY: frozenset(),
    Kind.REUSE: frozenset({"IDEMPOTENCY_KEY_REUSED"}),
    Kind.CREATE_CHILD: frozenset({_RACE_LOST}),
    Kind.COMPLETE: frozenset({_RACE_LOST}),
    Kind.FAIL: frozenset({_RACE_LOST}),
    Kind.CANCEL: frozenset({_RACE_LOST}),
    Kind.SUBSCRIBE: _READ_REFUSALS,
}
# What a refused read says about the stored state (section 6: only these answer so).
_STATUS_OF_REFUSAL = {"SESSION_CANCELED": CANCELED, "SESSION_EXPIRED": INITIATED}

_TRANSITIONS: Mapping[Kind, tuple[str, str, str]] = {
    Kind.COMPLETE: (COMPLETED, COMPLETE_MUTATION, "completeCheckoutSession"),
    Kind.FAIL: ("FAILED", FAIL_MUTATION, "failCheckoutSession"),
    Kind.CANCEL: (CANCELED, CANCEL_MUTATION, "cancelCheckoutSession"),
}


@dataclass
class Stats:
    requests: Counter[Kind] = field(default_factory=Counter)
    latencies: defaultdict[Kind, list[float]] = field(default_factory=lambda: defaultdict(list))
    refusals: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    subscriptions: int = 0
    subscriptions_completed: int = 0
    subscription_messages: int = 0
    # The last status each completed subscription sent, compared with the stored one.
    watched: dict[str, str] = field(default_factory=dict)
    elapsed: float = 0.0

    def error(self, category: str, detail: str) -> None:
        self.errors[category] += 1
        if len(self.samples) < 20:
            self.samples.append(f"{category}: {detail}")


class Load:
    """The workers: each picks an action by weight, runs it, records what it learned."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        merchant: MerchantCredentials,
        rng: random.Random,
        mix: Mapping[Kind, int] = MIXED_LOAD,
    ) -> None:
        self._client = client
        # Subscriptions go to the same server: ws://host:port/graphql.
        self._ws_url = str(client.base_url.copy_with(scheme="ws", path="/graphql"))
        self._merchant = merchant
        self.ledger = Ledger()
        self.stats = Stats()
        self._rng = rng
        self._kinds = list(mix)
        self._weights = [mix[kind] for kind in self._kinds]
        self._actions: dict[Kind, Callable[[], Awaitable[None]]] = {
            Kind.POLL_REST: self._poll_rest,
            Kind.POLL_GRAPHQL: self._poll_graphql,
            Kind.CREATE: self._create_root,
            Kind.CREATE_KEYED: self._create_keyed,
            Kind.REPLAY: self._replay,
            Kind.REUSE: self._reuse,
            Kind.CREATE_CHILD: self._create_child,
            Kind.COMPLETE: lambda: self._transition(Kind.COMPLETE),
            Kind.FAIL: lambda: self._transition(Kind.FAIL),
            Kind.CANCEL: lambda: self._transition(Kind.CANCEL),
        }
        # Insertion-ordered sets: the newest open sessions are at the end.
        self._open_roots: dict[str, None] = {}
        self._open_children: dict[str, None] = {}
        self._all: list[str] = []
        # (idempotency key, the input it was first sent with, the session it created)
        self.keys: list[tuple[str, dict[str, Any], str]] = []
        self._serial = itertools.count()
        self._deadline = 0.0
        self._stopped = False
        self.in_flight = 0

    def stop(self) -> None:
        """Starts nothing more; requests already sent finish (or time out)."""
        self._stopped = True

    def running(self) -> bool:
        return not self._stopped and time.monotonic() < self._deadline

    async def run(self, *, seconds: float, concurrency: int, subscribers: int) -> None:
        self._deadline = time.monotonic() + seconds
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(self._worker())
            for _ in range(subscribers):
                group.create_task(self._subscriber())

    async def _worker(self) -> None:
        while self.running():
            kind = self._rng.choices(self._kinds, self._weights)[0]
            await self._guarded(kind, self._actions[kind]())

    async def _guarded(self, kind: Kind, action: Awaitable[None]) -> None:
        # A body of an unexpected shape is the server's error, not the end of the soak.
        try:
            await action
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            self.stats.error("bad response", f"{kind}: {error!r}")

    # --- requests ---------------------------------------------------------------------------

    async def _send(
        self, kind: Kind, method: str, url: str, *, json_body: Any = None, write: bool = False
    ) -> httpx.Response | None:
        headers = self._merchant.write_headers if write else self._merchant.read_headers
        self.stats.requests[kind] += 1
        self.in_flight += 1
        started = time.perf_counter()
        try:
            response = await self._client.request(method, url, json=json_body, headers=headers)
        except httpx.TimeoutException as error:
            self.stats.error("timeout", f"{kind}: {error!r}")
            return None
        except httpx.TransportError as error:
            self.stats.error("transport", f"{kind}: {error!r}")
            return None
        finally:
            self.in_flight -= 1
        self.stats.latencies[kind].append(time.perf_counter() - started)
        if response.status_code >= 500:
            self.stats.error("5xx", f"{kind}: {response.status_code} {response.text[:300]}")
            return None
        return response

    async def _graphql(
        self, kind: Kind, query: str, variables: dict[str, Any], *, write: bool
    ) -> dict[str, Any] | None:
        """The response body, or None once the failure is counted."""
        response = await self._send(
            kind,
            "POST",
            "/graphql",
            json_body={"query": query, "variables": variables},
            write=write,
        )
        if response is None:
            return None
        if response.status_code != 200:
            self.stats.error("unexpected HTTP status", f"{kind}: {response.status_code}")
            return None
        body: dict[str, Any] = response.json()
        return body

    def _refused(self, kind: Kind, errors: list[dict[str, Any]]) -> str | None:
        """The code of an expected refusal (counted apart); anything else is an error."""
        codes = [(error.get("extensions") or {}).get("code") for error in errors]
        expected = EXPECTED_REFUSALS[kind] | _ALWAYS_EXPECTED
        if len(codes) == 1 and codes[0] in expected:
            code: str = codes[0]
            self.stats.refusals[code] += 1
            return code
        messages = [error.get("message") for error in errors]
        self.stats.error("unexpected code", f"{kind}: {codes} {messages}")
        return None

    # --- creates ----------------------------------------------------------------------------

    def _new_input(self, **extra: Any) -> dict[str, Any]:
        short = self._rng.random() < SHORT_EXPIRY_SHARE
        return {
            "amount": self._rng.randint(100, 500_000),
            "currency": self._rng.choice(CURRENCIES),
            "merchantReference": f"soak-{next(self._serial)}",
            "expiresInSeconds": 60 if short else 3600,
            **extra,
        }

    async def _create_root(self) -> None:
        await self._create(Kind.CREATE, self._new_input())

    async def _create(
        self,
        kind: Kind,
        variables: dict[str, Any],
        *,
        parent_id: str | None = None,
        remember: bool = True,
    ) -> str | None:
        body = await self._graphql(kind, CREATE_MUTATION, {"input": variables}, write=True)
        if body is None:
            self.ledger.create_uncertain()
            return None
        if "errors" in body:
            if self._refused(kind, body["errors"]) is None:
                self.ledger.create_uncertain()  # an INTERNAL_ERROR may come after the commit
            return None
        session = body["data"]["createCheckoutSession"]
        if session["checkoutSessionStatus"] != INITIATED:
            self.stats.error("bad response", f"{kind}: a new session {session}")
        self.ledger.created(session["id"], parent_id=parent_id, at=time.monotonic())
        if remember:
            self._remember(session["id"], parent_id=parent_id)
        return str(session["id"])

    async def _create_child(self) -> None:
        parent_id = self._pick(self._open_roots)
        if parent_id is None:
            await self._create_root()
            return
        variables = self._new_input(parentSessionId=parent_id)
        await self._create(Kind.CREATE_CHILD, variables, parent_id=parent_id)

    async def _create_keyed(self) -> None:
        key = f"soak-key-{next(self._serial)}-{self._rng.getrandbits(32):08x}"
        variables = self._new_input(idempotencyKey=key)
        bodies = await asyncio.gather(
            *(
                self._graphql(Kind.CREATE_KEYED, CREATE_MUTATION, {"input": variables}, write=True)
                for _ in range(2)
            )
        )
        created: set[str] = set()
        for body in bodies:
            if body is None:
                self.ledger.create_uncertain()
            elif "errors" in body:
                self._refused(Kind.CREATE_KEYED, body["errors"])
            else:
                created.add(body["data"]["createCheckoutSession"]["id"])
        if len(created) > 1:
            conflict = f"idempotency key {key} created {sorted(created)}"
            self.ledger.conflicts.append(conflict)
            self.stats.error("idempotency", conflict)
        for session_id in created:
            self.ledger.created(session_id, parent_id=None, at=time.monotonic())
            self._remember(session_id, parent_id=None)
            self.keys.append((key, variables, session_id))

    async def _replay(self) -> None:
        if not self.keys:
            await self._create_keyed()
            return
        key, variables, session_id = self._rng.choice(self.keys)
        body = await self._graphql(Kind.REPLAY, CREATE_MUTATION, {"input": variables}, write=True)
        if body is None:
            return
        if "errors" in body:
            self._refused(Kind.REPLAY, body["errors"])
            return
        returned = body["data"]["createCheckoutSession"]["id"]
        if returned != session_id:
            conflict = f"idempotency key {key} created {session_id}, a replay returned {returned}"
            self.ledger.conflicts.append(conflict)
            self.stats.error("idempotency", conflict)

    async def _reuse(self) -> None:
        if not self.keys:
            await self._create_keyed()
            return
        key, variables, _session_id = self._rng.choice(self.keys)
        changed = {**variables, "amount": variables["amount"] + 1}
        body = await self._graphql(Kind.REUSE, CREATE_MUTATION, {"input": changed}, write=True)
        if body is None:
            return
        if "errors" in body:
            self._refused(Kind.REUSE, body["errors"])
            return
        session = body["data"]["createCheckoutSession"]
        self.stats.error("idempotency", f"key {key} reused with another input answered {session}")
        self.ledger.created(session["id"], parent_id=None, at=time.monotonic())

    # --- transitions ------------------------------------------------------------------------

    async def _transition(self, kind: Kind, target: str | None = None) -> None:
        target = target or self._pick_open()
        if target is None:
            await self._create_root()
            return
        status, mutation, field_name = _TRANSITIONS[kind]
        variables: dict[str, Any] = {"id": target}
        card = None
        if kind is Kind.COMPLETE:
            last4 = f"{self._rng.randrange(10_000):04d}"
            card = {"type": "CARD", "brand": "VISA", "last4": last4}
            variables["paymentMethod"] = card
        elif kind is Kind.FAIL:
            variables["reason"] = "declined in the soak"
        body = await self._graphql(kind, mutation, variables, write=True)
        if body is None:
            self.ledger.transition_uncertain(target, status)
            return
        if "errors" in body:
            code = self._refused(kind, body["errors"])
            if code == _RACE_LOST:
                self._forget(target)
            elif code is None:
                self.ledger.transition_uncertain(target, status)  # it may have committed
            return
        session = body["data"][field_name]
        if session["id"] != target or session["checkoutSessionStatus"] != status:
            self.stats.error("bad response", f"{kind} {target}: answered {session}")
        if card is not None and session["paymentMethod"] != card:
            self.stats.error("bad response", f"{kind} {target} with {card}: answered {session}")
        self.ledger.transitioned(
            target, session["checkoutSessionStatus"], at=time.monotonic(), payment_method=card
        )
        self._closed(target, status)

    # --- reads ------------------------------------------------------------------------------

    async def _poll_rest(self) -> None:
        if not self._all:
            await self._create_root()
            return
        target = self._rng.choice(self._all)
        sent = time.monotonic()
        response = await self._send(Kind.POLL_REST, "GET", f"/v1/checkout-sessions/{target}")
        if response is None:
            return
        if response.status_code == 200:
            observed = response.json()["data"]["checkoutSession"]["checkoutSessionStatus"]
        else:
            problem = response.json()
            error = {"message": problem.get("detail"), "extensions": {"code": problem.get("code")}}
            code = self._refused(Kind.POLL_REST, [error])
            observed = _STATUS_OF_REFUSAL.get(code or "")
        self._check_read(Kind.POLL_REST, target, sent, observed)

    async def _poll_graphql(self) -> None:
        if not self._all:
            await self._create_root()
            return
        target = self._rng.choice(self._all)
        sent = time.monotonic()
        body = await self._graphql(Kind.POLL_GRAPHQL, POLL_QUERY, {"id": target}, write=False)
        if body is None:
            return
        if "errors" in body:
            code = self._refused(Kind.POLL_GRAPHQL, body["errors"])
            observed = _STATUS_OF_REFUSAL.get(code or "")
        else:
            observed = body["data"]["checkoutSession"]["checkoutSessionStatus"]
        self._check_read(Kind.POLL_GRAPHQL, target, sent, observed)

    def _check_read(self, kind: Kind, session_id: str, sent: float, observed: str | None) -> None:
        """A read sent after a transition was acknowledged must show it."""
        expected = self.ledger.status_known_before(session_id, sent)
        if observed is not None and expected is not None and observed != expected:
            self.stats.error(
                "stale read", f"{kind} {session_id}: {expected} acknowledged, read {observed}"
            )

    # --- subscriptions ----------------------------------------------------------------------

    async def _subscriber(self) -> None:
        while self.running():
            # Not raced before the subscription stands: it would only be refused.
            variables = self._new_input(expiresInSeconds=3600)
            session_id = await self._create(Kind.CREATE, variables, remember=False)
            if session_id is None:
                await asyncio.sleep(0.1)
                continue
            await self._guarded(Kind.SUBSCRIBE, self._watch(session_id))

    async def _watch(self, session_id: str) -> None:
        """Subscribes, closes the session after a moment (racing the workers), and counts
        the messages until `complete`."""
        self.stats.requests[Kind.SUBSCRIBE] += 1
        self.stats.subscriptions += 1
        started = time.perf_counter()
        statuses: list[str] = []
        closer: asyncio.Task[None] | None = None
        ending = "the connection closed before complete"
        try:
            async with (
                asyncio.timeout(SUBSCRIPTION_TIMEOUT_S),
                connect(
                    self._ws_url,
                    subprotocols=[Subprotocol("graphql-transport-ws")],
                    open_timeout=REQUEST_TIMEOUT_S,
                    close_timeout=2,
                ) as ws,
            ):
                init = {"merchantId": self._merchant.merchant_id}
                await ws.send(json.dumps({"type": "connection_init", "payload": init}))
                acknowledged = json.loads(await ws.recv())
                if acknowledged.get("type") != "connection_ack":
                    self.stats.error("subscription", f"connection_init answered {acknowledged}")
                    return
                subscribe = {"query": SUBSCRIPTION, "variables": {"id": session_id}}
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
                async for raw in ws:
                    message = json.loads(raw)
                    if message.get("type") == "ping":
                        await ws.send(json.dumps({"type": "pong"}))
                        continue
                    if message.get("type") == "complete":
                        ending = "complete"
                        break
                    errors = (
                        message["payload"]
                        if message.get("type") == "error"
                        else message["payload"].get("errors")
                    )
                    if errors:
                        # Refused at subscribe time (counted there), or an error: no more.
                        self._refused(Kind.SUBSCRIBE, errors)
                        return
                    updated = message["payload"]["data"]["checkoutSessionUpdated"]
                    statuses.append(updated["checkoutSessionStatus"])
                    self.stats.subscription_messages += 1
                    if closer is None:
                        self.stats.latencies[Kind.SUBSCRIBE].append(time.perf_counter() - started)
                        self._remember(session_id, parent_id=None)  # now the workers race for it
                        closer = asyncio.create_task(self._close_soon(session_id))
        except TimeoutError:
            ending = f"no complete within {SUBSCRIPTION_TIMEOUT_S:.0f} s"
        except (OSError, WebSocketException) as error:
            self.stats.error("transport", f"{Kind.SUBSCRIBE}: {error!r}")
            return
        finally:
            if closer is not None:
                await closer
        if ending != "complete" or not statuses or statuses[-1] not in TERMINAL:
            self.stats.error("subscription", f"{session_id}: {ending} after {statuses}")
            return
        self.stats.subscriptions_completed += 1
        self.stats.watched[session_id] = statuses[-1]

    async def _close_soon(self, session_id: str) -> None:
        await asyncio.sleep(self._rng.uniform(0.05, 0.5))
        kind = self._rng.choice([Kind.COMPLETE, Kind.FAIL, Kind.CANCEL])
        await self._guarded(kind, self._transition(kind, session_id))

    # --- the pools of sessions to act on ----------------------------------------------------

    def _remember(self, session_id: str, *, parent_id: str | None) -> None:
        self._all.append(session_id)
        (self._open_roots if parent_id is None else self._open_children)[session_id] = None

    def _forget(self, session_id: str) -> None:
        self._open_roots.pop(session_id, None)
        self._open_children.pop(session_id, None)

    def _closed(self, session_id: str, status: str) -> None:
        """Drops the session, and those its transition closed too, from the open pools."""
        self._forget(session_id)
        record = self.ledger.sessions[session_id]
        if record.parent_id is not None and status == COMPLETED:
            self._forget(record.parent_id)
        if record.parent_id is None and status in CLOSES_CHILDREN:
            for child_id in self.ledger.children.get(session_id, ()):
                self._forget(child_id)

    def _pick_open(self) -> str | None:
        use_children = self._open_children and self._rng.random() < 0.4
        return self._pick(self._open_children if use_children else self._open_roots)

    def _pick(self, pool: dict[str, None]) -> str | None:
        recent = list(itertools.islice(reversed(pool), RECENT))
        return self._rng.choice(recent) if recent else None
