"""Derived (FMP_CORE) and analytics (ANALYTICS) assets: SQL in the warehouse, per symbol partition set.

Every partitioned asset reads ``context.partition_keys`` (a single-run backfill hands it a whole range),
maps the tickers to their statement symbols (UNIVERSE.STATEMENT_SYMBOL, e.g. GOOG -> GOOGL), and replaces
exactly the run's rows with one DELETE + one INSERT ... SELECT inside one transaction: a rerun, retry or
overlap leaves one row per key, and a failed run leaves the table as it was.
"""


import time
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    AutomationCondition,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from financial_assets import freshness
from financial_assets.derived.tables import (
    DIM_COMPANY,
    DIM_DATE,
    FACT_DAILY_PRICES,
    FACT_FINANCIALS,
    FINANCIAL_RATIOS,
    MARKET_METRICS,
    TTM_FINANCIALS,
    Table,
    render,
)
from financial_assets.partitions import symbol_partitions
from financial_assets.raw.keys import BALANCE_KEY as RAW_BALANCE
from financial_assets.raw.keys import CASH_FLOW_KEY as RAW_CASH_FLOW
from financial_assets.raw.keys import INCOME_KEY as RAW_INCOME
from financial_assets.raw.keys import PRICES_KEY as RAW_PRICES
from financial_assets.raw.keys import PROFILES_KEY as RAW_PROFILES
from financial_assets.raw.universe import UNIVERSE_KEY as RAW_UNIVERSE
from financial_assets.symbols import in_list, is_symbol
from resources.retry import network_retry_policy
from resources.warehouse import Warehouse, transaction

RAW_STATEMENTS = [RAW_INCOME, RAW_BALANCE, RAW_CASH_FLOW]

TTM_KEY = AssetKey(["fmp_core", "ttm_financials"])
RATIOS_KEY = AssetKey(["fmp_core", "financial_ratios"])
MARKET_METRICS_KEY = AssetKey(["fmp_core", "market_metrics"])
DIM_COMPANY_KEY = AssetKey(["analytics", "dim_company"])
DIM_DATE_KEY = AssetKey(["analytics", "dim_date"])
FACT_DAILY_PRICES_KEY = AssetKey(["analytics", "fact_daily_prices"])
FACT_FINANCIALS_KEY = AssetKey(["analytics", "fact_financials"])

TABLE_OF: dict[AssetKey, Table] = {
    TTM_KEY: TTM_FINANCIALS,
    RATIOS_KEY: FINANCIAL_RATIOS,
    MARKET_METRICS_KEY: MARKET_METRICS,
    DIM_COMPANY_KEY: DIM_COMPANY,
    DIM_DATE_KEY: DIM_DATE,
    FACT_DAILY_PRICES_KEY: FACT_DAILY_PRICES,
    FACT_FINANCIALS_KEY: FACT_FINANCIALS,
}


def ticker_map(cursor, tickers: list[str]) -> dict[str, str]:
    """ticker -> statement symbol; a ticker missing from the universe (or without one) serves itself."""
    if not tickers:
        return {}
    cursor.execute(f"SELECT SYMBOL, STATEMENT_SYMBOL FROM FMP_RAW.UNIVERSE WHERE SYMBOL IN {in_list(tickers)}")
    found = {symbol: statement for symbol, statement in cursor.fetchall() if statement}
    return {ticker: found.get(ticker, ticker) for ticker in tickers}


def ensure_table(cursor, table: Table) -> None:
    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {table.name.split('.')[0]}")
    cursor.execute(table.ddl())


def replace_rows(cursor, table: Table, mapping: dict[str, str] | None) -> tuple[int, int]:
    """Delete the run's keys and insert their recomputed rows, atomically. Returns (deleted, inserted)."""
    if table.scope == "ticker":
        where = f" WHERE SYMBOL IN {in_list(mapping)}"
    elif table.scope == "statement":
        where = f" WHERE SYMBOL IN {in_list(mapping.values())}"
    else:
        where = ""
    insert = render(table, ticker_map=mapping)
    with transaction(cursor):
        cursor.execute(f"DELETE FROM {table.name}{where}")
        deleted = cursor.rowcount or 0
        cursor.execute(insert)
        inserted = cursor.rowcount or 0
    return deleted, inserted


