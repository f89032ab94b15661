"""The raw layer: one multi-asset, partitioned by symbol, that fills five FMP_RAW tables.

Each table is its own asset (materializable alone; ``can_subset``), but a run of any subset and any
number of partitions is ONE op in ONE process: every symbol is fetched concurrently under the FMP
client's shared rate limiter, and each table is loaded once (staged bulk load + one MERGE).
What is fetched at all is decided in ``plan.py`` (skip what is fresh).

The fetch runs in groups (statements, prices, profiles): a group is loaded, checked and reported
as soon as its last request is back, while the later groups are still fetching, because the rate
limit leaves the process idle most of a long run.

What a run reports: every requested partition, as a backfill or a run from the UI expects. With
``report_changed_only`` (the daily refresh sensor's runs), an asset whose rows all changed, or that has
dependents in the same run, is materialized for the whole range; otherwise only the partitions whose
rows changed get a materialization, and an asset with no changed row gets none. So the daily refresh
does not wake the dependents of data that did not change.
"""


import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckKey,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from financial_assets import freshness
from financial_assets.partitions import symbol_partitions
from financial_assets.raw import checks, load, normalize
from financial_assets.raw.keys import (
    BALANCE_KEY,
    CASH_FLOW_KEY,
    INCOME_KEY,
    KIND_KEYS,
    PRICES_KEY,
    PROFILES_KEY,
    RAW_SYMBOL_KEYS,
    TABLE_OF_KEY,
)
from financial_assets.raw.normalize import Notes
from financial_assets.raw.plan import (
    Plan,
    RawFmpConfig,
    WarehouseState,
    apply_quotes,
    fetch_statements,
    make_plan,
    quote_candidates,
    read_state,
    read_universe,
)
from financial_assets.raw.schema import (
    FETCH_LOG,
    REJECTED_ROWS,
    STATEMENT_KINDS,
    StatementKind,
    Table,
    ensure_tables,
)
from financial_assets.raw.universe import UNIVERSE_KEY, statement_symbol
from financial_assets.symbols import is_symbol
from resources.fmp import FMPResource, price_requests
from resources.retry import network_retry_policy
from resources.warehouse import Warehouse

_DESCRIPTIONS = {
    PROFILES_KEY: "FMP company profile per ticker (FMP_RAW.COMPANY_PROFILES), refreshed at most daily.",
    PRICES_KEY: "Daily EOD prices per ticker (FMP_RAW.DAILY_PRICES), incremental from the last loaded day.",
    INCOME_KEY: "Income statements, annual + quarterly, per company (FMP_RAW.INCOME_STATEMENTS; share "
                "classes share the STATEMENT_SYMBOL's rows).",
    BALANCE_KEY: "Balance sheets, annual + quarterly, per company (FMP_RAW.BALANCE_SHEETS).",
    CASH_FLOW_KEY: "Cash-flow statements, annual + quarterly, per company (FMP_RAW.CASH_FLOW_STATEMENTS).",
}
# fetch order: statements make the most calls per item, so the limiter stays busy to the end
GROUPS = (("statements", (INCOME_KEY, BALANCE_KEY, CASH_FLOW_KEY)), ("prices", (PRICES_KEY,)),
          ("profiles", (PROFILES_KEY,)))


def _specs() -> list[AssetSpec]:
    return [
        AssetSpec(key, deps=[UNIVERSE_KEY], group_name="fmp_raw", description=_DESCRIPTIONS[key],
                  kinds={"snowflake"}, metadata={"table": f"FMP_RAW.{TABLE_OF_KEY[key].name}"}, skippable=True,
                  freshness_policy=freshness.weekly if key in KIND_KEYS.values() else freshness.daily)
        for key in RAW_SYMBOL_KEYS
    ]


def _check_specs() -> list[AssetCheckSpec]:
    specs = [AssetCheckSpec("keys_not_null_and_unique", asset=key, blocking=True,
                            description=f"natural key {TABLE_OF_KEY[key].key} not null and unique")
             for key in TABLE_OF_KEY]
    specs.append(AssetCheckSpec("prices_positive_high_ge_low", asset=PRICES_KEY, blocking=True,
                                description="OPEN/HIGH/LOW/CLOSE > 0 and HIGH >= LOW"))
    specs.append(AssetCheckSpec("balance_sheet_identity", asset=BALANCE_KEY, blocking=True,
                                description="TOTAL_ASSETS = TOTAL_LIABILITIES + TOTAL_EQUITY within "
                                            f"{checks.BALANCE_IDENTITY_TOLERANCE:.1%}"))
    return specs


