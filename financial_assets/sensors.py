"""Sensors that drive the financial graph's daily refresh.

* ``daily_market_refresh``: once per NYSE session, after the close (holidays and weekends skipped
  by the exchange calendar), ONE range run over every symbol partition for prices and statements.
  The raw asset then fetches only the missing days, and statements only for companies whose next
  filing can be out and whose latest filing (one cheap probe) is newer than what is loaded.
* ``sp500_constituents_daily``: refreshes the universe asset once a day, which keeps the symbol
  partitions in step with the index.
Dependents (TTM, ratios, metrics, analytics) follow by declarative automation.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from financial_assets.partitions import symbol_partitions
from financial_assets.raw import BALANCE_KEY, CASH_FLOW_KEY, INCOME_KEY, PRICES_KEY
from financial_assets.raw.universe import UNIVERSE_KEY
from resources.settings import sensors_default_status

# FMP publishes the day's EOD bars shortly after the close; give it half an hour
AFTER_CLOSE = timedelta(minutes=30)
DAILY_REFRESH_KEYS = [PRICES_KEY, INCOME_KEY, BALANCE_KEY, CASH_FLOW_KEY]


@lru_cache(maxsize=1)
def _nyse():
    import exchange_calendars as xcals

    return xcals.get_calendar("XNYS")


def last_closed_session(now: datetime) -> date:
    """The latest NYSE session whose close (plus the publication delay) is before ``now``."""
    calendar = _nyse()
    day = now.astimezone(timezone.utc).date()
    for _ in range(10):
        if calendar.is_session(day) and calendar.session_close(day).to_pydatetime() + AFTER_CLOSE <= now:
            return day
        day -= timedelta(days=1)
    raise RuntimeError("no NYSE session in the last 10 days")


def range_run(keys: list[str], assets: list[dg.AssetKey], run_key: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        asset_selection=assets,
        tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]},
    )


@dg.sensor(
    name="daily_market_refresh",
    asset_selection=DAILY_REFRESH_KEYS,
    minimum_interval_seconds=600,
    default_status=sensors_default_status(),
    description="After each NYSE close: one range run refreshing prices and new filings for every symbol.",
)
def daily_market_refresh(context: dg.SensorEvaluationContext):
    keys = symbol_partitions.get_partition_keys(dynamic_partitions_store=context.instance)
    return market_refresh(datetime.now(timezone.utc), context.cursor, keys)


def market_refresh(now: datetime, cursor: str | None, keys: list[str]) -> dg.SensorResult | dg.SkipReason:
    """The sensor's decision for ``now``: a run for the latest closed session not yet requested."""
    session = last_closed_session(now)
    if cursor and date.fromisoformat(cursor) >= session:
        return dg.SkipReason(f"session {session} already requested; next after the next NYSE close")
    if not keys:
        return dg.SkipReason("no symbol partitions yet: materialize fmp_raw/universe first")
    return dg.SensorResult(
        run_requests=[range_run(keys, DAILY_REFRESH_KEYS, f"market-{session}")],
        cursor=session.isoformat(),
    )


@dg.sensor(
    name="sp500_constituents_daily",
    asset_selection=[UNIVERSE_KEY],
    minimum_interval_seconds=3600,
    default_status=sensors_default_status(),
    description="Once a day: refresh the S&P 500 universe, adding partitions for new members.",
)
def sp500_constituents_daily(context: dg.SensorEvaluationContext):
    today = datetime.now(timezone.utc).date().isoformat()
    if context.cursor == today:
        return dg.SkipReason("universe already refreshed today")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"universe-{today}")], cursor=today)


financial_sensors = [daily_market_refresh, sp500_constituents_daily]
