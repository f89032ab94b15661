"""The raw layer: one multi-asset, partitioned by symbol, that fills five FMP_RAW tables.

Each table is its own asset (materializable alone; ``can_subset``), but a run of any subset and any
number of partitions is ONE op in ONE process: every symbol is fetched concurrently under the FMP
client's shared rate limiter, and each table is loaded once (staged bulk load + one transaction).

Skip what is fresh (unless ``force_refresh``):
* profiles: at most once per UTC day per symbol;
* prices: only the days after the last loaded DATE (first load: ``price_history_years``);
* statements: no call at all while the company's next quarterly filing cannot be out yet (latest
  loaded quarter end + 105 days), except a staggered recheck every ``statement_recheck_days``;
  otherwise one cheap probe per company (latest quarter of the first selected statement kind), and
  the full history (annual + quarter of every selected kind) only when the probe shows a newer
  period, a newer acceptedDate or restated values for the latest loaded quarter;
* any (dataset, symbol) asked within ``recheck_after_hours`` is not asked again (FMP_RAW.FETCH_LOG),
  so rerunning a finished backfill makes close to zero API calls.
"""


import hashlib
import math
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Optional

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
import pandas as pd
from pydantic import Field

from financial_assets import freshness
from financial_assets.partitions import symbol_partitions
from financial_assets.raw import load, normalize
from financial_assets.raw.normalize import SYMBOL_RE, Notes, day, number, timestamp
from financial_assets.raw.schema import (
    BALANCE,
    CASH_FLOW,
    COMPANY_PROFILES,
    DAILY_PRICES,
    FETCH_LOG,
    INCOME,
    REJECTED_ROWS,
    STATEMENT_KINDS,
    StatementKind,
    Table,
    column_name,
    ensure_tables,
)
from financial_assets.raw.universe import UNIVERSE_KEY, statement_symbol
from resources.fmp import FMPResource
from resources.retry import network_retry_policy
from resources.warehouse import Warehouse

PROFILES_KEY = AssetKey(["fmp_raw", "company_profiles"])
PRICES_KEY = AssetKey(["fmp_raw", "daily_prices"])
INCOME_KEY = AssetKey(["fmp_raw", "income_statements"])
BALANCE_KEY = AssetKey(["fmp_raw", "balance_sheets"])
CASH_FLOW_KEY = AssetKey(["fmp_raw", "cash_flow_statements"])

KIND_KEYS = {INCOME.kind: INCOME_KEY, BALANCE.kind: BALANCE_KEY, CASH_FLOW.kind: CASH_FLOW_KEY}
TABLE_OF_KEY = {PROFILES_KEY: COMPANY_PROFILES, PRICES_KEY: DAILY_PRICES, INCOME_KEY: INCOME.table,
                BALANCE_KEY: BALANCE.table, CASH_FLOW_KEY: CASH_FLOW.table}
BALANCE_IDENTITY_TOLERANCE = 0.001  # relative to |TOTAL_ASSETS| (and at least 1 currency unit)
TRADING_DAYS_CHART = 252

_DESCRIPTIONS = {
    PROFILES_KEY: "FMP company profile per ticker (FMP_RAW.COMPANY_PROFILES), refreshed at most daily.",
    PRICES_KEY: "Daily EOD prices per ticker (FMP_RAW.DAILY_PRICES), incremental from the last loaded day.",
    INCOME_KEY: "Income statements, annual + quarterly, per company (FMP_RAW.INCOME_STATEMENTS; share "
                "classes share the STATEMENT_SYMBOL's rows).",
    BALANCE_KEY: "Balance sheets, annual + quarterly, per company (FMP_RAW.BALANCE_SHEETS).",
    CASH_FLOW_KEY: "Cash-flow statements, annual + quarterly, per company (FMP_RAW.CASH_FLOW_STATEMENTS).",
}


