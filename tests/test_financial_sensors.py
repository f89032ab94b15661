"""The financial sensors: NYSE sessions (holidays, early closes), cursor, one range run."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from financial_assets.sensors import (
    DAILY_REFRESH_KEYS,
    daily_market_refresh,
    last_closed_session,
    market_refresh,
    sp500_constituents_daily,
)

KEYS = ["AAPL", "BRK.B", "GOOG", "GOOGL", "MSFT"]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_sessions_follow_the_nyse_calendar():
    assert last_closed_session(utc("2026-11-24T20:00")).isoformat() == "2026-11-23"  # before today's close
    assert last_closed_session(utc("2026-11-24T21:45")).isoformat() == "2026-11-24"  # after close + delay
    assert last_closed_session(utc("2026-11-26T23:00")).isoformat() == "2026-11-25"  # Thanksgiving: closed
    assert last_closed_session(utc("2026-11-27T18:45")).isoformat() == "2026-11-27"  # early close 13:00 ET
    assert last_closed_session(utc("2026-11-29T12:00")).isoformat() == "2026-11-27"  # weekend


def test_one_range_run_per_session_and_the_cursor_stops_repeats():
    result = market_refresh(utc("2026-11-24T22:00"), None, KEYS)
    assert isinstance(result, dg.SensorResult) and result.cursor == "2026-11-24"
    [run] = result.run_requests
    assert run.tags[ASSET_PARTITION_RANGE_START_TAG] == "AAPL"
    assert run.tags[ASSET_PARTITION_RANGE_END_TAG] == "MSFT"
    assert set(run.asset_selection) == set(DAILY_REFRESH_KEYS)
    # the run config (a seventh of the profiles per day) is valid for the raw op
    from financial_assets.definitions import defs

    dg.validate_run_config(defs.resolve_implicit_global_asset_job_def(), run.run_config)
    assert run.run_config["ops"]["fmp_raw_symbols"]["config"] == {"profile_max_age_days": 7,
                                                                  "report_changed_only": True}
    # the same session is never requested twice, a holiday brings nothing new, the next session does
    assert isinstance(market_refresh(utc("2026-11-25T09:00"), result.cursor, KEYS), dg.SkipReason)
    thanksgiving = market_refresh(utc("2026-11-26T23:00"), "2026-11-25", KEYS)
    assert isinstance(thanksgiving, dg.SkipReason)
    assert market_refresh(utc("2026-11-27T19:00"), "2026-11-25", KEYS).cursor == "2026-11-27"


def test_no_partitions_means_no_run():
    assert isinstance(market_refresh(utc("2026-11-24T22:00"), None, []), dg.SkipReason)


def test_sensors_evaluate_against_an_instance():
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance)
        assert isinstance(daily_market_refresh(context), dg.SkipReason)  # no partitions yet
        instance.add_dynamic_partitions("sp500_symbols", KEYS)
        result = daily_market_refresh(dg.build_sensor_context(instance=instance))
        assert len(result.run_requests) == 1
        again = daily_market_refresh(dg.build_sensor_context(instance=instance, cursor=result.cursor))
        assert isinstance(again, dg.SkipReason)
        first = sp500_constituents_daily(dg.build_sensor_context(instance=instance))
        assert len(first.run_requests) == 1
        repeat = sp500_constituents_daily(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert isinstance(repeat, dg.SkipReason)


def test_sensors_run_by_default_and_an_operator_can_start_them_stopped(monkeypatch):
    from resources.settings import sensors_default_status

    monkeypatch.delenv("PLATFORM_SENSORS_DEFAULT", raising=False)
    assert sensors_default_status() == dg.DefaultSensorStatus.RUNNING
    assert daily_market_refresh.default_status == dg.DefaultSensorStatus.RUNNING
    monkeypatch.setenv("PLATFORM_SENSORS_DEFAULT", "stopped")
    assert sensors_default_status() == dg.DefaultSensorStatus.STOPPED