def _concat(frames: list, empty):
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _run_counters(before: dict, now: dict) -> dict:
    """The run's HTTP requests so far (every group's, retries included): shown with each asset."""
    return {"run_http_requests": now["calls_made"] - before["calls_made"],
            "run_429s": now["rate_limited"] - before["rate_limited"], "run_retries": now["retries"] - before["retries"]}


class RawRun:
    """One run of the raw multi-asset: plan, grouped concurrent fetch, per-group load and report."""

    def __init__(self, context: AssetExecutionContext, config: RawFmpConfig, warehouse: Warehouse, client):
        self.context, self.config, self.warehouse, self.client = context, config, warehouse, client
        self.selected = set(context.selected_asset_keys)
        self.kinds: list[StatementKind] = [k for k in STATEMENT_KINDS if KIND_KEYS[k.kind] in self.selected]
        self.partitions = sorted(set(context.partition_keys))
        self.symbols = [s for s in self.partitions if is_symbol(s)]
        self.now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        self.notes = Notes()
        self.calls = {"profiles": 0, "prices": 0, "statements": 0}
        self.fetched = {"profiles": 0, "prices": 0, "statements": 0}
        self.written: dict[str, int] = {}
        self.failures: dict[str, str] = {}
        self.company_of: dict[str, str] = {}
        self.log_rows: list[dict] = []  # FETCH_LOG rows, merged with the last group's load

    # planning

    def prepare(self) -> Plan:
        with self.warehouse.get_connection() as conn:
            cur = conn.cursor()
            ensure_tables(cur)
            universe = read_universe(cur, self.symbols)
            self.company_of = {s: universe.get(s, (None,))[0] or statement_symbol(s) for s in self.symbols}
            companies = set(self.company_of.values()) if self.kinds else set()
            if companies - set(universe):
                universe.update(read_universe(cur, companies - set(universe)))
            self.state: WarehouseState = read_state(cur, universe, set(self.symbols), companies, self.kinds)
        plan = make_plan(self.config, self.partitions, self.selected, self.kinds, self.state, self.now)
        for key in plan.invalid:
            self.notes.add("partition keys that are not ticker symbols (skipped)", key, repr(key))
        for symbol in plan.removed:
            self.notes.add("symbols no longer in the index (history kept, not refreshed)", symbol, symbol)
        self._take_quotes(plan)
        self.context.log.info(
            f"{len(self.partitions)} partition(s): fetching profiles {len(plan.profiles)}, prices "
            f"{len(plan.prices)} (+{len(plan.quote_bars)} from batch quotes), statements {len(plan.statements)} "
            "compan(ies); fresh/skipped: " + ", ".join(f"{k} {len(v)}" for k, v in plan.skipped.items()))
        return plan

    def _take_quotes(self, plan: Plan) -> None:
        candidates = quote_candidates(plan, self.state, self.now, self.config)
        if not candidates:
            return
        before = self.client.snapshot()["calls_made"]
        try:
            quotes = self.client.batch_quote(candidates)
        except Exception as exc:  # noqa: BLE001 - the EOD endpoint still serves every candidate
            self.context.log.warning(f"batch quote failed ({type(exc).__name__}); using the EOD endpoint instead")
            quotes = []
        self.calls["prices"] += self.client.snapshot()["calls_made"] - before
        apply_quotes(plan, self.state, quotes, self.now)

    # fetching (in worker threads: fetch and normalise, so only compact frames are held)

    def task(self, plan: Plan, item: tuple[str, str]) -> dict[str, Any]:
        dataset, symbol = item
        notes, rejects = Notes(), []
        if dataset == "statements":
            result = fetch_statements(self.client, symbol, self.kinds, self.state, self.config)
            raw = result.pop("rows")
            result["frames"] = {
                kind.kind: normalize.statement_frame(kind, normalize.statement_rows(
                    kind, symbol, raw.get(kind.kind, []), self.now, notes, rejects))
                for kind in self.kinds if kind.kind in raw}
        elif dataset == "prices" and symbol in plan.quote_bars:
            rows = normalize.price_rows(symbol, [plan.quote_bars[symbol]], self.now, notes, rejects)
            result = {"status": "fetched", "calls": 0, "reason": "batch quote",
                      "frame": normalize.price_frame(rows)}
        elif dataset == "prices":
            start = plan.prices[symbol]
            raw = self.client.historical_prices(symbol, start, self.now.date())
            result = {"status": "fetched" if raw else "empty", "calls": price_requests(start, self.now.date()),
                      "reason": f"from {start}", "eod": True,
                      "frame": normalize.price_frame(normalize.price_rows(symbol, raw, self.now, notes, rejects))}
        else:
            record = self.client.profile(symbol)
            result = {"status": "fetched" if record else "empty", "calls": 1, "reason": "",
                      "row": normalize.profile_row(symbol, record, self.now, notes) if record else None}
        result.update(notes=notes, rejects=rejects)
        return result

    def groups(self, plan: Plan) -> list[list[tuple[str, str]]]:
        return [[("statements", c) for c in plan.statements],
                [("prices", s) for s in [*plan.quote_bars, *plan.prices]],
                [("profiles", s) for s in plan.profiles]]

    # loading

    def frames(self, bucket: str, results: dict, last: bool) -> list[tuple[Table, Any]]:
        """The group's tables to load; the last group also loads the whole run's fetch log (a run that
        dies before it only makes the next run ask FMP again)."""
        profile_rows, price_frames, rejects = [], [], []
        statement_frames: dict[str, list] = {k.kind: [] for k in self.kinds}
        for (_, symbol), result in results.items():
            if isinstance(result, Exception):
                self.failures[f"{bucket}:{symbol}"] = f"{type(result).__name__}: {str(result)[:200]}"
                continue
            self.calls[bucket] += result["calls"]
            self.notes.merge(result["notes"])
            rejects.extend(result["rejects"])
            if result["status"] == "empty":
                self.notes.add(f"unknown or delisted symbols: FMP returned no {bucket}", symbol, f"{symbol}: []")
            if result["status"] == "fetched":
                self.fetched[bucket] += 1
                if bucket == "profiles":
                    profile_rows.append(result["row"])
                elif bucket == "prices":
                    price_frames.append(result["frame"])
                else:
                    for kind, frame in result["frames"].items():
                        statement_frames[kind].append(frame)
            datasets = {"statements": [f"statements:{k.kind}" for k in self.kinds],
                        "prices": ["prices", "prices:eod"] if result.get("eod") else ["prices"],
                        "profiles": ["profile"]}[bucket]
            for name in datasets:
                self.log_rows.append({"DATASET": name, "SYMBOL": symbol, "CHECKED_AT": self.now,
                                 "STATUS": result["status"], "DETAIL": str(result.get("reason") or "")[:500]})
        frames: list[tuple[Table, Any]] = []
        if bucket == "profiles":
            frames.append((TABLE_OF_KEY[PROFILES_KEY], normalize.profile_frame(profile_rows)))
        elif bucket == "prices":
            frames.append((TABLE_OF_KEY[PRICES_KEY], _concat(price_frames, normalize.price_frame([]))))
        else:
            for kind in self.kinds:
                frames.append((kind.table, _concat(statement_frames[kind.kind], normalize.statement_frame(kind, []))))
        frames.append((REJECTED_ROWS, normalize.rejected_frame(rejects)))
        if last:
            frames.append((FETCH_LOG, normalize._frame(self.log_rows, FETCH_LOG.column_names,
                                                       timestamps=["CHECKED_AT"])))
        return frames

    def load_and_check(self, keys: list[AssetKey], frames) -> tuple[dict[str, load.Written], list, Any]:
        with self.warehouse.get_connection() as conn:
            cur = conn.cursor()
            written = load.load_tables(cur, frames)
            companies = set(self.company_of.values())
            results = []
            for key in keys:
                scope = set(self.symbols) if key in (PROFILES_KEY, PRICES_KEY) else companies
                results.append(checks.key_check(cur, TABLE_OF_KEY[key], scope))
                if key == PRICES_KEY:
                    results.append(checks.price_check(cur, set(self.symbols)))
                if key == BALANCE_KEY:
                    results.append(checks.balance_check(cur, companies))
            chart = (checks.price_chart(cur, self.symbols[0])
                     if PRICES_KEY in keys and len(self.partitions) == 1 and self.symbols else None)
        return written, results, chart

    # reporting

    def changed_partitions(self, key: AssetKey, written: load.Written) -> set[str]:
        if key in (PROFILES_KEY, PRICES_KEY):
            return written.symbols & set(self.symbols)
        return {s for s in self.symbols if self.company_of[s] in written.symbols}

    def dependents_in_run(self, key: AssetKey) -> bool:
        layer = self.context.job_def.asset_layer
        return bool(layer.asset_graph.get(key).child_keys & set(layer.selected_asset_keys))

    def report(self, key: AssetKey, written: load.Written, metadata: dict) -> Iterator[MaterializeResult]:
        changed = self.changed_partitions(key, written)
        if not self.config.report_changed_only or changed >= set(self.symbols) or self.dependents_in_run(key):
            yield MaterializeResult(asset_key=key, metadata=metadata)
        elif changed:
            for partition in sorted(changed):
                self.context.log_event(AssetMaterialization(asset_key=key, partition=partition, metadata=metadata))
        else:
            self.context.log.info(f"{key.to_user_string()}: no row changed; not materialized")