class RawFmpConfig(Config):
    price_history_years: float = Field(default=5.0, description="history loaded for a ticker's first price load")
    recheck_after_hours: float = Field(
        default=6.0, description="do not ask FMP again about a (dataset, symbol) checked this recently")
    force_refresh: bool = Field(default=False, description="ignore every freshness rule and refetch")
    profile_max_age_days: int = Field(
        default=1, description="1: refetch profiles once per UTC day; N > 1: every symbol at most every N days, "
        "spread evenly over the days (a daily refresh then makes ~1/N of the profile calls)")
    statement_recheck_days: float = Field(
        default=7.0, description="between filing seasons, probe a company's statements at most every N days, "
        "spread evenly over the days (catches amendments); once its next quarterly filing can be due it is "
        "probed every run; 0 probes every run")
    statement_quarters: int = Field(default=160, description="quarterly periods requested on a full statement "
                                    "fetch (annual: a quarter of it)")
    max_workers: Optional[int] = Field(default=None, description="threads for FMP calls (default: the client's)")
    allow_partial_failure: bool = Field(
        default=False, description="succeed even if some symbols failed after retries (they are reported)")


def _specs() -> list[AssetSpec]:
    return [
        AssetSpec(key, deps=[UNIVERSE_KEY], group_name="fmp_raw", description=_DESCRIPTIONS[key],
                  kinds={"snowflake"}, metadata={"table": f"FMP_RAW.{TABLE_OF_KEY[key].name}"},
                  freshness_policy=freshness.weekly if key in KIND_KEYS.values() else freshness.daily)
        for key in (PROFILES_KEY, PRICES_KEY, INCOME_KEY, BALANCE_KEY, CASH_FLOW_KEY)
    ]


def _check_specs() -> list[AssetCheckSpec]:
    specs = [AssetCheckSpec("keys_not_null_and_unique", asset=key, blocking=True,
                            description=f"natural key {TABLE_OF_KEY[key].key} not null and unique")
             for key in TABLE_OF_KEY]
    specs.append(AssetCheckSpec("prices_positive_high_ge_low", asset=PRICES_KEY, blocking=True,
                                description="OPEN/HIGH/LOW/CLOSE > 0 and HIGH >= LOW"))
    specs.append(AssetCheckSpec("balance_sheet_identity", asset=BALANCE_KEY, blocking=True,
                                description="TOTAL_ASSETS = TOTAL_LIABILITIES + TOTAL_EQUITY within "
                                            f"{BALANCE_IDENTITY_TOLERANCE:.1%}"))
    return specs


# ---------------------------------------------------------------- warehouse state


def _in_list(symbols) -> str:
    quoted = ", ".join(f"'{s}'" for s in sorted(symbols) if SYMBOL_RE.match(s))
    return f"({quoted})" if quoted else "(NULL)"


