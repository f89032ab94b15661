"""The FMP_RAW tables: column names and DDL from FMP's stable field lists (resources/fmp_fields.py).

Statement tables get one FLOAT column per numeric FMP field, named camelCase -> UPPER_SNAKE, plus
the full record as VARIANT (PAYLOAD) so a renamed or new field loses nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from resources.fmp_fields import BALANCE_FIELDS, CASH_FLOW_FIELDS, INCOME_FIELDS

SCHEMA = "FMP_RAW"


def column_name(field: str) -> str:
    """FMP camelCase field -> warehouse column (revenue -> REVENUE, epsDiluted -> EPS_DILUTED)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", field).upper()


# v3 names that may still arrive (FMP_SPEC §3.4-3.6): mapped onto the stable field when it is absent
LEGACY_ALIASES = {
    "income": {"epsdiluted": "epsDiluted"},
    "balance": {"othertotalStockholdersEquity": "otherTotalStockholdersEquity"},
    "cashflow": {
        "otherInvestingActivites": "otherInvestingActivities",
        "netCashUsedForInvestingActivites": "netCashProvidedByInvestingActivities",
        "otherFinancingActivites": "otherFinancingActivities",
        "netCashUsedProvidedByFinancingActivities": "netCashProvidedByFinancingActivities",
        "commonStockIssued": "commonStockIssuance",
        "dividendsPaid": "netDividendsPaid",
    },
}
HEADER_ALIASES = {"fillingDate": "filingDate", "calendarYear": "fiscalYear"}


@dataclass(frozen=True)
class Table:
    name: str  # unqualified, e.g. DAILY_PRICES
    columns: tuple[tuple[str, str], ...]  # (column, type)
    key: tuple[str, ...]
    order_by: str  # which duplicate of a natural key wins (first row of this ordering)

    @property
    def qualified(self) -> str:
        return f"{SCHEMA}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def ddl(self) -> str:
        cols = ",\n  ".join(f"{c} {t}" for c, t in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.qualified} (\n  {cols}\n)"


@dataclass(frozen=True)
class StatementKind:
    kind: str  # FMP client kind: income | balance | cashflow
    table: Table
    fields: tuple[str, ...]


def _statement_table(name: str, fields: tuple[str, ...]) -> Table:
    columns = (
        ("SYMBOL", "VARCHAR NOT NULL"),
        ("PERIOD_END_DATE", "DATE NOT NULL"),
        ("PERIOD", "VARCHAR NOT NULL"),
        ("FISCAL_YEAR", "INT"),
        ("REPORTED_CURRENCY", "VARCHAR"),
        ("CIK", "VARCHAR"),
        ("FILING_DATE", "DATE"),
        ("ACCEPTED_DATE", "TIMESTAMP_NTZ"),
        *((column_name(f), "FLOAT") for f in fields),
        ("PAYLOAD", "VARIANT"),
        ("FETCHED_AT", "TIMESTAMP_NTZ"),
    )
    return Table(name, columns, ("SYMBOL", "PERIOD_END_DATE", "PERIOD"),
                 "ACCEPTED_DATE DESC NULLS LAST, FETCHED_AT DESC NULLS LAST")


UNIVERSE = Table(
    "UNIVERSE",
    (
        ("SYMBOL", "VARCHAR NOT NULL"),
        ("FMP_SYMBOL", "VARCHAR"),
        ("COMPANY_NAME", "VARCHAR"),
        ("SECTOR", "VARCHAR"),
        ("SUB_SECTOR", "VARCHAR"),
        ("CIK", "VARCHAR"),
        ("STATEMENT_SYMBOL", "VARCHAR"),
        ("IS_MEMBER", "BOOLEAN"),
        ("SOURCE", "VARCHAR"),
        ("UPDATED_AT", "TIMESTAMP_NTZ"),
    ),
    ("SYMBOL",),
    "UPDATED_AT DESC NULLS LAST",
)

COMPANY_PROFILES = Table(
    "COMPANY_PROFILES",
    (
        ("SYMBOL", "VARCHAR NOT NULL"),
        ("COMPANY_NAME", "VARCHAR"),
        ("CIK", "VARCHAR"),
        ("SECTOR", "VARCHAR"),
        ("INDUSTRY", "VARCHAR"),
        ("EXCHANGE", "VARCHAR"),
        ("CURRENCY", "VARCHAR"),
        ("COUNTRY", "VARCHAR"),
        ("IPO_DATE", "DATE"),
        ("BETA", "FLOAT"),
        ("PRICE", "FLOAT"),
        ("MARKET_CAP", "FLOAT"),
        ("LAST_DIVIDEND", "FLOAT"),
        ("AVERAGE_VOLUME", "FLOAT"),
        ("IS_ACTIVELY_TRADING", "BOOLEAN"),
        ("PAYLOAD", "VARIANT"),
        ("FETCHED_AT", "TIMESTAMP_NTZ"),
    ),
    ("SYMBOL",),
    "FETCHED_AT DESC NULLS LAST",
)

