"""A clock the test sets: the app reads it through its ``clock`` argument."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """The app's time, set by the test (the app reads it through its ``clock`` argument)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