def _ts(value) -> datetime | None:
    """A TIMESTAMP_NTZ read back; the emulator returns NULL timestamps as 1970-01-01."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return None if value.year <= 1970 else value.replace(tzinfo=None)
    return timestamp(value)


@dataclass
class LatestStatement:
    end: date
    period: str
    max_accepted: datetime | None
    values: dict[str, float | None] = field(default_factory=dict)


@dataclass
class WarehouseState:
    universe: dict[str, tuple[str | None, bool | None]]  # symbol -> (statement symbol, is member)
    checked: dict[tuple[str, str], datetime]  # (dataset, symbol) -> last check
    profile_fetched: dict[str, datetime]
    last_price_day: dict[str, date]
    latest_statement: dict[str, dict[str, LatestStatement]]  # kind -> symbol -> latest quarter


def read_state(cursor, symbols: set[str], statement_symbols: set[str], kinds: list[StatementKind]) -> WarehouseState:
    every = symbols | statement_symbols
    universe = {r[0]: (r[1], r[2]) for r in cursor.execute(
        f"SELECT SYMBOL, STATEMENT_SYMBOL, IS_MEMBER FROM FMP_RAW.UNIVERSE WHERE SYMBOL IN {_in_list(every)}").fetchall()}
    checked = {(r[0], r[1]): _ts(r[2]) for r in cursor.execute(
        f"SELECT DATASET, SYMBOL, CHECKED_AT FROM {FETCH_LOG.qualified} WHERE SYMBOL IN {_in_list(every)}").fetchall()}
    profile_fetched = {r[0]: _ts(r[1]) for r in cursor.execute(
        f"SELECT SYMBOL, MAX(FETCHED_AT) FROM {COMPANY_PROFILES.qualified} WHERE SYMBOL IN {_in_list(symbols)} "
        "GROUP BY SYMBOL").fetchall()}
    last_price_day = {r[0]: r[1] for r in cursor.execute(
        f"SELECT SYMBOL, MAX(DATE) FROM {DAILY_PRICES.qualified} WHERE SYMBOL IN {_in_list(symbols)} "
        "GROUP BY SYMBOL").fetchall()}
    latest: dict[str, dict[str, LatestStatement]] = {}
    for kind in kinds:
        numeric = [column_name(f) for f in kind.fields]
        rows = cursor.execute(
            f"SELECT SYMBOL, PERIOD_END_DATE, PERIOD, MAX(ACCEPTED_DATE) OVER (PARTITION BY SYMBOL), "
            f"{', '.join(numeric)} FROM {kind.table.qualified} "
            f"WHERE SYMBOL IN {_in_list(statement_symbols)} AND PERIOD <> 'FY' "
            "QUALIFY ROW_NUMBER() OVER (PARTITION BY SYMBOL ORDER BY PERIOD_END_DATE DESC, "
            "ACCEPTED_DATE DESC NULLS LAST) = 1"
        ).fetchall()
        latest[kind.kind] = {
            r[0]: LatestStatement(r[1], r[2], _ts(r[3]), dict(zip(kind.fields, r[4:]))) for r in rows
        }
    return WarehouseState(universe, checked, profile_fetched, last_price_day, latest)


# ---------------------------------------------------------------- planning and fetching


def _weekdays_between(start: date, end: date) -> bool:
    return any((start + timedelta(days=i)).weekday() < 5 for i in range(min(7, (end - start).days + 1)))


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def _fresh_by_slot(symbol: str, seen: list[datetime], now: datetime, cycle_days: float) -> bool:
    """Seen today; or (cycle > 1 day) younger than the cycle and today is not this symbol's slot.

    Each symbol gets a fixed day of the cycle, so a universe loaded on one day spreads its refresh
    calls evenly over the following cycle (~1/N per day) instead of expiring all at once, and no
    symbol is ever older than the cycle."""
    if not seen:
        return False
    age = (now.date() - max(seen).date()).days
    if age <= 0:
        return True
    cycle = int(cycle_days)
    if cycle <= 1 or age >= cycle:
        return False
    slot = int(hashlib.sha256(symbol.encode()).hexdigest(), 16) % cycle
    return now.date().toordinal() % cycle != slot


def _profile_fresh(symbol: str, seen: list[datetime], now: datetime, max_age_days: int) -> bool:
    return _fresh_by_slot(symbol, seen, now, max_age_days)


@dataclass
class Plan:
    profiles: list[str] = field(default_factory=list)
    prices: dict[str, date] = field(default_factory=dict)  # symbol -> first missing day
    statements: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # dataset -> symbols skipped as fresh
    removed: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


def make_plan(config: RawFmpConfig, symbols: list[str], selected: set[AssetKey], kinds: list[StatementKind],
              state: WarehouseState, now: datetime) -> Plan:
    plan = Plan(skipped={"profiles": [], "prices": [], "statements": []})
    recheck = timedelta(hours=config.recheck_after_hours)

    def recent(dataset: str, symbol: str) -> bool:
        when = state.checked.get((dataset, symbol))
        return not config.force_refresh and when is not None and now - when < recheck

    companies: list[str] = []
    for symbol in symbols:
        if not SYMBOL_RE.match(symbol):
            plan.invalid.append(symbol)
            continue
        member = state.universe.get(symbol, (None, True))[1]
        if member is False:
            plan.removed.append(symbol)
            continue
        if PROFILES_KEY in selected:
            fetched = state.profile_fetched.get(symbol)
            checked = state.checked.get(("profile", symbol))
            fresh = _profile_fresh(symbol, [t for t in (fetched, checked) if t is not None], now,
                                   config.profile_max_age_days)
            if fresh and not config.force_refresh:
                plan.skipped["profiles"].append(symbol)
            else:
                plan.profiles.append(symbol)
        if PRICES_KEY in selected:
            last = state.last_price_day.get(symbol)
            if last is None or config.force_refresh:
                start = (now - timedelta(days=round(365.25 * config.price_history_years))).date()
            else:
                start = last + timedelta(days=1)
            if not config.force_refresh and (recent("prices", symbol) or start > now.date()
                                             or not _weekdays_between(start, now.date())):
                plan.skipped["prices"].append(symbol)
            else:
                # re-read the last loaded day too: a bar fetched during the session may have been partial
                plan.prices[symbol] = last if last is not None and not config.force_refresh else start
        if kinds:
            company = state.universe.get(symbol, (None, None))[0] or statement_symbol(symbol)
            if company not in companies:
                companies.append(company)
    for company in companies:
        if all(recent(f"statements:{k.kind}", company) for k in kinds) or (
                not config.force_refresh and not _filing_may_be_due(company, kinds, state, now, config)):
            plan.skipped["statements"].append(company)
        else:
            plan.statements.append(company)
    return plan


# A quarter's 10-Q/10-K is filed 3-8 weeks after the quarter ends (FMP_SPEC §5, §11); the next
# quarter ends ~91 days after the latest one loaded, so no new filing can exist before this.
EARLIEST_NEXT_FILING_DAYS = 91 + 14


def _filing_may_be_due(company: str, kinds: list[StatementKind], state: WarehouseState, now: datetime,
                       config: RawFmpConfig) -> bool:
    """False only when every selected kind is loaded, its next quarterly filing cannot be out yet,
    and the company was probed within ``statement_recheck_days`` (amendments are caught then)."""
    latest = [state.latest_statement.get(k.kind, {}).get(company) for k in kinds]
    if not all(latest):
        return True
    if now.date() >= min(x.end for x in latest) + timedelta(days=EARLIEST_NEXT_FILING_DAYS):
        return True
    checks = [state.checked.get((f"statements:{k.kind}", company)) for k in kinds]
    if not all(checks):
        return True
    if config.statement_recheck_days <= 0:
        return True
    return not _fresh_by_slot(company, [min(checks)], now, max(1.0, config.statement_recheck_days))


def fetch_statements(client, company: str, kinds: list[StatementKind], state: WarehouseState,
                     config: RawFmpConfig) -> dict[str, Any]:
    """Probe the latest quarter once; fetch every selected kind's full history only when needed."""
    calls, reason = 0, "first load"
    loaded = {k.kind: state.latest_statement.get(k.kind, {}).get(company) for k in kinds}
    if config.force_refresh:
        reason = "forced"
    elif all(loaded.values()):
        probe_kind = kinds[0]
        rows = client.statements(probe_kind.kind, company, "quarter", limit=1)
        calls += 1
        if not rows:
            return {"status": "empty", "calls": calls, "rows": {}, "reason": "FMP returned []"}
        probe, latest = rows[0], loaded[probe_kind.kind]
        end, accepted = day(probe.get("date")), timestamp(probe.get("acceptedDate"))
        if end is not None and end > latest.end:
            reason = f"new period {end}"
        elif accepted is not None and (latest.max_accepted is None or accepted > latest.max_accepted):
            reason = f"newer filing accepted {accepted}"
        elif end == latest.end and not all(_same(number(probe.get(f)), latest.values.get(f))
                                           for f in probe_kind.fields):
            reason = f"restated values for {end}"
        else:
            return {"status": "fresh", "calls": calls, "rows": {}, "reason": "latest filing already loaded"}
    fetched: dict[str, list] = {}
    annual_limit = max(1, config.statement_quarters // 4)
    for kind in kinds:
        annual = client.statements(kind.kind, company, "annual", limit=annual_limit)
        quarter = client.statements(kind.kind, company, "quarter", limit=config.statement_quarters)
        calls += 2
        fetched[kind.kind] = list(annual) + list(quarter)
    status = "fetched" if any(fetched.values()) else "empty"
    return {"status": status, "calls": calls, "rows": fetched, "reason": reason}


def _concat(frames: list, empty):
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _price_windows(start: date, end: date) -> int:
    return 1 + max(0, (end - start).days) // (18 * 365)  # the client splits at 18 years


# ---------------------------------------------------------------- checks


def _key_check(cursor, table: Table, symbols: set[str]) -> AssetCheckResult:
    keys = ", ".join(table.key)
    nulls = " OR ".join(f"{k} IS NULL" for k in table.key)
    null_count = cursor.execute(f"SELECT COUNT(*) FROM {table.qualified} WHERE {nulls}").fetchone()[0]
    dup_count = cursor.execute(
        f"SELECT COUNT(*) FROM (SELECT {keys} FROM {table.qualified} WHERE SYMBOL IN {_in_list(symbols)} "
        f"GROUP BY {keys} HAVING COUNT(*) > 1)").fetchone()[0]
    rows = cursor.execute(
        f"SELECT COUNT(*) FROM {table.qualified} WHERE SYMBOL IN {_in_list(symbols)}").fetchone()[0]
    return AssetCheckResult(
        check_name="keys_not_null_and_unique", asset_key=_key_of(table), passed=null_count == 0 and dup_count == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"null_keys": int(null_count), "duplicate_keys": int(dup_count), "rows_checked": int(rows)})


