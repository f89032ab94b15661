"""Sensors that drive the financial graph's daily refresh.

* ``daily_market_refresh``: once per NYSE session, after the close (holidays and weekends skipped
  by the exchange calendar), ONE range run over every symbol partition for the raw assets. The raw
  asset then takes the new session's bars from FMP's batch quote (100 tickers per call), statements
  only for companies whose next filing can be out and whose latest filing (one cheap probe) is newer
  than what is loaded, and a seventh of the profiles (each profile is refreshed weekly, staggered).
  Only the partitions whose rows changed are materialized, so automation recomputes only them.
* ``sp500_constituents_daily``: refreshes the universe asset once a day, which keeps the symbol
  partitions in step with the index.
Dependents (TTM, ratios, metrics, analytics) follow by declarative automation.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg

from financial_assets.market_calendar import last_closed_session
from financial_assets.partitions import symbol_partitions
from financial_assets.raw.keys import RAW_SYMBOL_KEYS
from financial_assets.raw.universe import UNIVERSE_KEY
from resources.partition_runs import partition_range_tags
from resources.settings import sensors_default_status

DAILY_REFRESH_KEYS = list(RAW_SYMBOL_KEYS)
# profiles change slowly (name, sector, CEO...): a daily run refreshes the seventh whose turn it is
# and only the partitions whose rows changed are materialized, so automation recomputes only them
DAILY_REFRESH_CONFIG = {"ops": {"fmp_raw_symbols": {"config": {"profile_max_age_days": 7,
                                                                "report_changed_only": True}}}}


def range_run(keys: list[str], assets: list[dg.AssetKey], run_key: str, run_config: dict | None = None
              ) -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key, asset_selection=assets, run_config=run_config or {},
                         tags=partition_range_tags(keys[0], keys[-1]))


@dg.sensor(
    name="daily_market_refresh",
    asset_selection=DAILY_REFRESH_KEYS,
    minimum_interval_seconds=600,
    default_status=sensors_default_status(),
    description="After each NYSE close: one range run refreshing prices, new filings and due profiles.",
)
def daily_market_refresh(context: dg.SensorEvaluationContext):
    keys = symbol_partitions.get_partition_keys(dynamic_partitions_store=context.instance)
    return market_refresh(datetime.now(UTC), context.cursor, keys)


def market_refresh(now: datetime, cursor: str | None, keys: list[str]) -> dg.SensorResult | dg.SkipReason:
    """The sensor's decision for ``now``: a run for the latest closed session not yet requested."""
    session = last_closed_session(now)
    if cursor and date.fromisoformat(cursor) >= session:
        return dg.SkipReason(f"session {session} already requested; next after the next NYSE close")
    if not keys:
        return dg.SkipReason("no symbol partitions yet: materialize fmp_raw/universe first")
    return dg.SensorResult(
        run_requests=[range_run(keys, DAILY_REFRESH_KEYS, f"market-{session}", DAILY_REFRESH_CONFIG)],
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
    today = datetime.now(UTC).date().isoformat()
    if context.cursor == today:
        return dg.SkipReason("universe already refreshed today")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"universe-{today}")], cursor=today)


financial_sensors = [daily_market_refresh, sp500_constituents_daily]