DAILY_PRICES = Table(
    "DAILY_PRICES",
    (
        ("SYMBOL", "VARCHAR NOT NULL"),
        ("DATE", "DATE NOT NULL"),
        ("OPEN", "FLOAT"),
        ("HIGH", "FLOAT"),
        ("LOW", "FLOAT"),
        ("CLOSE", "FLOAT"),
        ("VOLUME", "NUMBER(38,0)"),
        ("CHANGE", "FLOAT"),
        ("CHANGE_PERCENT", "FLOAT"),
        ("VWAP", "FLOAT"),
        ("PAYLOAD", "VARIANT"),
        ("LOADED_AT", "TIMESTAMP_NTZ"),
    ),
    ("SYMBOL", "DATE"),
    "LOADED_AT DESC NULLS LAST",
)

INCOME = StatementKind("income", _statement_table("INCOME_STATEMENTS", INCOME_FIELDS), INCOME_FIELDS)
BALANCE = StatementKind("balance", _statement_table("BALANCE_SHEETS", BALANCE_FIELDS), BALANCE_FIELDS)
CASH_FLOW = StatementKind("cashflow", _statement_table("CASH_FLOW_STATEMENTS", CASH_FLOW_FIELDS), CASH_FLOW_FIELDS)
STATEMENT_KINDS = (INCOME, BALANCE, CASH_FLOW)

# Bookkeeping: when each (dataset, symbol) was last asked of FMP and what came back. It lets a
# rerun skip symbols checked recently, including unknown ones that have no data rows to look at.
FETCH_LOG = Table(
    "FETCH_LOG",
    (
        ("DATASET", "VARCHAR NOT NULL"),
        ("SYMBOL", "VARCHAR NOT NULL"),
        ("CHECKED_AT", "TIMESTAMP_NTZ"),
        ("STATUS", "VARCHAR"),
        ("DETAIL", "VARCHAR"),
    ),
    ("DATASET", "SYMBOL"),
    "CHECKED_AT DESC NULLS LAST",
)

# Records that cannot be keyed (no date, no period...) are kept here, never dropped silently.
REJECTED_ROWS = Table(
    "REJECTED_ROWS",
    (
        ("DATASET", "VARCHAR"),
        ("SYMBOL", "VARCHAR"),
        ("REASON", "VARCHAR"),
        ("PAYLOAD", "VARIANT"),
        ("FETCHED_AT", "TIMESTAMP_NTZ"),
    ),
    (),
    "FETCHED_AT DESC",
)

ALL_TABLES = (UNIVERSE, COMPANY_PROFILES, DAILY_PRICES, *(k.table for k in STATEMENT_KINDS), FETCH_LOG, REJECTED_ROWS)


def _existing_columns(cursor) -> dict[str, set[str]]:
    existing: dict[str, set[str]] = {}
    for table_name, column in cursor.execute(
        "SELECT TABLE_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS "
        f"WHERE TABLE_SCHEMA = '{SCHEMA}'"
    ).fetchall():
        existing.setdefault(str(table_name).upper(), set()).add(str(column).upper())
    return existing


def ensure_tables(cursor) -> list[str]:
    """Create the FMP_RAW schema and tables if they do not exist, and add any column the code now
    knows but an existing table lacks (a field list grown in a later release). Idempotent; returns
    the columns added. When everything exists this is one query (a statement is a round trip)."""
    existing = _existing_columns(cursor)
    if all(set(t.column_names) <= existing.get(t.name, set()) for t in ALL_TABLES):
        return []
    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for table in ALL_TABLES:
        if table.name not in existing:
            cursor.execute(table.ddl())
    added = []
    for table in ALL_TABLES:
        have = existing.get(table.name)
        if not have:
            continue
        for column, column_type in table.columns:
            if column not in have:
                cursor.execute(f"ALTER TABLE {table.qualified} ADD COLUMN {column} "
                               f"{column_type.replace(' NOT NULL', '')}")
                added.append(f"{table.name}.{column}")
    return added


def ddl_script() -> str:
    """All DDL as one script (for docs and the README)."""
    return ";\n\n".join([f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}", *(t.ddl() for t in ALL_TABLES)]) + ";\n"