def _key_of(table: Table) -> AssetKey:
    return next(k for k, t in TABLE_OF_KEY.items() if t is table)


def _price_check(cursor, symbols: set[str]) -> AssetCheckResult:
    non_positive, inverted, null_close, rows = cursor.execute(
        "SELECT COUNT_IF(OPEN <= 0 OR HIGH <= 0 OR LOW <= 0 OR CLOSE <= 0), COUNT_IF(HIGH < LOW), "
        f"COUNT_IF(CLOSE IS NULL), COUNT(*) FROM {DAILY_PRICES.qualified} WHERE SYMBOL IN {_in_list(symbols)}"
    ).fetchone()
    sample = cursor.execute(
        f"SELECT SYMBOL, DATE FROM {DAILY_PRICES.qualified} WHERE SYMBOL IN {_in_list(symbols)} AND "
        "(OPEN <= 0 OR HIGH <= 0 OR LOW <= 0 OR CLOSE <= 0 OR HIGH < LOW) ORDER BY SYMBOL, DATE LIMIT 10"
    ).fetchall()
    return AssetCheckResult(
        check_name="prices_positive_high_ge_low", asset_key=PRICES_KEY,
        passed=(non_positive or 0) == 0 and (inverted or 0) == 0, severity=AssetCheckSeverity.ERROR,
        metadata={"non_positive_rows": int(non_positive or 0), "high_below_low_rows": int(inverted or 0),
                  "null_close_rows": int(null_close or 0), "rows_checked": int(rows),
                  "examples": ", ".join(f"{s} {d}" for s, d in sample) or "none"})


