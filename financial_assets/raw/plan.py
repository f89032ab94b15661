"""What a raw run must ask FMP: the warehouse's state for the run's symbols, and the plan built from it.

Skip what is fresh (unless ``force_refresh``):
* profiles: at most once per ``profile_max_age_days`` per symbol (staggered over the days);
* prices: only the days after the last loaded DATE (first load: ``price_history_years``). When only the
  latest closed NYSE session is missing, FMP's batch quote (100 tickers per call) gives that day's bar;
  otherwise, and every ``price_eod_recheck_days`` per ticker, the per-ticker EOD endpoint;
* statements: no call at all while the company's next quarterly filing cannot be out yet (latest
  loaded quarter end + 105 days), except a staggered recheck every ``statement_recheck_days``;
  otherwise one cheap probe per company (latest quarter of the first selected statement kind), and
  the full history (annual + quarter of every selected kind) only when the probe shows a newer
  period, a newer acceptedDate or restated values for the latest loaded quarter;
* any (dataset, symbol) asked within ``recheck_after_hours`` is not asked again (FMP_RAW.FETCH_LOG),
  so rerunning a finished backfill makes close to zero API calls.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dagster import AssetKey, Config
from pydantic import Field

from financial_assets.market_calendar import previous_session, session_closed
from financial_assets.raw.keys import PRICES_KEY, PROFILES_KEY
from financial_assets.raw.normalize import day, number, timestamp
from financial_assets.raw.schema import (
    COMPANY_PROFILES,
    DAILY_PRICES,
    FETCH_LOG,
    StatementKind,
    column_name,
)
from financial_assets.raw.universe import statement_symbol
from financial_assets.symbols import in_list, is_symbol

NEW_YORK = ZoneInfo("America/New_York")


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
    price_eod_recheck_days: float = Field(
        default=7.0, description="a ticker whose last day comes from FMP's batch quote is re-read from the EOD "
        "endpoint at most every N days, spread evenly over the days (quote bars converge to FMP's EOD bars)")
    report_changed_only: bool = Field(
        default=False, description="materialize only the partitions whose rows changed (the daily refresh: "
        "automation then recomputes only them); off, every requested partition is materialized, as a "
        "backfill or a run from the UI expects")
    max_workers: int | None = Field(default=None, description="threads for FMP calls (default: the client's)")
    allow_partial_failure: bool = Field(
        default=False, description="succeed even if some symbols failed after retries (they are reported)")


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


def read_universe(cursor, symbols) -> dict[str, tuple[str | None, bool | None]]:
    """symbol -> (statement symbol, is member) for the known ones."""
    return {r[0]: (r[1], r[2]) for r in cursor.execute(
        f"SELECT SYMBOL, STATEMENT_SYMBOL, IS_MEMBER FROM FMP_RAW.UNIVERSE WHERE SYMBOL IN {in_list(symbols)}"
    ).fetchall()}


def read_state(cursor, universe: dict, symbols: set[str], statement_symbols: set[str],
               kinds: list[StatementKind]) -> WarehouseState:
    every = symbols | statement_symbols
    checked = {(r[0], r[1]): _ts(r[2]) for r in cursor.execute(
        f"SELECT DATASET, SYMBOL, CHECKED_AT FROM {FETCH_LOG.qualified} WHERE SYMBOL IN {in_list(every)}").fetchall()}
    profile_fetched = {r[0]: _ts(r[1]) for r in cursor.execute(
        f"SELECT SYMBOL, MAX(FETCHED_AT) FROM {COMPANY_PROFILES.qualified} WHERE SYMBOL IN {in_list(symbols)} "
        "GROUP BY SYMBOL").fetchall()}
    last_price_day = {r[0]: r[1] for r in cursor.execute(
        f"SELECT SYMBOL, MAX(DATE) FROM {DAILY_PRICES.qualified} WHERE SYMBOL IN {in_list(symbols)} "
        "GROUP BY SYMBOL").fetchall()}
    latest: dict[str, dict[str, LatestStatement]] = {}
    for kind in kinds:
        numeric = [column_name(f) for f in kind.fields]
        rows = cursor.execute(
            f"SELECT SYMBOL, PERIOD_END_DATE, PERIOD, MAX(ACCEPTED_DATE) OVER (PARTITION BY SYMBOL), "
            f"{', '.join(numeric)} FROM {kind.table.qualified} "
            f"WHERE SYMBOL IN {in_list(statement_symbols)} AND PERIOD <> 'FY' "
            "QUALIFY ROW_NUMBER() OVER (PARTITION BY SYMBOL ORDER BY PERIOD_END_DATE DESC, "
            "ACCEPTED_DATE DESC NULLS LAST) = 1"
        ).fetchall()
        latest[kind.kind] = {
            r[0]: LatestStatement(r[1], r[2], _ts(r[3]), dict(zip(kind.fields, r[4:]))) for r in rows
        }
    return WarehouseState(universe, checked, profile_fetched, last_price_day, latest)


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
    prices: dict[str, date] = field(default_factory=dict)  # symbol -> first day to read from the EOD endpoint
    quote_bars: dict[str, dict] = field(default_factory=dict)  # symbol -> the latest session's bar, from a quote
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
        if not is_symbol(symbol):
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


def quote_candidates(plan: Plan, state: WarehouseState, now: datetime, config: RawFmpConfig) -> list[str]:
    """Tickers whose missing days may be just the latest session: loaded before, not forced, and not
    due for their staggered EOD re-read."""
    if config.force_refresh:
        return []
    return [s for s, start in plan.prices.items()
            if state.last_price_day.get(s) == start
            and _fresh_by_slot(s, [t for t in [state.checked.get(("prices:eod", s))] if t], now,
                               max(1.0, config.price_eod_recheck_days))]


def apply_quotes(plan: Plan, state: WarehouseState, quotes: list[dict], now: datetime) -> None:
    """Take a ticker's bar from its quote when the quote's session has closed and is the only session
    missing (or re-reads the last loaded one); every other ticker keeps its EOD fetch."""
    aware_now = now.replace(tzinfo=UTC)
    for quote in quotes:
        symbol, stamp = quote.get("symbol"), number(quote.get("timestamp"))
        last = state.last_price_day.get(symbol)
        if symbol not in plan.prices or last is None or stamp is None:
            continue
        session = datetime.fromtimestamp(stamp, NEW_YORK).date()
        if not session_closed(session, aware_now) or not (session == last or previous_session(session) == last):
            continue
        bar = quote_bar(quote, session)
        if bar is not None:
            plan.quote_bars[symbol] = bar
            del plan.prices[symbol]


def quote_bar(quote: dict, session: date) -> dict | None:
    """The session's EOD bar in the shape of FMP's stable EOD rows (change = close - open, vwap = mean
    of OHLC, FMP_SPEC §3.3), with the quote kept whole beside it."""
    o, h, low, c = (number(quote.get(f)) for f in ("open", "dayHigh", "dayLow", "price"))
    if None in (o, h, low, c) or o <= 0:
        return None
    return {"symbol": quote["symbol"], "date": session.isoformat(), "open": o, "high": h, "low": low, "close": c,
            "volume": quote.get("volume"), "change": round(c - o, 2), "changePercent": round(100 * (c - o) / o, 5),
            "vwap": round((o + h + low + c) / 4, 4), "source": "batch-quote", "quote": quote}


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
