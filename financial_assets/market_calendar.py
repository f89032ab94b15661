"""The NYSE session calendar (exchange_calendars XNYS): holidays, weekends and early closes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

# FMP publishes the day's EOD bars shortly after the close; give it half an hour
AFTER_CLOSE = timedelta(minutes=30)


@lru_cache(maxsize=1)
def nyse():
    import exchange_calendars as xcals

    return xcals.get_calendar("XNYS")


def is_session(day: date) -> bool:
    return bool(nyse().is_session(day))


def session_closed(day: date, now: datetime) -> bool:
    """True once ``day``'s close plus the publication delay is before ``now`` (aware datetime)."""
    return is_session(day) and nyse().session_close(day).to_pydatetime() + AFTER_CLOSE <= now


def last_closed_session(now: datetime) -> date:
    """The latest NYSE session whose close (plus the publication delay) is before ``now``."""
    day = now.astimezone(UTC).date()
    for _ in range(10):
        if session_closed(day, now):
            return day
        day -= timedelta(days=1)
    raise RuntimeError("no NYSE session in the last 10 days")


def previous_session(session: date) -> date:
    return nyse().previous_session(session).date()
