"""The S&P 500 universe: FMP's constituent list, or the packaged list when the plan lacks it.

Writes FMP_RAW.UNIVERSE (history kept: a removed symbol stays with IS_MEMBER = false) and keeps
the ``sp500_symbols`` dynamic partitions in step (added symbols get partitions; removed ones keep
theirs so their history stays browsable, but the raw assets stop refreshing them).
"""


import time
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from financial_assets import freshness
from financial_assets.partitions import symbol_partitions
from financial_assets.raw import load
from financial_assets.raw.normalize import Notes, text, to_fmp_symbol, to_index_symbol
from financial_assets.raw.schema import UNIVERSE, ensure_tables
from financial_assets.symbols import is_symbol
from resources.fmp import FMPPlanError, FMPResource
from resources.retry import network_retry_policy
from resources.warehouse import Warehouse

UNIVERSE_KEY = AssetKey(["fmp_raw", "universe"])

# second share class -> the class whose statements serve the company (FMP_SPEC §9.8)
SHARE_CLASS_STATEMENT_SYMBOL = {"GOOG": "GOOGL", "FOX": "FOXA", "NWS": "NWSA"}

GICS_SECTORS = (
    "Communication Services", "Consumer Discretionary", "Consumer Staples", "Energy", "Financials",
    "Health Care", "Industrials", "Information Technology", "Materials", "Real Estate", "Utilities",
)
# pytickersymbols names two GICS sectors for 16 companies (FMP_SPEC §10); this order picks the
# right one for each of them (utilities over energy, REITs over financials, ...).
SECTOR_PRECEDENCE = (
    "Health Care", "Utilities", "Real Estate", "Financials", "Consumer Discretionary", "Industrials",
    "Energy", "Information Technology", "Communication Services", "Consumer Staples", "Materials",
)


def statement_symbol(symbol: str) -> str:
    return SHARE_CLASS_STATEMENT_SYMBOL.get(symbol, symbol)


def packaged_constituents() -> list[dict]:
    """The S&P 500 as shipped in pytickersymbols (no CIK; GICS sector from its industry labels)."""
    from pytickersymbols import PyTickerSymbols

    out = []
    for record in PyTickerSymbols().get_stocks_by_index("S&P 500"):
        industries = [i for i in (record.get("industries") or []) if i]
        sectors = [s for s in SECTOR_PRECEDENCE if s in industries]
        others = [i for i in industries if i not in GICS_SECTORS]
        out.append({"symbol": record["symbol"], "name": record.get("name"),
                    "sector": sectors[0] if sectors else None,
                    "subSector": min(others, key=len) if others else None, "cik": None})
    return out


def universe_frame(records: list[dict], source: str, now: datetime, notes: Notes) -> pd.DataFrame:
    rows, seen = [], set()
    for record in records:
        raw_symbol = text((record or {}).get("symbol"))
        symbol = to_index_symbol(raw_symbol) if raw_symbol else None
        if not is_symbol(symbol):
            notes.add("constituents without a usable symbol (skipped)", str(raw_symbol), repr(record)[:120])
            continue
        if symbol in seen:
            notes.add("duplicate constituents (first kept)", symbol, symbol)
            continue
        seen.add(symbol)
        rows.append({
            "SYMBOL": symbol, "FMP_SYMBOL": to_fmp_symbol(symbol), "COMPANY_NAME": text(record.get("name")),
            "SECTOR": text(record.get("sector")), "SUB_SECTOR": text(record.get("subSector")),
            "CIK": text(record.get("cik")), "STATEMENT_SYMBOL": statement_symbol(symbol), "IS_MEMBER": True,
            "SOURCE": source, "UPDATED_AT": now,
        })
    frame = pd.DataFrame(rows, columns=UNIVERSE.column_names)
    frame["UPDATED_AT"] = pd.to_datetime(frame["UPDATED_AT"])
    frame["IS_MEMBER"] = frame["IS_MEMBER"].astype(bool)
    # dual share classes: both tickers of one CIK must point at one statement symbol
    by_cik = defaultdict(set)
    for row in rows:
        if row["CIK"]:
            by_cik[row["CIK"]].add(row["STATEMENT_SYMBOL"])
    for cik, symbols in by_cik.items():
        if len(symbols) > 1:
            notes.add("several statement symbols share one CIK (each keeps its own statements)",
                      "/".join(sorted(symbols)), f"CIK {cik}: {sorted(symbols)}")
    return frame


