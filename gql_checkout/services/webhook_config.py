"""How webhooks are delivered: the settings of section 11, as the dispatcher reads them."""

from __future__ import annotations

from dataclasses import dataclass

# Seconds after each failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 28 h
# of retries, 8 attempts in all), as the contract's default.
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    # Whether this process runs a dispatcher (GQL_CHECKOUT_WEBHOOKS=off: events are still
    # recorded, another process delivers them).
    deliver: bool = True
    timeout_seconds: float = 10.0
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    # Production only: lets deliveries reach private addresses (receivers in the cluster).
    allow_private_urls: bool = False
    expiry_sweep_seconds: float = 30.0
    # Requests in flight at once, in all and to one endpoint.
    max_in_flight: int = 64
    max_in_flight_per_endpoint: int = 8
    # How often a dispatcher looks for due deliveries without being woken (retries, and
    # other processes' events on SQLite).
    poll_seconds: float = 1.0

    @property
    def lease_seconds(self) -> float:
        """How long a claim holds a delivery: a claimed delivery may wait for its
        endpoint's turn (max_in_flight / per endpoint requests ahead of it), then take
        the whole timeout; a process that died is retried after this."""
        queued = -(-self.max_in_flight // self.max_in_flight_per_endpoint)
        return self.timeout_seconds * (queued + 1) + 5.0
