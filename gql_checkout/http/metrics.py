"""Prometheus metrics: HTTP requests, GraphQL operations, subscriptions, the database pool.

One registry per app (not the global one), so several apps in one process (tests)
never share counters. With ``--workers N`` each worker keeps its own; scrape each
replica's workers through their own port, or run one worker per replica.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_checkout.services.webhook_dispatcher import WebhookStats

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_BUCKET_LABELS = (*(str(bound) for bound in _LATENCY_BUCKETS), "+Inf")  # the `le` values


class Metrics:
    def __init__(self, engine: AsyncEngine, *, webhooks: WebhookStats | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._http = _CountedLatency(
            "gql_checkout_http_requests",
            "HTTP requests by route template, method and status code.",
            "gql_checkout_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ("route", "method", "status"),
        )
        self._graphql = _CountedLatency(
            "gql_checkout_graphql_operations",
            "GraphQL operations by type, root fields and first error code (OK without error).",
            "gql_checkout_graphql_operation_duration_seconds",
            "GraphQL operation latency by type and root fields.",
            ("operation_type", "root_fields", "code"),
        )
        self.registry.register(self._http)
        self.registry.register(self._graphql)
        self.subscriptions_open = Gauge(
            "gql_checkout_subscriptions_open",
            "Subscriptions currently open in this process.",
            registry=self.registry,
        )
        self.registry.register(_PoolCollector(engine))
        if webhooks is not None:
            self.registry.register(_WebhookCollector(webhooks))

    def observe_request(self, *, route: str, method: str, status: int, started: float) -> None:
        self._http.observe((route, method, status), time.perf_counter() - started)

    @contextmanager
    def subscription(self) -> Iterator[None]:
        self.subscriptions_open.inc()
        try:
            yield
        finally:
            self.subscriptions_open.dec()

    def observe_graphql(
        self, *, operation_type: str, root_fields: str, code: str, started: float
    ) -> None:
        self._graphql.observe((operation_type, root_fields, code), time.perf_counter() - started)


class _CountedLatency(Collector):
    """A counter by all the labels and a latency histogram by all but the last, kept as
    plain numbers and turned into Prometheus families when scraped.

    Every request updates both: prometheus_client's own metrics take a lock per value
    (they serve threaded servers), ~4.6 µs a request for the two pairs here; these are
    only ever updated from the event loop's thread, ~0.6 µs. The label values are bounded
    by design (route templates, schema field names, error codes).
    """

    def __init__(
        self, name: str, help_: str, latency_name: str, latency_help: str, labels: tuple[str, ...]
    ) -> None:
        self._name, self._help = name, help_
        self._latency_name, self._latency_help = latency_name, latency_help
        self._labels = labels
        # Per label values: a count per bucket (the last one +Inf), then the sum.
        self._series: dict[tuple[Any, ...], list[float]] = {}

    def observe(self, labels: tuple[Any, ...], seconds: float) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0] * (len(_LATENCY_BUCKETS) + 1) + [0.0]
        series[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        series[-1] += seconds

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        counter = CounterMetricFamily(self._name, self._help, labels=self._labels)
        latency = HistogramMetricFamily(
            self._latency_name, self._latency_help, labels=self._labels[:-1]
        )
        by_latency_labels: dict[tuple[str, ...], list[float]] = {}
        for labels, series in list(self._series.items()):
            names = tuple(str(label) for label in labels)
            counter.add_metric(names, sum(series[:-1]))
            merged = by_latency_labels.setdefault(names[:-1], [0.0] * len(series))
            for index, value in enumerate(series):
                merged[index] += value
        for names, series in by_latency_labels.items():
            cumulative = list(accumulate(series[:-1]))
            buckets = list(zip(_BUCKET_LABELS, cumulative, strict=True))
            latency.add_metric(list(names), buckets, sum_value=series[-1])
        yield counter
        yield latency


class _PoolCollector(Collector):
    """The connection pool as it is at scrape time."""

    def __init__(self, engine: AsyncEngine, *, webhooks: WebhookStats | None = None) -> None:
        self._pool: Any = engine.sync_engine.pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "gql_checkout_db_pool_connections",
            "Database pool connections by state.",
            labels=["state"],
        )
        for state, reading in (("checked_out", "checkedout"), ("idle", "checkedin")):
            if hasattr(self._pool, reading):
                gauge.add_metric([state], getattr(self._pool, reading)())
        yield gauge


class _WebhookCollector(Collector):
    """What this process's webhook dispatcher did, and the queue as it last looked."""

    def __init__(self, stats: WebhookStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._stats
        outcomes = CounterMetricFamily(
            "gql_checkout_webhook_attempts",
            "Webhook delivery attempts by outcome: succeeded, retrying, failed (after the "
            "last retry), gone (410, endpoint disabled), disabled (not sent).",
            labels=["outcome"],
        )
        for outcome, count in sorted(stats.outcomes.items()):
            outcomes.add_metric([outcome], count)
        yield outcomes
        yield CounterMetricFamily(
            "gql_checkout_webhook_attempt_seconds",
            "Time spent in webhook attempts (divide by the attempts for the mean).",
            value=stats.attempt_seconds,
        )
        yield GaugeMetricFamily(
            "gql_checkout_webhook_deliveries_due",
            "Webhook deliveries due and not yet claimed (all processes), as last measured.",
            value=stats.due,
        )
        yield GaugeMetricFamily(
            "gql_checkout_webhook_oldest_due_seconds",
            "How long the oldest due webhook delivery has waited, as last measured.",
            value=stats.oldest_due_seconds,
        )
