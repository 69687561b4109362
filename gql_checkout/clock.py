"""Time, as the service sees it (tests and benchmarks hand in their own clock)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> datetime:
    """Stored times are whole seconds: the API shows whole seconds, and a session then
    expires exactly when its printed expiresAt says."""
    return moment.replace(microsecond=0)
