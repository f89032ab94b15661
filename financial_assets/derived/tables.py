"""The derived tables: layout (DDL), natural key and clustering, and the SQL that fills them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from financial_assets.derived.columns import (
    AVERAGED_BALANCE_ITEMS,
    BALANCE_ITEMS,
    CASH_FLOW_FLOWS,
    FLOW_COLUMNS,
    INCOME_FLOWS,
    MARKET_METRIC_COLUMNS,
    RATIO_COLUMNS,
    RATIO_INPUT_COLUMNS,
    SHARE_ITEMS,
)
from financial_assets.symbols import quote

SQL_DIR = Path(__file__).parent
CORE_SCHEMA = "FMP_CORE"
ANALYTICS_SCHEMA = "ANALYTICS"


@dataclass(frozen=True)
class Table:
    name: str  # SCHEMA.TABLE
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    sql_file: str
    # which run symbols the table is keyed by: "ticker", "statement" (company) or None (whole table)
    scope: str | None
    cluster_by: tuple[str, ...] = field(default=())

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def ddl(self) -> str:
        cols = ",\n    ".join(
            f"{name} {kind}{' NOT NULL' if name in self.key else ''}" for name, kind in self.columns
        )
        cluster = f" CLUSTER BY ({', '.join(self.cluster_by)})" if self.cluster_by else ""
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {cols}\n){cluster}"


def _floats(names) -> tuple[tuple[str, str], ...]:
    return tuple((name, "FLOAT") for name in names)


TTM_FINANCIALS = Table(
    name=f"{CORE_SCHEMA}.TTM_FINANCIALS",
    columns=(
        ("SYMBOL", "VARCHAR"),
        ("AS_OF_PERIOD_END_DATE", "DATE"),
        ("AS_OF_PERIOD", "VARCHAR"),
        ("FISCAL_YEAR", "INT"),
        ("REPORTED_CURRENCY", "VARCHAR"),
        ("FILING_DATE", "DATE"),
        ("FIRST_PERIOD_END_DATE", "DATE"),
        ("SOURCE_QUARTERS", "INT"),
        ("WINDOW_SPAN_DAYS", "INT"),
        ("IS_TTM_VALID", "BOOLEAN"),
        *_floats(FLOW_COLUMNS),
        *_floats(SHARE_ITEMS),
        *_floats(BALANCE_ITEMS),
        *_floats(f"AVG_{name}" for name in AVERAGED_BALANCE_ITEMS),
        ("COMPUTED_AT", "TIMESTAMP_NTZ"),
    ),
    key=("SYMBOL", "AS_OF_PERIOD_END_DATE"),
    sql_file="ttm.sql",
    scope="statement",
)

FINANCIAL_RATIOS = Table(
    name=f"{CORE_SCHEMA}.FINANCIAL_RATIOS",
    columns=(
        ("SYMBOL", "VARCHAR"),
        ("STATEMENT_SYMBOL", "VARCHAR"),
        ("BASIS", "VARCHAR"),
        ("PERIOD_END_DATE", "DATE"),
        ("PERIOD", "VARCHAR"),
        ("FISCAL_YEAR", "INT"),
        ("REPORTED_CURRENCY", "VARCHAR"),
        ("PRICE_DATE", "DATE"),
        *_floats(RATIO_COLUMNS),
        *_floats(RATIO_INPUT_COLUMNS),
        ("COMPUTED_AT", "TIMESTAMP_NTZ"),
    ),
    key=("SYMBOL", "BASIS", "PERIOD_END_DATE"),
    sql_file="ratios.sql",
    scope="ticker",
)

MARKET_METRICS = Table(
    name=f"{CORE_SCHEMA}.MARKET_METRICS",
    columns=(
        ("SYMBOL", "VARCHAR"),
        ("AS_OF_DATE", "DATE"),
        *_floats(MARKET_METRIC_COLUMNS[:3]),
        ("MARKET_CAP_SOURCE", "VARCHAR"),
        *_floats(MARKET_METRIC_COLUMNS[3:4]),
        ("FUNDAMENTALS_PERIOD_END_DATE", "DATE"),
        *_floats(MARKET_METRIC_COLUMNS[4:]),
        ("BETA_OBSERVATIONS", "INT"),
        ("PRICE_DAYS", "INT"),
        ("COMPUTED_AT", "TIMESTAMP_NTZ"),
    ),
    key=("SYMBOL",),
    sql_file="market_metrics.sql",
    scope="ticker",
)

DIM_COMPANY = Table(
    name=f"{ANALYTICS_SCHEMA}.DIM_COMPANY",
    columns=(
        ("SYMBOL", "VARCHAR"), ("FMP_SYMBOL", "VARCHAR"), ("STATEMENT_SYMBOL", "VARCHAR"),
        ("COMPANY_NAME", "VARCHAR"), ("SECTOR", "VARCHAR"), ("SUB_SECTOR", "VARCHAR"), ("INDUSTRY", "VARCHAR"),
        ("CIK", "VARCHAR"), ("EXCHANGE", "VARCHAR"), ("CURRENCY", "VARCHAR"), ("COUNTRY", "VARCHAR"),
        ("IPO_DATE", "DATE"), ("IS_MEMBER", "BOOLEAN"), ("IS_ACTIVELY_TRADING", "BOOLEAN"),
        ("MARKET_AS_OF_DATE", "DATE"), ("LAST_CLOSE", "FLOAT"), ("MARKET_CAP", "FLOAT"),
        ("ENTERPRISE_VALUE", "FLOAT"), ("BETA", "FLOAT"), ("FMP_BETA", "FLOAT"), ("UPDATED_AT", "TIMESTAMP_NTZ"),
    ),
    key=("SYMBOL",),
    sql_file="analytics/dim_company.sql",
    scope="ticker",
)

DIM_DATE = Table(
    name=f"{ANALYTICS_SCHEMA}.DIM_DATE",
    columns=(
        ("DATE_KEY", "INT"), ("DATE", "DATE"), ("YEAR", "INT"), ("QUARTER", "INT"), ("MONTH", "INT"),
        ("DAY_OF_MONTH", "INT"), ("DAY_OF_WEEK_ISO", "INT"), ("WEEK_OF_YEAR_ISO", "INT"),
        ("YEAR_OF_WEEK_ISO", "INT"), ("DAY_NAME", "VARCHAR"), ("MONTH_NAME", "VARCHAR"), ("IS_WEEKEND", "BOOLEAN"),
        ("IS_MONTH_END", "BOOLEAN"), ("IS_QUARTER_END", "BOOLEAN"), ("IS_YEAR_END", "BOOLEAN"),
        ("IS_TRADING_DAY", "BOOLEAN"),
    ),
    key=("DATE_KEY",),
    sql_file="analytics/dim_date.sql",
    scope=None,
    cluster_by=("DATE",),
)

FACT_DAILY_PRICES = Table(
    name=f"{ANALYTICS_SCHEMA}.FACT_DAILY_PRICES",
    columns=(
        ("SYMBOL", "VARCHAR"), ("DATE", "DATE"), ("DATE_KEY", "INT"), ("OPEN", "FLOAT"), ("HIGH", "FLOAT"),
        ("LOW", "FLOAT"), ("CLOSE", "FLOAT"), ("VOLUME", "NUMBER(38,0)"), ("VWAP", "FLOAT"), ("CHANGE", "FLOAT"),
        ("CHANGE_PERCENT", "FLOAT"), ("DAILY_RETURN", "FLOAT"), ("DOLLAR_VOLUME", "FLOAT"),
        ("LOADED_AT", "TIMESTAMP_NTZ"),
    ),
    key=("SYMBOL", "DATE"),
    sql_file="analytics/fact_daily_prices.sql",
    scope="ticker",
    cluster_by=("SYMBOL", "DATE"),
)

FACT_FINANCIALS = Table(
    name=f"{ANALYTICS_SCHEMA}.FACT_FINANCIALS",
    columns=(
        ("SYMBOL", "VARCHAR"), ("BASIS", "VARCHAR"), ("PERIOD_END_DATE", "DATE"), ("PERIOD_END_DATE_KEY", "INT"),
        ("PERIOD", "VARCHAR"), ("FISCAL_YEAR", "INT"), ("CALENDAR_YEAR", "INT"), ("CALENDAR_QUARTER_YEAR", "INT"),
        ("CALENDAR_QUARTER", "INT"), ("REPORTED_CURRENCY", "VARCHAR"), ("FILING_DATE", "DATE"),
        ("IS_COMPLETE", "BOOLEAN"),
        *_floats((
            "REVENUE", "GROSS_PROFIT", "OPERATING_INCOME", "EBITDA", "NET_INCOME", "EPS", "EPS_DILUTED",
            "WEIGHTED_AVERAGE_SHS_OUT", "WEIGHTED_AVERAGE_SHS_OUT_DIL", "OPERATING_CASH_FLOW",
            "CAPITAL_EXPENDITURE", "FREE_CASH_FLOW", "NET_DIVIDENDS_PAID", "TOTAL_ASSETS", "TOTAL_LIABILITIES",
            "TOTAL_EQUITY", "CASH_AND_CASH_EQUIVALENTS", "TOTAL_DEBT", "NET_DEBT",
        )),
        ("COMPUTED_AT", "TIMESTAMP_NTZ"),
    ),
    key=("SYMBOL", "BASIS", "PERIOD_END_DATE"),
    sql_file="analytics/fact_financials.sql",
    scope="statement",
    cluster_by=("SYMBOL", "PERIOD_END_DATE"),
)

ALL_TABLES = (TTM_FINANCIALS, FINANCIAL_RATIOS, MARKET_METRICS, DIM_COMPANY, DIM_DATE, FACT_DAILY_PRICES,
              FACT_FINANCIALS)


# ---------------------------------------------------------------- SQL templates


def _statement_columns() -> str:
    income = [f"i.{name}" for name in INCOME_FLOWS + SHARE_ITEMS]
    cash = [f"c.{raw} AS {name}" for raw, name in CASH_FLOW_FLOWS.items()]
    balance = [f"b.{name}" for name in BALANCE_ITEMS]
    return ",\n        ".join(income + cash + balance)


def _ttm_window_aggregates() -> str:
    frame = "OVER (PARTITION BY SYMBOL ORDER BY PERIOD_END_DATE ROWS BETWEEN 3 PRECEDING AND CURRENT ROW)"
    parts = []
    for name in FLOW_COLUMNS:
        parts += [f"SUM({name}) {frame} AS {name}__SUM", f"COUNT({name}) {frame} AS {name}__N"]
    for name in AVERAGED_BALANCE_ITEMS:
        parts += [f"AVG({name}) {frame} AS {name}__AVG", f"COUNT({name}) {frame} AS {name}__AVGN"]
    return ",\n        ".join(parts)


def _ttm_select_columns() -> str:
    parts = [f"IFF(IS_TTM_VALID AND {name}__N = 4, {name}__SUM, NULL) AS {name}" for name in FLOW_COLUMNS]
    parts += list(SHARE_ITEMS) + list(BALANCE_ITEMS)
    parts += [
        f"IFF(IS_TTM_VALID AND {name}__AVGN = 4, {name}__AVG, NULL) AS AVG_{name}" for name in AVERAGED_BALANCE_ITEMS
    ]
    return ",\n    ".join(parts)


def render(table: Table, symbols: list[str] | None = None, ticker_map: dict[str, str] | None = None) -> str:
    """The INSERT ... SELECT for ``table``, for the run's tickers (``ticker_map``: ticker -> statement symbol)."""
    text = (SQL_DIR / table.sql_file).read_text()
    ticker_map = ticker_map or {}
    statement_symbols = sorted(set(ticker_map.values()))
    parts = {
        "insert_columns": ", ".join(table.column_names),
        "statement_columns": _statement_columns(),
        "window_aggregates": _ttm_window_aggregates(),
        "select_columns": _ttm_select_columns(),
        "ticker_values": ", ".join(f"({quote(t)}, {quote(s)})" for t, s in sorted(ticker_map.items())),
        "symbols": ", ".join(quote(t) for t in sorted(ticker_map)),
        "statement_symbols": ", ".join(quote(s) for s in statement_symbols),
    }
    if "{{statements}}" in text:
        text = text.replace("{{statements}}", (SQL_DIR / "statements.sql").read_text())
    for name, value in parts.items():
        text = text.replace("{{" + name + "}}", value)
    assert "{{" not in text, f"unrendered placeholder in {table.sql_file}"
    return text