@asset(
    key=UNIVERSE_KEY,
    group_name="fmp_raw",
    pool="fmp_api",
    retry_policy=network_retry_policy,
    freshness_policy=freshness.daily,
    kinds={"snowflake"},
    description="S&P 500 constituents (FMP sp500-constituent; packaged pytickersymbols list when the FMP "
    "plan lacks the endpoint). Table FMP_RAW.UNIVERSE; keeps the sp500_symbols partitions in step.",
)
def fmp_universe(context: AssetExecutionContext, warehouse: Warehouse, fmp: FMPResource) -> MaterializeResult:
    started = time.monotonic()
    client = fmp.get_client()
    calls_before = client.calls_made
    notes = Notes()
    source = "fmp"
    try:
        records = client.sp500_constituents()
        if not records:
            raise ValueError("FMP returned an empty constituent list")
    except (FMPPlanError, ValueError) as exc:
        source = "packaged list"
        context.log.warning(
            f"FMP sp500-constituent unavailable ({type(exc).__name__}: {str(exc)[:200]}); using the packaged "
            "S&P 500 list from pytickersymbols instead (no CIKs, sectors from its labels, may lag index changes)."
        )
        records = packaged_constituents()
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    frame = universe_frame(records, source, now, notes)
    if frame.empty:
        raise RuntimeError("the universe is empty; refusing to mark every symbol as removed")

    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        ensure_tables(cur)
        previous = {r[0] for r in cur.execute(f"SELECT SYMBOL FROM {UNIVERSE.qualified} WHERE IS_MEMBER").fetchall()}
        staged = load.stage(cur, UNIVERSE, frame)
        written = load.merge_staged(cur, [staged])
        # then flag who left the index (kept with their history; the raw assets stop refreshing them)
        cur.execute(
            f"UPDATE {UNIVERSE.qualified} SET IS_MEMBER = FALSE, "
            f"UPDATED_AT = '{now.isoformat(sep=' ')}'::TIMESTAMP_NTZ "
            f"WHERE IS_MEMBER AND SYMBOL NOT IN (SELECT SYMBOL FROM {staged.staging})"
        )

    members = set(frame["SYMBOL"])
    added, removed = sorted(members - previous), sorted(previous - members)
    existing = set(context.instance.get_dynamic_partitions(symbol_partitions.name))
    new_partitions = sorted(members - existing)
    if new_partitions:
        context.instance.add_dynamic_partitions(symbol_partitions.name, new_partitions)
    if removed:
        context.log.info(f"{len(removed)} symbol(s) left the index (kept, IS_MEMBER=false, no longer refreshed): "
                         f"{', '.join(removed[:20])}")
    for line in notes.lines():
        context.log.warning(line)
    seconds = time.monotonic() - started
    sectors = Counter(frame["SECTOR"].fillna("(none)"))
    return MaterializeResult(metadata={
        "source": source,
        "source_note": MetadataValue.md(
            "**Fallback:** FMP's `sp500-constituent` needs the Premium plan; this universe comes from the packaged "
            "pytickersymbols list." if source != "fmp" else "FMP `sp500-constituent`"),
        "members": len(members),
        "added": len(added),
        "removed": len(removed),
        "added_symbols": ", ".join(added[:50]) + (" ..." if len(added) > 50 else ""),
        "removed_symbols": ", ".join(removed[:50]),
        "new_partitions": len(new_partitions),
        "share_classes": ", ".join(f"{s}->{statement_symbol(s)}" for s in sorted(members)
                                   if statement_symbol(s) != s),
        "rows_written": written[UNIVERSE.name].rows,
        "api_calls": client.calls_made - calls_before,
        "seconds": round(seconds, 2),
        "sectors": MetadataValue.md("| sector | members |\n|---|---|\n" + "\n".join(
            f"| {k} | {v} |" for k, v in sorted(sectors.items()))),
        "warnings": MetadataValue.json(notes.counts()),
    })


@asset_check(asset=UNIVERSE_KEY, blocking=True, name="keys_not_null_and_unique",
             description="SYMBOL is never null and unique in FMP_RAW.UNIVERSE; at least one member.")
def universe_keys_check(warehouse: Warehouse) -> AssetCheckResult:
    with warehouse.get_connection() as conn:
        nulls, dups, members = conn.cursor().execute(
            f"SELECT COUNT_IF(SYMBOL IS NULL), COUNT(*) - COUNT(DISTINCT SYMBOL), COUNT_IF(IS_MEMBER) "
            f"FROM {UNIVERSE.qualified}"
        ).fetchone()
    return AssetCheckResult(
        passed=nulls == 0 and dups == 0 and members > 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"null_keys": int(nulls), "duplicate_keys": int(dups), "members": int(members)},
    )