def _balance_check(cursor, statement_symbols: set[str]) -> AssetCheckResult:
    t = BALANCE_IDENTITY_TOLERANCE
    gap = "ABS(TOTAL_ASSETS - (TOTAL_LIABILITIES + TOTAL_EQUITY))"
    limit = f"GREATEST(1.0, {t} * ABS(TOTAL_ASSETS))"
    where = f"SYMBOL IN {_in_list(statement_symbols)}"
    rows, broken, incomplete = cursor.execute(
        f"SELECT COUNT(*), COUNT_IF({gap} > {limit}), "
        "COUNT_IF(TOTAL_ASSETS IS NULL OR TOTAL_LIABILITIES IS NULL OR TOTAL_EQUITY IS NULL) "
        f"FROM {BALANCE.table.qualified} WHERE {where}").fetchone()
    sample = cursor.execute(
        f"SELECT SYMBOL, PERIOD_END_DATE, PERIOD FROM {BALANCE.table.qualified} WHERE {where} AND {gap} > {limit} "
        "ORDER BY SYMBOL, PERIOD_END_DATE LIMIT 10").fetchall()
    return AssetCheckResult(
        check_name="balance_sheet_identity", asset_key=BALANCE_KEY, passed=(broken or 0) == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"rows_checked": int(rows), "rows_violating": int(broken or 0),
                  "rows_missing_totals": int(incomplete or 0), "tolerance": t,
                  "examples": ", ".join(f"{s} {d} {p}" for s, d, p in sample) or "none"})


