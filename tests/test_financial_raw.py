"""Raw FMP layer end to end: universe + raw assets on the emulator and the offline FMP server (HTTP).

One module-wide ephemeral Dagster instance; the tests run in file order and build on each other
(universe -> first load -> rerun -> restatement -> killed load -> faults), keeping the whole file
small: a handful of symbols, 5 years of prices.
"""

from __future__ import annotations

import logging
from datetime import date

import dagster as dg
import pytest
import requests
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from financial_assets.raw import load, raw_asset_checks, raw_assets
from financial_assets.raw.keys import PRICES_KEY, PROFILES_KEY, RAW_SYMBOL_KEYS
from financial_assets.raw.universe import UNIVERSE_KEY
from resources.shared import shared_resources

RAW_SELECTION = dg.AssetSelection.groups("fmp_raw") - dg.AssetSelection.assets(UNIVERSE_KEY)
STATEMENT_TABLES = ("INCOME_STATEMENTS", "BALANCE_SHEETS", "CASH_FLOW_STATEMENTS")
STATEMENT_KEY = "SYMBOL, PERIOD_END_DATE, PERIOD"
CHANGED_ONLY = {"report_changed_only": True}  # as the daily refresh runs


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="module")
def resources():
    return shared_resources()


@pytest.fixture(scope="module")
def offline(resources):
    """Base URL of the offline FMP server (started by the client) with a knob setter."""
    from resources.offline_fmp import ensure_offline_fmp

    resources["fmp"].get_client()
    base = ensure_offline_fmp()

    def configure(**knobs):
        response = requests.post(f"{base}/_offline/config", json=knobs, timeout=10)
        response.raise_for_status()
        return response.json()

    yield configure
    requests.post(f"{base}/_offline/reset", timeout=10)


def _run(instance, resources, keys: list[str], config: dict | None = None, selection=RAW_SELECTION,
         raise_on_error: bool = True):
    tags = {}
    partition_key = keys[0] if len(keys) == 1 else None
    if len(keys) > 1:
        tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
    return dg.materialize(
        [*raw_assets, *raw_asset_checks], selection=selection, instance=instance, resources=resources,
        partition_key=partition_key, tags=tags, raise_on_error=raise_on_error,
        run_config={"ops": {"fmp_raw_symbols": {"config": config or {}}}},
    )


def _metadata(result) -> dict[str, dict]:
    out = {}
    for event in result.get_asset_materialization_events():
        out.setdefault(event.asset_key.to_user_string(), {
            k: v.value for k, v in event.materialization.metadata.items()})
    return out


def _checks(result) -> dict[tuple[str, str], bool]:
    return {(e.event_specific_data.asset_key.to_user_string(), e.event_specific_data.check_name):
            e.event_specific_data.passed
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def _server_calls(resources) -> int:
    """Requests the offline FMP server answered so far (every endpoint)."""
    base = resources["fmp"].get_client().base_url
    return requests.get(f"{base}/_offline/stats", timeout=10).json()["calls"]


def _messages(instance, result) -> list[str]:
    return [entry.user_message or "" for entry in instance.all_logs(result.run_id)]


def _query(warehouse, sql: str):
    with warehouse.get_connection() as conn:
        return conn.cursor().execute(sql).fetchall()


def _table_counts(warehouse) -> dict[str, tuple[int, int]]:
    """(rows, distinct natural keys) per raw table."""
    counts = {}
    for table, key in [("COMPANY_PROFILES", "SYMBOL"), ("DAILY_PRICES", "SYMBOL, DATE"),
                       *((t, STATEMENT_KEY) for t in STATEMENT_TABLES)]:
        rows = _query(warehouse, f"SELECT COUNT(*) FROM FMP_RAW.{table}")[0][0]
        keys = _query(warehouse, f"SELECT COUNT(*) FROM (SELECT DISTINCT {key} FROM FMP_RAW.{table})")[0][0]
        counts[table] = (rows, keys)
    return counts


def test_universe_from_fmp_sets_partitions_and_share_classes(instance, resources, warehouse, offline):
    result = dg.materialize([*raw_assets, *raw_asset_checks], selection=dg.AssetSelection.assets(UNIVERSE_KEY),
                            instance=instance, resources=resources)
    assert result.success
    meta = _metadata(result)["fmp_raw/universe"]
    assert meta["source"] == "fmp" and meta["members"] == 503 and meta["api_calls"] == 1
    partitions = instance.get_dynamic_partitions("sp500_symbols")
    assert len(partitions) == 503 and {"BRK.B", "GOOG", "GOOGL", "BF.B"} <= set(partitions)
    rows = dict(_query(warehouse, "SELECT SYMBOL, STATEMENT_SYMBOL FROM FMP_RAW.UNIVERSE WHERE IS_MEMBER"))
    assert rows["GOOG"] == "GOOGL" and rows["FOX"] == "FOXA" and rows["NWS"] == "NWSA"
    assert rows["BRK.B"] == "BRK.B" and rows["AAPL"] == "AAPL"
    assert _checks(result) == {("fmp_raw/universe", "keys_not_null_and_unique"): True}


def test_universe_falls_back_to_packaged_list_on_402(instance, resources, warehouse, offline):
    offline(plan="starter")
    try:
        result = dg.materialize([*raw_assets, *raw_asset_checks], selection=dg.AssetSelection.assets(UNIVERSE_KEY),
                                instance=instance, resources=resources)
    finally:
        offline(plan="premium")
    meta = _metadata(result)["fmp_raw/universe"]
    assert meta["source"] == "packaged list" and "Fallback" in meta["source_note"]
    assert meta["members"] == 503 and meta["removed"] == 0
    assert any(entry.level == logging.WARNING and "packaged S&P 500 list" in (entry.user_message or "")
               for entry in instance.all_logs(result.run_id))
    assert _query(warehouse, "SELECT COUNT(*), MIN(SOURCE) FROM FMP_RAW.UNIVERSE WHERE IS_MEMBER") == [
        (503, "packaged list")]
    # back to FMP: the CIKs and FMP's sectors return
    dg.materialize([*raw_assets, *raw_asset_checks], selection=dg.AssetSelection.assets(UNIVERSE_KEY),
                   instance=instance, resources=resources)
    assert _query(warehouse, "SELECT MIN(SOURCE), COUNT_IF(CIK IS NULL) FROM FMP_RAW.UNIVERSE") == [("fmp", 0)]


def test_first_load_single_symbol_and_range_with_share_classes(instance, resources, warehouse, offline):
    single = _run(instance, resources, ["BRK.B"])
    meta = _metadata(single)
    assert meta["fmp_raw/daily_prices"]["rows_written"] > 1000  # ~5 years
    assert "BRK.B" in meta["fmp_raw/daily_prices"]["price_chart"]
    assert meta["fmp_raw/income_statements"]["api_calls"] == 6  # 3 kinds x (annual + quarter), no probe
    assert meta["fmp_raw/company_profiles"]["rows_written"] == 1
    assert all(_checks(single).values()) and len(_checks(single)) == 7

    # GOOG..GOOGL is a range of two partitions (keys are added in sorted order): one run
    ranged = _run(instance, resources, ["GOOG", "GOOGL"])
    meta = _metadata(ranged)
    assert meta["fmp_raw/daily_prices"]["partitions"] == 2
    assert "price_chart" not in meta["fmp_raw/daily_prices"]
    assert meta["fmp_raw/income_statements"]["api_calls"] == 6  # statements once for the company
    assert meta["fmp_raw/company_profiles"]["rows_written"] == 2
    assert all(_checks(ranged).values())
    symbols = {t: {r[0] for r in _query(warehouse, f"SELECT DISTINCT SYMBOL FROM FMP_RAW.{t}")}
               for t in ("DAILY_PRICES", *STATEMENT_TABLES)}
    assert symbols["DAILY_PRICES"] == {"BRK.B", "GOOG", "GOOGL"}
    for table in STATEMENT_TABLES:
        assert symbols[table] == {"BRK.B", "GOOGL"}  # GOOG's statements are GOOGL's
    periods = {r[0] for r in _query(warehouse, "SELECT DISTINCT PERIOD FROM FMP_RAW.INCOME_STATEMENTS")}
    assert periods == {"FY", "Q1", "Q2", "Q3", "Q4"}
    counts = _table_counts(warehouse)
    assert all(rows == keys for rows, keys in counts.values()), counts
    # typed columns and payload side by side
    (revenue, payload_revenue, eps_diluted), = _query(
        warehouse, "SELECT REVENUE, PAYLOAD:revenue::FLOAT, EPS_DILUTED FROM FMP_RAW.INCOME_STATEMENTS "
                   "WHERE SYMBOL = 'GOOGL' AND PERIOD = 'FY' ORDER BY PERIOD_END_DATE DESC LIMIT 1")
    assert revenue == payload_revenue and revenue > 0 and eps_diluted is not None


def test_rerun_changes_nothing_and_makes_no_api_calls(instance, resources, warehouse, offline):
    before, calls = _table_counts(warehouse), _server_calls(resources)
    result = _run(instance, resources, ["GOOG", "GOOGL"], CHANGED_ONLY)
    assert result.success and _server_calls(resources) == calls
    assert result.get_asset_materialization_events() == []  # nothing changed: nothing to report downstream
    assert all(_checks(result).values()) and len(_checks(result)) == 7  # the checks still run
    assert _table_counts(warehouse) == before
    # a run from the UI or a backfill reports every partition it was asked for, changed or not
    plain = _run(instance, resources, ["GOOG", "GOOGL"])
    assert {(e.asset_key.to_user_string(), e.partition) for e in plain.get_asset_materialization_events()} == {
        (key.to_user_string(), symbol) for key in RAW_SYMBOL_KEYS for symbol in ("GOOG", "GOOGL")}
    assert all(m["rows_written"] == 0 for m in _metadata(plain).values()) and _server_calls(resources) == calls
    # a due recheck probes once per company and finds nothing new: 1 statement call, no history refetch
    rechecked = _run(instance, resources, ["GOOG", "GOOGL"],
                     {**CHANGED_ONLY, "recheck_after_hours": 0, "statement_recheck_days": 0})
    assert _server_calls(resources) == calls + 1  # profiles: at most daily; prices: no new day
    assert rechecked.get_asset_materialization_events() == []
    assert _table_counts(warehouse) == before


def test_only_changed_partitions_are_materialized(instance, resources, warehouse, offline):
    pair = ["MMM", "MNST"]  # adjacent partition keys: a range of two companies
    statements = dg.AssetSelection.assets(["fmp_raw", "income_statements"], ["fmp_raw", "balance_sheets"],
                                          ["fmp_raw", "cash_flow_statements"])
    assert _run(instance, resources, pair, selection=statements).success
    offline(restated_symbols={"MMM": 1})
    try:
        result = _run(instance, resources, pair,
                      {**CHANGED_ONLY, "recheck_after_hours": 0, "statement_recheck_days": 0}, selection=statements)
    finally:
        offline(restated_symbols={})
    events = result.get_asset_materialization_events()
    assert {(e.asset_key.to_user_string(), e.partition) for e in events} == {
        (f"fmp_raw/{name}", "MMM") for name in ("income_statements", "balance_sheets", "cash_flow_statements")}
    assert all(_checks(result).values())
    # with a dependent in the same run, the whole range is materialized so the dependent sees every partition
    from financial_assets.derived import derived_assets

    ttm = next(a for a in derived_assets if a.key.to_user_string() == "fmp_core/ttm_financials")
    offline(restated_symbols={"MMM": 2})
    try:
        both = dg.materialize(
            [*raw_assets, *raw_asset_checks, ttm], instance=instance, resources=resources,
            selection=statements | dg.AssetSelection.assets(ttm.key),
            tags={ASSET_PARTITION_RANGE_START_TAG: pair[0], ASSET_PARTITION_RANGE_END_TAG: pair[1]},
            run_config={"ops": {"fmp_raw_symbols": {"config": {**CHANGED_ONLY, "recheck_after_hours": 0,
                                                                "statement_recheck_days": 0}}}})
    finally:
        offline(restated_symbols={})
    partitions = {(e.asset_key.to_user_string(), e.partition) for e in both.get_asset_materialization_events()}
    assert {p for k, p in partitions if k == "fmp_raw/income_statements"} == set(pair)
    assert {p for k, p in partitions if k == "fmp_core/ttm_financials"} == set(pair)


def test_next_session_comes_from_batch_quotes(instance, resources, warehouse, offline):
    from resources.fmp import FMPResource

    day0, day1 = "2026-11-19", "2026-11-20"  # Thursday, Friday
    offline(as_of=day0)
    try:
        assert _run(instance, resources, ["NVDA", "NVR"], selection=dg.AssetSelection.assets(PRICES_KEY)).success
        offline(as_of=day1)
        calls = _server_calls(resources)
        result = _run(instance, resources, ["NVDA", "NVR"], {"recheck_after_hours": 0},
                      selection=dg.AssetSelection.assets(PRICES_KEY))
        assert _server_calls(resources) == calls + 1  # one batch-quote call for both tickers, no EOD call
        meta = _metadata(result)["fmp_raw/daily_prices"]
        assert meta["bars_from_batch_quotes"] == 2 and meta["rows_written"] == 2
        eod = FMPResource.from_env().get_client().historical_prices("NVDA", date(2026, 11, 20), date(2026, 11, 20))
    finally:
        offline(as_of=None)
    stored = _query(warehouse, "SELECT OPEN, HIGH, LOW, CLOSE, VOLUME, CHANGE, VWAP, PAYLOAD:source::VARCHAR "
                               f"FROM FMP_RAW.DAILY_PRICES WHERE SYMBOL = 'NVDA' AND DATE = '{day1}'")
    bar = eod[0]
    assert stored == [(bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"], bar["change"], bar["vwap"],
                       "batch-quote")]  # the quote's bar is FMP's EOD bar


def test_restated_statement_replaces_the_old_values(instance, resources, warehouse, offline):
    latest = ("SELECT PERIOD_END_DATE, REVENUE, NET_INCOME FROM FMP_RAW.INCOME_STATEMENTS WHERE SYMBOL = 'BRK.B' "
              "AND PERIOD <> 'FY' ORDER BY PERIOD_END_DATE DESC LIMIT 1")
    before_row, before_counts = _query(warehouse, latest)[0], _table_counts(warehouse)
    offline(restated_symbols={"BRK.B": 1})
    calls = _server_calls(resources)
    quiet = _run(instance, resources, ["BRK.B"], {**CHANGED_ONLY, "recheck_after_hours": 0})
    assert _server_calls(resources) == calls and quiet.get_asset_materialization_events() == []  # not even probed
    result = _run(instance, resources, ["BRK.B"], {"recheck_after_hours": 0, "statement_recheck_days": 0})
    meta = _metadata(result)
    assert meta["fmp_raw/income_statements"]["api_calls"] == 7  # probe + full history
    after_row = _query(warehouse, latest)[0]
    assert after_row[0] == before_row[0] and after_row[1] != before_row[1]
    assert _table_counts(warehouse) == before_counts  # replaced in place, one row per key
    assert all(_checks(result).values())


def test_killed_load_leaves_tables_as_before(instance, resources, warehouse, offline, monkeypatch):
    before = _table_counts(warehouse)

    def crash(table):
        if table.name == "BALANCE_SHEETS":  # profiles, prices, income already merged; the rest not
            raise RuntimeError("killed mid-load")

    monkeypatch.setattr(load, "_before_merge", crash)
    result = _run(instance, resources, ["GOOGL"], {"force_refresh": True}, raise_on_error=False)
    assert not result.success
    assert _table_counts(warehouse) == before
    monkeypatch.undo()
    result = _run(instance, resources, ["GOOGL"], {"force_refresh": True})
    assert result.success and _table_counts(warehouse) == before


def test_unknown_symbol_and_duplicate_periods_lose_nothing(instance, resources, warehouse, offline):
    instance.add_dynamic_partitions("sp500_symbols", ["ZZZZ.Q"])
    offline(duplicate_period_symbols=["AAPL"])
    result = _run(instance, resources, ["ZZZZ.Q"], CHANGED_ONLY)
    assert result.success and result.get_asset_materialization_events() == []
    assert any("unknown or delisted" in m for m in _messages(instance, result))
    calls = _server_calls(resources)
    assert _run(instance, resources, ["ZZZZ.Q"]).success
    assert _server_calls(resources) == calls  # not asked again today

    dup = _run(instance, resources, ["AAPL"])
    meta = _metadata(dup)
    assert any("duplicate periods" in k for k in meta["fmp_raw/income_statements"]["warnings"])
    assert all(_checks(dup).values())
    counts = _table_counts(warehouse)
    assert all(rows == keys for rows, keys in counts.values()), counts


def test_429s_and_5xx_are_ridden_out(instance, resources, warehouse, offline):
    # 3 calls per 1-second window (8 threads) and 40 % gateway errors: the client retries its way through
    offline(calls_per_minute=180, rate_window_s=1.0, error_rate=0.4)
    try:
        result = _run(instance, resources, ["MSFT"])
    finally:
        offline(calls_per_minute=3000, rate_window_s=60.0, error_rate=0.0)
    meta = _metadata(result)["fmp_raw/daily_prices"]
    assert result.success
    assert meta["run_retries"] > 0 and meta["run_429s"] > 0
    assert meta["rows_written"] > 1000
    assert all(_checks(result).values())
    stats = requests.get(f"{resources['fmp'].get_client().base_url}/_offline/stats", timeout=10).json()
    assert stats.get("server_errors", 0) + stats.get("rate_limited", 0) > 0, stats


def test_subset_materializes_one_table_alone(instance, resources, warehouse, offline):
    result = _run(instance, resources, ["AMZN"], selection=dg.AssetSelection.assets(PRICES_KEY))
    meta = _metadata(result)
    assert set(meta) == {"fmp_raw/daily_prices"}
    assert set(_checks(result)) == {("fmp_raw/daily_prices", "keys_not_null_and_unique"),
                                    ("fmp_raw/daily_prices", "prices_positive_high_ge_low")}
    assert _query(warehouse, "SELECT COUNT(*) FROM FMP_RAW.COMPANY_PROFILES WHERE SYMBOL = 'AMZN'") == [(0,)]
    assert PROFILES_KEY not in {e.asset_key for e in result.get_asset_materialization_events()}


def test_failed_blocking_check_stops_dependents(instance, resources, warehouse, offline):
    from financial_assets.partitions import symbol_partitions
    from financial_assets.raw.keys import BALANCE_KEY

    @dg.asset(deps=[BALANCE_KEY], partitions_def=symbol_partitions, key=["test", "after_balance"])
    def after_balance():
        return None

    balance_only = dg.AssetSelection.assets(BALANCE_KEY)
    assert _run(instance, resources, ["AMZN"], selection=balance_only).success
    with warehouse.get_connection() as conn:  # corrupt one stored period behind the pipeline's back
        conn.cursor().execute(
            "UPDATE FMP_RAW.BALANCE_SHEETS SET TOTAL_ASSETS = TOTAL_ASSETS * 2 WHERE SYMBOL = 'AMZN' "
            "AND PERIOD = 'FY' AND PERIOD_END_DATE = (SELECT MIN(PERIOD_END_DATE) FROM FMP_RAW.BALANCE_SHEETS "
            "WHERE SYMBOL = 'AMZN' AND PERIOD = 'FY')")
    result = dg.materialize(
        [*raw_assets, *raw_asset_checks, after_balance], selection=balance_only | dg.AssetSelection.assets(after_balance),
        instance=instance, resources=resources, partition_key="AMZN", raise_on_error=False)
    assert not result.success
    assert _checks(result)[("fmp_raw/balance_sheets", "balance_sheet_identity")] is False
    assert "test/after_balance" not in {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    repaired = _run(instance, resources, ["AMZN"], {"force_refresh": True}, selection=balance_only)
    assert _checks(repaired)[("fmp_raw/balance_sheets", "balance_sheet_identity")] is True


def test_symbol_removed_from_index_keeps_history_and_is_not_refreshed(instance, resources, warehouse, offline):
    prices = "SELECT COUNT(*), MAX(LOADED_AT) FROM FMP_RAW.DAILY_PRICES WHERE SYMBOL = 'GOOG'"
    before = _query(warehouse, prices)
    with warehouse.get_connection() as conn:  # what the universe asset does when GOOG leaves the index
        conn.cursor().execute("UPDATE FMP_RAW.UNIVERSE SET IS_MEMBER = FALSE WHERE SYMBOL = 'GOOG'")
    try:
        calls = _server_calls(resources)
        result = _run(instance, resources, ["GOOG"], {**CHANGED_ONLY, "force_refresh": True})
        assert _server_calls(resources) == calls
    finally:
        with warehouse.get_connection() as conn:
            conn.cursor().execute("UPDATE FMP_RAW.UNIVERSE SET IS_MEMBER = TRUE WHERE SYMBOL = 'GOOG'")
    assert result.success and result.get_asset_materialization_events() == []
    assert any("no longer in the index" in m for m in _messages(instance, result))
    assert _query(warehouse, prices) == before


_CHILD = r"""
import sys, time
import dagster as dg
from financial_assets.raw import load, raw_asset_checks, raw_assets
from resources.shared import shared_resources

def stall(table):
    if table.name == "BALANCE_SHEETS":
        print("MERGING", flush=True)
        time.sleep(600)

load._before_merge = stall
instance = dg.DagsterInstance.ephemeral()
instance.add_dynamic_partitions("sp500_symbols", ["GOOGL"])
dg.materialize([*raw_assets, *raw_asset_checks],
               selection=dg.AssetSelection.groups("fmp_raw") - dg.AssetSelection.assets(["fmp_raw", "universe"]),
               instance=instance, resources=shared_resources(), partition_key="GOOGL",
               run_config={"ops": {"fmp_raw_symbols": {"config": {"force_refresh": True}}}})
"""


def test_sigkill_mid_load_leaves_no_duplicates_and_no_open_transaction(instance, resources, warehouse, offline):
    import os
    import signal
    import subprocess
    import sys
    import time

    before = _table_counts(warehouse)
    child = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline and "MERGING" not in line:
            line = child.stdout.readline()
            if not line and child.poll() is not None:
                break
        assert "MERGING" in line, "the child never reached the load"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert _table_counts(warehouse) == before
    started = time.monotonic()  # the next run is not blocked by anything the killed one left open
    result = _run(instance, resources, ["GOOGL"], {"force_refresh": True})
    assert result.success and time.monotonic() - started < 60
    assert _table_counts(warehouse) == before


def test_ensure_tables_adds_columns_a_newer_release_knows(warehouse):
    from financial_assets.raw.schema import ensure_tables

    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        ensure_tables(cur)
        cur.execute("ALTER TABLE FMP_RAW.INCOME_STATEMENTS DROP COLUMN EPS_DILUTED")
        assert ensure_tables(cur) == ["INCOME_STATEMENTS.EPS_DILUTED"]
        assert ensure_tables(cur) == []
