"""Blocking checks of the raw tables, evaluated inside the raw run on the run's symbols, and the
per-symbol price chart shown in the UI."""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, MetadataValue

from financial_assets.raw.keys import BALANCE_KEY, PRICES_KEY, TABLE_OF_KEY
from financial_assets.raw.schema import BALANCE, DAILY_PRICES, Table
from financial_assets.symbols import in_list, quote

BALANCE_IDENTITY_TOLERANCE = 0.001  # relative to |TOTAL_ASSETS| (and at least 1 currency unit)
TRADING_DAYS_CHART = 252

def key_check(cursor, table: Table, symbols: set[str]) -> AssetCheckResult:
    keys = ", ".join(table.key)
    nulls = " OR ".join(f"{k} IS NULL" for k in table.key)
    null_count, dup_count, rows = cursor.execute(
        f"SELECT (SELECT COUNT(*) FROM {table.qualified} WHERE {nulls}), "
        f"(SELECT COUNT(*) FROM (SELECT {keys} FROM {table.qualified} WHERE SYMBOL IN {in_list(symbols)} "
        f"GROUP BY {keys} HAVING COUNT(*) > 1)), "
        f"(SELECT COUNT(*) FROM {table.qualified} WHERE SYMBOL IN {in_list(symbols)})").fetchone()
    return AssetCheckResult(
        check_name="keys_not_null_and_unique", asset_key=_key_of(table), passed=null_count == 0 and dup_count == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"null_keys": int(null_count), "duplicate_keys": int(dup_count), "rows_checked": int(rows)})


def _key_of(table: Table) -> AssetKey:
    return next(k for k, t in TABLE_OF_KEY.items() if t is table)


def price_check(cursor, symbols: set[str]) -> AssetCheckResult:
    non_positive, inverted, null_close, rows = cursor.execute(
        "SELECT COUNT_IF(OPEN <= 0 OR HIGH <= 0 OR LOW <= 0 OR CLOSE <= 0), COUNT_IF(HIGH < LOW), "
        f"COUNT_IF(CLOSE IS NULL), COUNT(*) FROM {DAILY_PRICES.qualified} WHERE SYMBOL IN {in_list(symbols)}"
    ).fetchone()
    sample = cursor.execute(
        f"SELECT SYMBOL, DATE FROM {DAILY_PRICES.qualified} WHERE SYMBOL IN {in_list(symbols)} AND "
        "(OPEN <= 0 OR HIGH <= 0 OR LOW <= 0 OR CLOSE <= 0 OR HIGH < LOW) ORDER BY SYMBOL, DATE LIMIT 10"
    ).fetchall()
    return AssetCheckResult(
        check_name="prices_positive_high_ge_low", asset_key=PRICES_KEY,
        passed=(non_positive or 0) == 0 and (inverted or 0) == 0, severity=AssetCheckSeverity.ERROR,
        metadata={"non_positive_rows": int(non_positive or 0), "high_below_low_rows": int(inverted or 0),
                  "null_close_rows": int(null_close or 0), "rows_checked": int(rows),
                  "examples": ", ".join(f"{s} {d}" for s, d in sample) or "none"})


def balance_check(cursor, statement_symbols: set[str]) -> AssetCheckResult:
    t = BALANCE_IDENTITY_TOLERANCE
    gap = "ABS(TOTAL_ASSETS - (TOTAL_LIABILITIES + TOTAL_EQUITY))"
    limit = f"GREATEST(1.0, {t} * ABS(TOTAL_ASSETS))"
    where = f"SYMBOL IN {in_list(statement_symbols)}"
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
        f"SELECT DATE, CLOSE FROM {DAILY_PRICES.qualified} WHERE SYMBOL = {quote(symbol)} AND CLOSE IS NOT NULL "
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