def materialize_table(context: AssetExecutionContext, warehouse: Warehouse, table: Table) -> MaterializeResult:
    started = time.monotonic()
    keys = sorted(set(context.partition_keys)) if table.scope else []
    tickers = [k for k in keys if is_symbol(k)]
    if len(tickers) < len(keys):
        context.log.warning(f"{len(keys) - len(tickers)} partition key(s) are not ticker symbols; skipped")
    with warehouse.get_connection() as conn:
        cursor = conn.cursor()
        ensure_table(cursor, table)
        mapping = ticker_map(cursor, tickers) if table.scope else None
        if table.scope and not mapping:
            deleted = inserted = 0
        else:
            deleted, inserted = replace_rows(cursor, table, mapping)
    seconds = time.monotonic() - started
    metadata: dict[str, Any] = {
        "table": table.name,
        "rows_written": MetadataValue.int(inserted),
        "rows_replaced": MetadataValue.int(deleted),
        "seconds": MetadataValue.float(round(seconds, 3)),
        "rows_per_second": MetadataValue.float(round(inserted / seconds, 1) if seconds > 0 else 0.0),
    }
    if table.scope:
        metadata["symbols"] = MetadataValue.int(len(tickers))
        if table.scope == "statement":
            metadata["statement_symbols"] = MetadataValue.int(len(set(mapping.values())))
    context.log.info(f"{table.name}: {inserted} rows for {len(tickers) or 'all'} symbols in {seconds:.2f}s")
    return MaterializeResult(metadata=metadata)


# Dependents follow the raw layer by declarative automation (the daily refresh sensor runs only the raw
# assets). A universe refresh alone does not recompute everything: membership changes reach these tables
# with the next price/statement update.
_EAGER = AutomationCondition.eager().ignore(AssetSelection.assets(RAW_UNIVERSE))

_PARTITIONED = dict(
    partitions_def=symbol_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool="snowflake",
    retry_policy=network_retry_policy,
    freshness_policy=freshness.daily,
    kinds={"snowflake", "sql"},
    automation_condition=_EAGER,
)


@asset(key=TTM_KEY, deps=[*RAW_STATEMENTS, RAW_UNIVERSE], group_name="fmp_core", **_PARTITIONED,
       description="Trailing-twelve-month figures per statement symbol and fiscal quarter end (ttm.sql).")
def ttm_financials(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    return materialize_table(context, warehouse, TTM_FINANCIALS)


@asset(key=RATIOS_KEY, deps=[TTM_KEY, *RAW_STATEMENTS, RAW_PRICES, RAW_UNIVERSE], group_name="fmp_core",
       **_PARTITIONED,
       description="FinanceToolkit financial ratios per ticker on ANNUAL, QUARTERLY and TTM bases (ratios.sql).")
def financial_ratios(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    return materialize_table(context, warehouse, FINANCIAL_RATIOS)


@asset(key=MARKET_METRICS_KEY, deps=[RAW_PRICES, RAW_UNIVERSE, RAW_PROFILES, TTM_KEY], group_name="fmp_core",
       **_PARTITIONED,
       description="Market cap, EV, returns, volatility, 52-week range, volume and beta per ticker "
                   "as of its latest price (market_metrics.sql).")
def market_metrics(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    return materialize_table(context, warehouse, MARKET_METRICS)


@asset(key=DIM_COMPANY_KEY, deps=[RAW_UNIVERSE, RAW_PROFILES, MARKET_METRICS_KEY], group_name="analytics",
       **_PARTITIONED, description="One row per ticker: identity, classification, membership, size.")
def dim_company(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    return materialize_table(context, warehouse, DIM_COMPANY)


@asset(key=DIM_DATE_KEY, deps=[RAW_PRICES], group_name="analytics", pool="snowflake",
       retry_policy=network_retry_policy, freshness_policy=freshness.daily, kinds={"snowflake", "sql"},
       automation_condition=_EAGER,
       description="Calendar 2000-2035 with ISO week fields and a trading-day flag (unpartitioned).")
def dim_date(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    return materialize_table(context, warehouse, DIM_DATE)


@asset(key=FACT_DAILY_PRICES_KEY, deps=[RAW_PRICES], group_name="analytics", **_PARTITIONED,
       description="Daily prices with date key, daily return and dollar volume; CLUSTER BY (SYMBOL, DATE).")
def fact_daily_prices(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    return materialize_table(context, warehouse, FACT_DAILY_PRICES)


@asset(key=FACT_FINANCIALS_KEY, deps=[*RAW_STATEMENTS, TTM_KEY], group_name="analytics", **_PARTITIONED,
       description="Headline statement figures per company, basis (ANNUAL/QUARTERLY/TTM) and period end; "
                   "CLUSTER BY (SYMBOL, PERIOD_END_DATE).")
def fact_financials(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    return materialize_table(context, warehouse, FACT_FINANCIALS)


derived_assets = [
    ttm_financials,
    financial_ratios,
    market_metrics,
    dim_company,
    dim_date,
    fact_daily_prices,
    fact_financials,
]