# ---------------------------------------------------------------- chart

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 64) -> str:
    if not values:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [values[min(len(values) - 1, int((i + 1) * step) - 1)] for i in range(width)]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    return "".join(SPARK[min(7, int((v - lo) / span * 7.999))] for v in values)


def price_chart(cursor, symbol: str) -> MetadataValue:
    rows = cursor.execute(
        f"SELECT DATE, CLOSE FROM {DAILY_PRICES.qualified} WHERE SYMBOL = '{symbol}' AND CLOSE IS NOT NULL "
        f"ORDER BY DATE DESC LIMIT {TRADING_DAYS_CHART}").fetchall()[::-1]
    if not rows:
        return MetadataValue.md(f"No prices loaded for **{symbol}**.")
    closes = [float(c) for _, c in rows]
    change = closes[-1] / closes[0] - 1 if closes[0] else 0.0
    return MetadataValue.md(
        f"**{symbol}** close, last {len(rows)} trading days ({rows[0][0]} → {rows[-1][0]})\n\n"
        f"`{sparkline(closes)}`\n\n"
        f"| first | low | high | last | change |\n|---|---|---|---|---|\n"
        f"| {closes[0]:.2f} | {min(closes):.2f} | {max(closes):.2f} | {closes[-1]:.2f} | {change:+.1%} |")


