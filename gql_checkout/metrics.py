"""Prometheus metrics: HTTP requests, GraphQL operations, subscriptions, the database pool.

One registry per app (not the global one), so several apps in one process (tests)
never share counters. With ``--workers N`` each worker keeps its own; scrape each
replica's workers through their own port, or run one worker per replica.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    def __init__(self, engine: AsyncEngine) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "gql_checkout_http_requests_total",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "gql_checkout_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.graphql_operations = Counter(
            "gql_checkout_graphql_operations_total",
            "GraphQL operations by type, root fields and first error code (OK without error).",
            ["operation_type", "root_fields", "code"],
            registry=self.registry,
        )
        self.graphql_latency = Histogram(
            "gql_checkout_graphql_operation_duration_seconds",
            "GraphQL operation latency by type and root fields.",
            ["operation_type", "root_fields"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.subscriptions_open = Gauge(
            "gql_checkout_subscriptions_open",
            "Subscriptions currently open in this process.",
            registry=self.registry,
        )
        self.registry.register(_PoolCollector(engine))
        # Labelled children, looked up once: `labels()` costs a few µs on every request.
        # The label values are bounded by design (route templates, schema field names,
        # error codes), so this stays small.
        self._child = lru_cache(maxsize=4096)(_labelled)

    def observe_request(self, *, route: str, method: str, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        self._child(self.http_requests, (route, method, str(status))).inc()
        self._child(self.http_latency, (route, method)).observe(elapsed)

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
        elapsed = time.perf_counter() - started
        self._child(self.graphql_operations, (operation_type, root_fields, code)).inc()
        self._child(self.graphql_latency, (operation_type, root_fields)).observe(elapsed)


def _labelled(metric: Any, labels: tuple[str, ...]) -> Any:
    return metric.labels(*labels)


class _PoolCollector(Collector):
    """The connection pool as it is at scrape time."""

    def __init__(self, engine: AsyncEngine) -> None:
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
