"""The API's one timestamp form, whatever zone a datetime carries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import example, given
from hypothesis import strategies as st

from gql_checkout.domain.clock import rfc3339

_OFFSETS = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(
    moment=st.datetimes(
        min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=_OFFSETS
    )
)
@example(moment=datetime(2026, 1, 1, 12, 0, 0, 999_999, tzinfo=UTC))  # truncated, not rounded
@example(moment=datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))))  # day before
def test_a_timestamp_is_its_utc_instant_in_whole_seconds_with_z(moment: datetime) -> None:
    instant = moment.astimezone(UTC)
    # RFC 3339 wants four year digits; strftime's %Y drops leading zeros here.
    assert rfc3339(moment) == instant.replace(microsecond=0).isoformat()[:19] + "Z"
    assert datetime.fromisoformat(rfc3339(moment)) == instant.replace(microsecond=0)
