"""The dispatcher: claims due deliveries, sends them signed, records what came of them.

Any number of dispatchers (one per ``serve`` process, and ``gql-checkout webhooks
dispatch``) share the queue: a claim moves a delivery's ``next_attempt_at`` to the end
of a lease, so another dispatcher takes it only if this one died. A dispatcher is woken
by the change bus after every transition (a delivery leaves within milliseconds of its
commit), by its own process's redeliveries and sweeps, and otherwise looks every
``poll_seconds`` (retries, and events recorded by processes it does not hear from).

Outcomes are written in batches by one task (a group commit): a busy dispatcher makes
one transaction per batch of attempts, not one per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from uuid import UUID

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from gql_checkout.domain.clock import Clock, utc_now
from gql_checkout.domain.webhook_urls import UrlPolicy, parse_webhook_url
from gql_checkout.domain.webhooks import WebhookDeliveryStatus, message_id
from gql_checkout.services.webhook_config import WebhookConfig
from gql_checkout.services.webhook_secrets import SecretBox
from gql_checkout.services.webhook_transport import delivery_client
from gql_checkout.storage import outbox
from gql_checkout.storage import webhook_repository as queue
from gql_checkout.storage.webhook_repository import Claimed, Outcome
from gql_checkout.storage.writes import Writes

logger = logging.getLogger("gql_checkout.webhooks")

PENDING = WebhookDeliveryStatus.PENDING
SUCCEEDED = WebhookDeliveryStatus.SUCCEEDED
FAILED = WebhookDeliveryStatus.FAILED
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_MAX_RETRY_AFTER_SECONDS = 86_400.0
_MAX_BODY_READ = 64 * 1024
_RECORD_BATCH = 1_000
_STATS_SECONDS = 5.0
_STOP_GRACE_SECONDS = 5.0
_DATABASE_RETRY_SECONDS = 1.0


class WebhookStats:
    """What the dispatcher did, for /metrics (http/metrics.py reads it when scraped)."""

    def __init__(self) -> None:
        # Outcome of each attempt: succeeded, retrying, failed (after the last retry),
        # gone (410: the endpoint is disabled), disabled (not sent: endpoint disabled).
        self.outcomes: Counter[str] = Counter()
        self.attempts = 0
        self.attempt_seconds = 0.0
        self.due = 0
        self.oldest_due_seconds = 0.0


class Dispatcher:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        writes: Writes,
        config: WebhookConfig,
        secret_box: SecretBox,
        url_policy: UrlPolicy,
        clock: Clock = utc_now,
    ) -> None:
        # Its reads (the probe, the claimed rows, the backlog) outside a transaction: no
        # BEGIN and ROLLBACK round trips around a SELECT.
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._writes = writes
        self._config = config
        self._box = secret_box
        self._policy = url_policy
        # The app's clock: when deliveries are due, leases, secrets' expiry, the sweep.
        # webhook-timestamp alone is the wall clock's: receivers check it against theirs.
        self._clock = clock
        self.stats = WebhookStats()
        self._wakeup = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._per_endpoint: defaultdict[UUID, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(config.max_in_flight_per_endpoint)
        )
        self._outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        self._recorded = asyncio.Event()
        self._signers: dict[str, Webhook] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._stopped = asyncio.Event()

    @property
    def _stopping(self) -> bool:
        return self._stopped.is_set()

    def wake(self) -> None:
        """A delivery may be due now: look at once."""
        self._wakeup.set()

    async def start(self) -> None:
        self._stopped.clear()
        self._client = delivery_client(
            timeout_seconds=self._config.timeout_seconds,
            max_connections=self._config.max_in_flight,
            public_addresses_only=self._policy.public_addresses_only,
        )
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="webhooks: claims"),
            asyncio.create_task(self._record_loop(), name="webhooks: outcomes"),
            asyncio.create_task(self._housekeeping_loop(), name="webhooks: sweeps"),
        ]

    async def stop(self) -> None:
        """Stops claiming, gives attempts in flight a moment, records what came back."""
        self._stopped.set()
        self._slot_freed.set()
        self._wakeup.set()
        claims, recorder, housekeeping = self._tasks or (None, None, None)
        for task in (claims, housekeeping):
            if task is not None:
                # Told, not cancelled, unless it overstays: cancelled inside a statement,
                # a loop could leave its pooled connection to the garbage collector.
                _done, late = await asyncio.wait({task}, timeout=_STOP_GRACE_SECONDS)
                for overstaying in late:
                    overstaying.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._in_flight:
            _done, pending = await asyncio.wait(self._in_flight, timeout=_STOP_GRACE_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if recorder is not None:
            await self._outcomes.join()
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
        if self._client is not None:
            await self._client.aclose()
        self._tasks = []

    async def drain(self) -> None:
        """Until nothing is due and nothing is in flight (tests, the benchmark)."""
        while True:
            await self._outcomes.join()
            if not self._in_flight and not await self._claim_round():
                await self._outcomes.join()
                if not self._in_flight:
                    return
            await asyncio.sleep(0.01)

    # --- claiming -------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                claimed = await self._claim_round()
            except (SQLAlchemyError, OSError) as error:
                logger.warning("webhooks: claiming deliveries failed: %s", error)
                claimed = 0
            if self._stopping:
                return
            if self._free_slots() == 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
            elif claimed == 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._config.poll_seconds):
                        await self._wakeup.wait()

    def _free_slots(self) -> int:
        return self._config.max_in_flight - len(self._in_flight)

    async def _claim_round(self) -> int:
        free = self._free_slots()
        if free <= 0 or self._stopping:
            return 0
        now = self._clock()
        async with self._reads.connect() as conn:
            if not await queue.any_due(conn, now=now):
                return 0
        claim = uuid.uuid4()
        async with self._writes.begin() as conn:
            ids = await queue.claim_due(
                conn,
                now=now,
                lease_until=now + timedelta(seconds=self._config.lease_seconds),
                claim=claim,
                limit=free,
            )
        if not ids:
            return 0
        async with self._reads.connect() as conn:
            claimed = await queue.claimed(conn, delivery_ids=ids)
        for delivery in claimed:
            task = asyncio.create_task(self._deliver(delivery, claim))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)
        return len(claimed)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()

    # --- sending --------------------------------------------------------------------------

    async def _deliver(self, delivery: Claimed, claim: UUID) -> None:
        async with self._per_endpoint[delivery.endpoint_id]:
            attempted_at = self._clock()
            started = time.perf_counter()
            status: int | None = None
            retry_after: float | None = None
            error: str | None = None
            try:
                if not delivery.enabled:
                    error = "not sent: the endpoint is disabled"
                else:
                    status, retry_after = await self._send(delivery, attempted_at)
            except asyncio.CancelledError:
                # Stopped mid-attempt: due again at once, for this or another process.
                interrupted = self._outcome(
                    delivery, claim, attempted_at, started, None, "interrupted: stopping"
                )
                self._outcomes.put_nowait(
                    replace(
                        interrupted,
                        status=PENDING,
                        next_attempt_at=attempted_at,
                        round_attempts=delivery.round_attempts,
                    )
                )
                raise
            except TimeoutError:
                error = f"no answer within {self._config.timeout_seconds:g} s"
            except (httpx.HTTPError, ValueError) as failure:
                error = f"{type(failure).__name__}: {failure}"[:500]
            outcome = self._outcome(
                delivery, claim, attempted_at, started, status, error, retry_after
            )
        self._outcomes.put_nowait(outcome)

    async def _send(self, delivery: Claimed, attempted_at: datetime) -> tuple[int, float | None]:
        assert self._client is not None
        # The policy may have tightened since the endpoint was registered (production).
        url = parse_webhook_url(delivery.url, policy=self._policy)
        body = delivery.payload
        msg_id = message_id(delivery.event_id)
        signed_at = utc_now()
        signatures = [self._signer(delivery.secret).sign(msg_id, signed_at, body)]
        expires = delivery.previous_secret_expires_at
        if delivery.previous_secret is not None and expires is not None and attempted_at < expires:
            signatures.append(self._signer(delivery.previous_secret).sign(msg_id, signed_at, body))
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(signed_at.timestamp())),
            "webhook-signature": " ".join(signatures),
        }
        async with asyncio.timeout(self._config.timeout_seconds):
            async with self._client.stream("POST", url, content=body.encode(), headers=headers) as (
                response
            ):
                # Read a bounded answer: the connection then stays reusable.
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read > _MAX_BODY_READ:
                        break
        return response.status_code, _retry_after(response, attempted_at)

    def _signer(self, sealed: str) -> Webhook:
        signer = self._signers.get(sealed)
        if signer is None:
            if len(self._signers) > 10_000:
                self._signers.clear()
            signer = self._signers[sealed] = Webhook(self._box.open(sealed))
        return signer

    def _outcome(
        self,
        delivery: Claimed,
        claim: UUID,
        attempted_at: datetime,
        started: float,
        status: int | None,
        error: str | None,
        retry_after: float | None = None,
    ) -> Outcome:
        elapsed = time.perf_counter() - started
        rounds = delivery.round_attempts + 1
        schedule = self._config.retry_schedule
        disable: UUID | None = None
        next_attempt_at: datetime | None = None
        if status is not None and 200 <= status < 300:
            state, label = SUCCEEDED, "succeeded"
        elif status == 410:
            state, label, disable = FAILED, "gone", delivery.endpoint_id
        elif not delivery.enabled:
            state, label = FAILED, "disabled"
        elif rounds <= len(schedule):
            delay = schedule[rounds - 1]
            if retry_after is not None and status in _RETRY_AFTER_STATUSES:
                delay = max(delay, retry_after)
            state, label = PENDING, "retrying"
            next_attempt_at = attempted_at + timedelta(seconds=delay)
        else:
            state, label = FAILED, "failed"
        self.stats.outcomes[label] += 1
        self.stats.attempts += 1
        self.stats.attempt_seconds += elapsed
        log = logger.debug if state is SUCCEEDED else logger.warning
        log(
            "webhook attempt %s: event %s delivery %s status %s %s",
            label,
            delivery.event_id,
            delivery.delivery_id,
            status,
            error or "",
            extra={"event_id": str(delivery.event_id), "delivery_id": str(delivery.delivery_id)},
        )
        return Outcome(
            delivery_id=delivery.delivery_id,
            attempt_id=uuid.uuid4(),
            claim=claim,
            attempted_at=attempted_at,
            response_status=status,
            duration_ms=round(elapsed * 1000),
            error=error,
            status=state,
            next_attempt_at=next_attempt_at,
            round_attempts=rounds,
            disable_endpoint=disable,
        )

    # --- recording ------------------------------------------------------------------------

    async def _record_loop(self) -> None:
        while True:
            batch = [await self._outcomes.get()]
            while len(batch) < _RECORD_BATCH and not self._outcomes.empty():
                batch.append(self._outcomes.get_nowait())
            while True:
                try:
                    async with self._writes.begin() as conn:
                        await queue.record_outcomes(conn, outcomes=batch)
                    break
                except (SQLAlchemyError, OSError) as error:
                    # Not recorded: the lease still ends, so nothing is lost either way.
                    logger.warning("webhooks: recording attempts failed, retrying: %s", error)
                    await asyncio.sleep(_DATABASE_RETRY_SECONDS)
            for _ in batch:
                self._outcomes.task_done()

    # --- the expiry sweep and the backlog gauges ------------------------------------------

    async def _housekeeping_loop(self) -> None:
        last_sweep = -float("inf")
        while not self._stopping:
            try:
                if time.monotonic() - last_sweep >= self._config.expiry_sweep_seconds:
                    last_sweep = time.monotonic()
                    await self.sweep()
                await self._measure_backlog()
            except (SQLAlchemyError, OSError) as error:
                logger.warning("webhooks: sweep failed: %s", error)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(_STATS_SECONDS, self._config.expiry_sweep_seconds)):
                    await self._stopped.wait()

    async def sweep(self) -> int:
        """Records the expired events due; returns the deliveries they made."""
        made_in_all, more = 0, True
        while more:
            async with self._writes.begin() as conn:
                made, more = await outbox.sweep_expired(conn, now=self._clock())
            made_in_all += made
            if made:
                self.wake()
        return made_in_all

    async def _measure_backlog(self) -> None:
        now = self._clock()
        async with self._reads.connect() as conn:
            due, oldest = await queue.due_backlog(conn, now=now)
        self.stats.due = due
        self.stats.oldest_due_seconds = (now - oldest).total_seconds() if oldest else 0.0


def _retry_after(response: httpx.Response, now: datetime) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), bounded to a day."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(int(value))
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_SECONDS)