# ---------------------------------------------------------------- the multi-asset


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
    selected = set(context.selected_asset_keys)
    selected_checks = set(context.selected_asset_check_keys)
    kinds = [k for k in STATEMENT_KINDS if KIND_KEYS[k.kind] in selected]
    symbols = sorted(set(context.partition_keys))
    client = fmp.get_client()
    calls_before = client.snapshot()
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    notes = Notes()

    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        ensure_tables(cur)
        universe = {r[0]: (r[1], r[2]) for r in cur.execute(
            f"SELECT SYMBOL, STATEMENT_SYMBOL, IS_MEMBER FROM FMP_RAW.UNIVERSE WHERE SYMBOL IN {_in_list(symbols)}"
        ).fetchall()}
        statement_symbols = {(universe.get(s, (None,))[0] or statement_symbol(s)) for s in symbols} if kinds else set()
        state = read_state(cur, set(symbols), statement_symbols, kinds)
    plan = make_plan(config, symbols, selected, kinds, state, now)
    for symbol in plan.invalid:
        notes.add("partition keys that are not ticker symbols (skipped)", symbol, repr(symbol))
    for symbol in plan.removed:
        notes.add("symbols no longer in the index (history kept, not refreshed)", symbol, symbol)
    context.log.info(
        f"{len(symbols)} partition(s): fetching profiles {len(plan.profiles)}, prices {len(plan.prices)}, "
        f"statements {len(plan.statements)} compan(ies); fresh/skipped: "
        + ", ".join(f"{k} {len(v)}" for k, v in plan.skipped.items()))

    def task(item: tuple[str, str]) -> dict[str, Any]:
        """Fetch one (dataset, symbol) and normalise it in the worker thread, so only compact frames
        (not millions of JSON dicts) are held until the load."""
        dataset, symbol = item
        local_notes, local_rejects = Notes(), []
        if dataset == "statements":
            result = fetch_statements(client, symbol, kinds, state, config)
            raw = result.pop("rows")
            result["frames"] = {
                kind.kind: normalize.statement_frame(kind, normalize.statement_rows(
                    kind, symbol, raw.get(kind.kind, []), now, local_notes, local_rejects))
                for kind in kinds if kind.kind in raw}
        elif dataset == "prices":
            start = plan.prices[symbol]
            raw = client.historical_prices(symbol, start, now.date())
            result = {"status": "fetched" if raw else "empty", "calls": _price_windows(start, now.date()),
                      "reason": f"from {start}",
                      "frame": normalize.price_frame(normalize.price_rows(symbol, raw, now, local_notes,
                                                                          local_rejects))}
        else:
            record = client.profile(symbol)
            result = {"status": "fetched" if record else "empty", "calls": 1, "reason": "",
                      "row": normalize.profile_row(symbol, record, now, local_notes) if record else None}
        result.update(notes=local_notes, rejects=local_rejects)
        return result

    # statements first: they make the most calls per item, so the limiter stays busy to the end
    tasks = ([("statements", c) for c in plan.statements] + [("prices", s) for s in plan.prices]
             + [("profile", s) for s in plan.profiles])
    fetch_started = time.monotonic()
    results = client.map_concurrent(task, tasks, max_workers=config.max_workers) if tasks else {}
    fetch_seconds = time.monotonic() - fetch_started

    profile_rows, price_frames, rejects, log_rows, failures = [], [], [], [], {}
    statement_frames: dict[str, list] = {k.kind: [] for k in kinds}
    calls = {"profiles": 0, "prices": 0, "statements": 0}
    fetched_counts = {"profiles": 0, "prices": 0, "statements": 0}
    for (dataset, symbol), result in results.items():
        if isinstance(result, Exception):
            failures[f"{dataset}:{symbol}"] = f"{type(result).__name__}: {str(result)[:200]}"
            continue
        bucket = "profiles" if dataset == "profile" else dataset
        calls[bucket] += result["calls"]
        notes.merge(result["notes"])
        rejects.extend(result["rejects"])
        status = result["status"]
        if status == "empty":
            notes.add(f"unknown or delisted symbols: FMP returned no {bucket}", symbol, f"{symbol}: []")
        if status == "fetched":
            fetched_counts[bucket] += 1
            if dataset == "profile":
                profile_rows.append(result["row"])
            elif dataset == "prices":
                price_frames.append(result["frame"])
            else:
                for kind, frame in result["frames"].items():
                    statement_frames[kind].append(frame)
        datasets = [f"statements:{k.kind}" for k in kinds] if dataset == "statements" else [dataset]
        for name in datasets:
            log_rows.append({"DATASET": name, "SYMBOL": symbol, "CHECKED_AT": now, "STATUS": status,
                             "DETAIL": str(result.get("reason") or "")[:500]})
    del results
    for key, error in sorted(failures.items()):
        context.log.error(f"FMP fetch failed after retries for {key}: {error}")

    frames: list[tuple[Table, Any]] = []
    if PROFILES_KEY in selected:
        frames.append((COMPANY_PROFILES, normalize.profile_frame(profile_rows)))
    if PRICES_KEY in selected:
        frames.append((DAILY_PRICES, _concat(price_frames, normalize.price_frame([]))))
    for kind in kinds:
        frames.append((kind.table, _concat(statement_frames[kind.kind], normalize.statement_frame(kind, []))))
    frames.append((REJECTED_ROWS, normalize.rejected_frame(rejects)))
    log_frame = normalize._frame(log_rows, FETCH_LOG.column_names, timestamps=["CHECKED_AT"])
    frames.append((FETCH_LOG, log_frame))

    load_started = time.monotonic()
    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        written = load.load_tables(cur, frames)
        load_seconds = time.monotonic() - load_started
        check_results = []
        scope = {PROFILES_KEY: set(symbols), PRICES_KEY: set(symbols), INCOME_KEY: statement_symbols,
                 BALANCE_KEY: statement_symbols, CASH_FLOW_KEY: statement_symbols}
        for key, table in TABLE_OF_KEY.items():
            if key in selected:
                check_results.append(_key_check(cur, table, scope[key]))
        if PRICES_KEY in selected:
            check_results.append(_price_check(cur, set(symbols)))
        if BALANCE_KEY in selected:
            check_results.append(_balance_check(cur, statement_symbols))
        chart = price_chart(cur, symbols[0]) if PRICES_KEY in selected and len(symbols) == 1 else None

    for line in notes.lines():
        context.log.warning(line)
    if rejects:
        context.log.warning(f"{len(rejects)} record(s) could not be keyed; kept in FMP_RAW.REJECTED_ROWS")
    seconds = time.monotonic() - started
    calls_after = client.snapshot()
    run_calls = calls_after["calls_made"] - calls_before["calls_made"]
    context.log.info(
        f"done in {seconds:.1f} s (fetch {fetch_seconds:.1f} s, load {load_seconds:.1f} s); "
        f"HTTP requests {run_calls} (429s {calls_after['rate_limited'] - calls_before['rate_limited']}, "
        f"retries {calls_after['retries'] - calls_before['retries']}); rows written {written}")
    if failures and not config.allow_partial_failure:
        raise Failure(
            description=f"{len(failures)} FMP fetch(es) failed after retries; everything else is loaded and a "
            "rerun fetches only what is missing. Set allow_partial_failure to accept.",
            metadata={"failures": MetadataValue.json(failures)})

    common = {
        "run_http_requests": run_calls,
        "run_429s": calls_after["rate_limited"] - calls_before["rate_limited"],
        "run_retries": calls_after["retries"] - calls_before["retries"],
        "run_seconds": round(seconds, 2),
        "fetch_seconds": round(fetch_seconds, 2),
        "load_seconds": round(load_seconds, 2),
        "partitions": len(symbols),
        "warnings": MetadataValue.json(notes.counts()),
        "failures": MetadataValue.json(failures),
    }
    bucket_of = {PROFILES_KEY: "profiles", PRICES_KEY: "prices", INCOME_KEY: "statements",
                 BALANCE_KEY: "statements", CASH_FLOW_KEY: "statements"}
    for key in (PROFILES_KEY, PRICES_KEY, INCOME_KEY, BALANCE_KEY, CASH_FLOW_KEY):
        if key not in selected:
            continue
        bucket = bucket_of[key]
        rows_written = written.get(TABLE_OF_KEY[key].name, 0)
        metadata = {
            **common,
            "table": f"FMP_RAW.{TABLE_OF_KEY[key].name}",
            "rows_written": rows_written,
            "api_calls": calls[bucket] if bucket != "statements" else calls["statements"],
            "symbols_fetched": fetched_counts[bucket],
            "symbols_fresh_skipped": len(plan.skipped[bucket]),
            "seconds": round(seconds, 2),
            "rows_per_second": round(rows_written / seconds, 1) if seconds > 0 else 0.0,
        }
        if bucket == "statements":
            metadata["api_calls_note"] = "statement calls are shared by the selected statement assets"
        if key == PRICES_KEY and chart is not None:
            metadata["price_chart"] = chart
        yield MaterializeResult(asset_key=key, metadata=metadata)
    for result in check_results:
        if AssetCheckKey(result.asset_key, result.check_name) in selected_checks:
            yield result
