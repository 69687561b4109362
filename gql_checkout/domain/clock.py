"""Time, as the service sees it (tests and benchmarks hand in their own clock), and the
API's one timestamp form."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import orjson

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> datetime:
    """Stored times are whole seconds: the API shows whole seconds, and a session then
    expires exactly when its printed expiresAt says."""
    return moment.replace(microsecond=0)


def rfc3339(moment: datetime) -> str:
    """The one timestamp form of the API, REST and GraphQL alike: UTC, whole seconds
    (truncated), with ``Z``.

    orjson writes it in C: 0.44 µs, against 1.48 for ``isoformat`` and slicing. Cheap
    enough to need no memo: with one, a timestamp not rendered lately cost ~2 µs (1.48
    and the memo's ~0.5), and a repeated one saved 0.3.
    """
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return _dumps(moment, option=_RFC3339)[1:-1].decode()


_dumps = orjson.dumps
_RFC3339 = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS
