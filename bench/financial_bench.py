"""Financial pipeline benchmark: the old sequential ETL beside the Dagster asset graph, in one run.

Both run on this machine against the offline FMP server set to FMP's Premium plan (150 ms latency,
750 calls/min) and the embedded warehouse, each in a cold data folder of its own. The emulator answers a
statement in a few milliseconds where Snowflake takes ~100 ms (the old system's report: 1,000 single-row
INSERTs took 100 s, a connection ~100 ms), so both sides run with the emulator delaying every login and
statement by ``--warehouse-latency-ms`` (default 100): each design pays per statement what it would pay
on Snowflake. The old ETL is
linear by construction, so it runs on a sample of symbols and is extrapolated to the universe;
ours runs on every symbol. Then a daily refresh: one new trading day without new filings.

    python -m bench.financial_bench [--baseline-symbols 10] [--symbols N]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date, timedelta
from pathlib import Path

from bench.environment import fresh_environment, offline_fmp_stats, set_offline_fmp

PLAN_CALLS_PER_MINUTE = 750
LATENCY_MS = 150
WAREHOUSE_LATENCY_MS = 100
HISTORY_YEARS = 5


def quiet_trading_days(client, around: date) -> tuple[date, date]:
    """Two consecutive trading days with no filing between them, so the refresh has none."""
    import exchange_calendars as xcals

    sessions = [d.date() for d in xcals.get_calendar("XNYS").sessions_in_range(around - timedelta(days=80), around)]
    filed = {r["date"] for r in client.earnings_calendar(sessions[0], sessions[-1])}
    for before, after in zip(reversed(sessions[:-1]), reversed(sessions[1:])):
        days = {(before + timedelta(days=i)).isoformat() for i in range(1, (after - before).days + 1)}
        if not days & filed:
            return before, after
    raise RuntimeError("no quiet trading day found")


def run_baseline(symbols: list[str], as_of: date) -> dict:
    from bench.old_financial_etl import OldFinancialETL
    from resources.fmp import FMPResource
    from resources.warehouse import warehouse_from_env

    client = FMPResource.from_env().get_client()
    etl = OldFinancialETL(warehouse_from_env(), client, as_of - timedelta(days=365 * HISTORY_YEARS), as_of)
    etl.create_tables()
    started = time.monotonic()
    for symbol in symbols:
        etl.run_symbol(symbol)
    return {"seconds": time.monotonic() - started, "api_calls": client.calls_made, "rows": etl.rows,
            "symbols": len(symbols)}


def run_ours(limit: int | None) -> dict:
    import dagster as dg

    from resources.materialize_all import materialize_location

    calls_before = offline_fmp_stats()["calls"]
    started = time.monotonic()
    summaries = materialize_location("financial_assets", dg.DagsterInstance.get(), limit)
    seconds = time.monotonic() - started
    return {"seconds": seconds, "api_calls": offline_fmp_stats()["calls"] - calls_before,
            "ok": all(s["ok"] for s in summaries), "runs": summaries, "rows": raw_row_count()}


def run_refresh(day: date) -> dict:
    """The next trading day as the daemon runs it: the daily sensor's range run (its own selection, tags
    and run config), then one tick of the automation sensor and every run that tick requests (built by
    Dagster's own function), each executed in this process. What the daemon adds on top is launching
    each run in a new process. The cold load ran minutes ago, so its fetch bookkeeping is first moved
    one day back, as if it had run yesterday: the staggered weekly work (a seventh of the profiles,
    EOD re-reads and statement rechecks) is then due as on any ordinary day."""
    from datetime import datetime, timezone

    import dagster as dg
    from dagster._core.definitions.automation_tick_evaluation_context import (
        build_run_requests_with_backfill_policies,
    )
    from dagster._core.definitions.events import AssetKeyPartitionKey
    from dagster._core.definitions.partitions.context import partition_loading_context

    from financial_assets.definitions import defs
    from financial_assets.derived import derived_assets
    from financial_assets.partitions import symbol_partitions
    from financial_assets.sensors import market_refresh

    instance = dg.DagsterInstance.get()
    keys = symbol_partitions.get_partition_keys(dynamic_partitions_store=instance)
    after_close = datetime(day.year, day.month, day.day, 23, 0, tzinfo=timezone.utc)
    request = market_refresh(after_close, None, keys).run_requests[0]
    age_bookkeeping_one_day()
    everything = [*defs.assets, *defs.asset_checks]
    derived = dg.AssetSelection.assets(*derived_assets)
    previous_tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=derived).cursor
    calls_before = offline_fmp_stats()["calls"]
    started = time.monotonic()
    raw = dg.materialize(everything, selection=request.asset_selection, tags=request.tags, instance=instance,
                         resources=defs.resources, run_config=request.run_config)
    raw_seconds = time.monotonic() - started
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=derived,
                                             cursor=previous_tick)
    requested = [AssetKeyPartitionKey(a.key, p) for a in derived_assets for p in tick.get_requested_partitions(a.key)]
    with partition_loading_context(dynamic_partitions_store=instance):
        run_requests = build_run_requests_with_backfill_policies(requested, defs.resolve_asset_graph(), instance)
    runs = [dg.materialize(everything, selection=dg.AssetSelection.assets(*r.asset_selection), tags=r.tags,
                           instance=instance, resources=defs.resources) for r in run_requests]
    seconds = time.monotonic() - started
    return {"seconds": seconds, "raw_run_seconds": raw_seconds, "api_calls": offline_fmp_stats()["calls"] - calls_before,
            "automation_runs": len(runs), "asset_partitions_requested": len(requested),
            "ok": raw.success and all(r.success for r in runs), "rows": raw_row_count()}


def age_bookkeeping_one_day() -> None:
    from resources.warehouse import warehouse_from_env

    with warehouse_from_env().get_connection() as conn:
        cur = conn.cursor()
        for table, column in (("FETCH_LOG", "CHECKED_AT"), ("COMPANY_PROFILES", "FETCHED_AT"),
                              ("DAILY_PRICES", "LOADED_AT"), ("INCOME_STATEMENTS", "FETCHED_AT"),
                              ("BALANCE_SHEETS", "FETCHED_AT"), ("CASH_FLOW_STATEMENTS", "FETCHED_AT")):
            cur.execute(f"UPDATE FMP_RAW.{table} SET {column} = DATEADD(day, -1, {column})")


def raw_row_count() -> int:
    from resources.warehouse import warehouse_from_env

    tables = ["COMPANY_PROFILES", "DAILY_PRICES", "INCOME_STATEMENTS", "BALANCE_SHEETS", "CASH_FLOW_STATEMENTS"]
    with warehouse_from_env().get_connection() as conn:
        cur = conn.cursor()
        return sum(cur.execute(f"SELECT COUNT(*) FROM FMP_RAW.{t}").fetchone()[0] for t in tables)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-symbols", type=int, default=10)
    parser.add_argument("--symbols", type=int, help="limit ours to the first N symbols (default: all)")
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 20))
    parser.add_argument("--warehouse-latency-ms", type=float, default=WAREHOUSE_LATENCY_MS)
    opts = parser.parse_args(argv)

    results: dict = {"plan_calls_per_minute": PLAN_CALLS_PER_MINUTE, "latency_ms": LATENCY_MS,
                     "warehouse_latency_ms": opts.warehouse_latency_ms}
    legs = {"latency_ms": LATENCY_MS, "calls_per_minute": PLAN_CALLS_PER_MINUTE,
            "warehouse_latency_ms": opts.warehouse_latency_ms}
    with fresh_environment("financial-baseline", **legs):
        from resources.fmp import FMPResource
        from resources.offline_fmp.universe import companies

        client = FMPResource.from_env().get_client()
        day0, day1 = quiet_trading_days(client, opts.as_of)
        set_offline_fmp(as_of=day0.isoformat())
        universe = sorted(c.symbol for c in companies().values())
        baseline = run_baseline(universe[: opts.baseline_symbols], day0)
    results["as_of"], results["refresh_day"] = day0.isoformat(), day1.isoformat()
    scale = len(universe) / baseline["symbols"]
    results["baseline"] = {**baseline, "extrapolated_seconds": baseline["seconds"] * scale,
                           "extrapolated_api_calls": baseline["api_calls"] * scale,
                           "extrapolated_rows": baseline["rows"] * scale}

    with fresh_environment("financial-ours", **legs):
        set_offline_fmp(as_of=day0.isoformat())
        results["cold"] = run_ours(opts.symbols)
        set_offline_fmp(as_of=day1.isoformat())
        results["refresh"] = run_refresh(day1)
    for run in ("cold", "refresh"):
        floor = results[run]["api_calls"] / PLAN_CALLS_PER_MINUTE * 60
        results[run]["rate_limit_floor_seconds"] = floor
        results[run]["vs_floor"] = results[run]["seconds"] / floor if floor else None
    results["speedup_vs_baseline"] = results["baseline"]["extrapolated_seconds"] / results["cold"]["seconds"]
    results["speedup_vs_report"] = 131.0 * len(universe) / results["cold"]["seconds"]
    print_report(results, len(universe))
    out = Path("bench/results"); out.mkdir(parents=True, exist_ok=True)
    (out / "financial.json").write_text(json.dumps(results, indent=2, default=str))
    return results


def print_report(r: dict, universe: int) -> None:
    b, c, d = r["baseline"], r["cold"], r["refresh"]
    print(f"\nFinancial benchmark: offline FMP at {r['latency_ms']} ms/call, {r['plan_calls_per_minute']} calls/min; "
          f"warehouse {r['warehouse_latency_ms']:.0f} ms per statement")
    print(f"{'':34}{'wall s':>10}{'API calls':>11}{'rows':>11}{'floor s':>9}{'x floor':>9}")
    print(f"{'old ETL, ' + str(b['symbols']) + ' symbols (measured)':34}{b['seconds']:>10.1f}{b['api_calls']:>11}"
          f"{b['rows']:>11}")
    print(f"{'old ETL, ' + str(universe) + ' symbols (linear)':34}{b['extrapolated_seconds']:>10.0f}"
          f"{b['extrapolated_api_calls']:>11.0f}{b['extrapolated_rows']:>11.0f}")
    for name, run in (("ours, cold backfill", c), ("ours, daily refresh", d)):
        print(f"{name:34}{run['seconds']:>10.1f}{run['api_calls']:>11}{run['rows']:>11}"
              f"{run['rate_limit_floor_seconds']:>9.1f}{run['vs_floor'] or 0:>9.2f}")
    print(f"daily refresh: the sensor's range run took {d['raw_run_seconds']:.1f} s of it; then one automation tick "
          f"requested {d['asset_partitions_requested']} asset partitions in {d['automation_runs']} run(s)")
    print(f"speed-up vs the old ETL measured here: {r['speedup_vs_baseline']:.1f}x; "
          f"vs the report's 131 s/symbol: {r['speedup_vs_report']:.0f}x; all runs ok: {c['ok'] and d['ok']}")


if __name__ == "__main__":
    main()