@multi_asset(
    name="fmp_raw_symbols",
    specs=_specs(),
    check_specs=_check_specs(),
    partitions_def=symbol_partitions,
    can_subset=True,
    backfill_policy=BackfillPolicy.single_run(),
    pool="fmp_api",
    retry_policy=network_retry_policy,
    description="FMP -> FMP_RAW for a set of symbols: profiles, daily prices, income statements, balance "
    "sheets, cash-flow statements. One run per backfill; symbols fetched concurrently; tables loaded once.",
)
def fmp_raw_symbols(context: AssetExecutionContext, config: RawFmpConfig, warehouse: Warehouse, fmp: FMPResource):
    started = time.monotonic()
    client = fmp.get_client()
    before = client.snapshot()
    run = RawRun(context, config, warehouse, client)
    plan = run.prepare()
    selected_checks = set(context.selected_asset_check_keys)
    groups = [(bucket, [k for k in keys if k in run.selected], items)
              for (bucket, keys), items in zip(GROUPS, run.groups(plan))]
    groups = [(bucket, keys, items) for bucket, keys, items in groups if keys]
    for number, ((bucket, keys, _), results) in enumerate(zip(groups, client.map_concurrent_groups(
            lambda item: run.task(plan, item), [items for _, _, items in groups], config.max_workers))):
        frames = run.frames(bucket, results, last=number == len(groups) - 1)
        written, check_results, chart = run.load_and_check(keys, frames)
        run.written.update({name: w.rows for name, w in written.items() if name not in (FETCH_LOG.name,)})
        seconds = time.monotonic() - started
        for key in keys:
            rows = written[TABLE_OF_KEY[key].name].rows
            metadata = {
                "table": f"FMP_RAW.{TABLE_OF_KEY[key].name}", "rows_written": rows,
                "api_calls": run.calls[bucket], "symbols_fetched": run.fetched[bucket],
                "symbols_fresh_skipped": len(plan.skipped[bucket]), "partitions": len(run.partitions),
                "seconds": round(seconds, 2), "rows_per_second": round(rows / seconds, 1) if seconds > 0 else 0.0,
                "warnings": MetadataValue.json(run.notes.counts()),
                **_run_counters(before, client.snapshot()),
            }
            if bucket == "statements":
                metadata["api_calls_note"] = "statement calls are shared by the selected statement assets"
            if bucket == "prices":
                metadata["bars_from_batch_quotes"] = len(plan.quote_bars)
                if chart is not None:
                    metadata["price_chart"] = chart
            yield from run.report(key, written[TABLE_OF_KEY[key].name], metadata)
        for result in check_results:
            if AssetCheckKey(result.asset_key, result.check_name) in selected_checks:
                yield result

    for line in run.notes.lines():
        context.log.warning(line)
    after = client.snapshot()
    for key, error in sorted(run.failures.items()):
        context.log.error(f"FMP fetch failed after retries for {key}: {error}")
    context.log.info(
        f"done in {time.monotonic() - started:.1f} s; HTTP requests {after['calls_made'] - before['calls_made']} "
        f"(429s {after['rate_limited'] - before['rate_limited']}, retries {after['retries'] - before['retries']}); "
        f"rows written {run.written}")
    if run.failures and not config.allow_partial_failure:
        raise Failure(
            description=f"{len(run.failures)} FMP fetch(es) failed after retries; everything else is loaded and a "
            "rerun fetches only what is missing. Set allow_partial_failure to accept.",
            metadata={"failures": MetadataValue.json(run.failures)})
