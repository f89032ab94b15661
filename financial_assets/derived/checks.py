"""Blocking asset checks of the derived layer: a failure stops every dependent asset in the run."""


from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, asset_check

from financial_assets.derived.assets import (
    MARKET_METRICS_KEY,
    RATIOS_KEY,
    TABLE_OF,
    TTM_KEY,
)
from financial_assets.derived.columns import FLOW_COLUMNS, MARKET_METRIC_COLUMNS, RATIO_COLUMNS, RATIO_INPUT_COLUMNS
from financial_assets.derived.tables import Table
from resources.warehouse import Warehouse


def key_check_sql(table: Table) -> str:
    keys = ", ".join(table.key)
    any_null = " OR ".join(f"{k} IS NULL" for k in table.key)
    return (
        f"SELECT COUNT_IF({any_null}), "
        f"(SELECT COUNT(*) FROM (SELECT {keys} FROM {table.name} GROUP BY {keys} HAVING COUNT(*) > 1)), "
        f"COUNT(*) FROM {table.name}"
    )


# a non-NULL TTM flow must come from exactly four distinct fiscal quarters (four period ends, four labels
# Q1..Q4) of the raw income statement, covering 330-380 days: re-derived from FMP_RAW (with the same
# one-row-per-period-end rule as statements.sql: the latest filing wins), not read from the TTM row
TTM_FOUR_QUARTERS_SQL = f"""
WITH t AS (
    SELECT SYMBOL, AS_OF_PERIOD_END_DATE, FIRST_PERIOD_END_DATE
    FROM FMP_CORE.TTM_FINANCIALS
    WHERE {" OR ".join(f"{c} IS NOT NULL" for c in FLOW_COLUMNS)}
),
quarters AS (
    SELECT SYMBOL, PERIOD_END_DATE, PERIOD
    FROM FMP_RAW.INCOME_STATEMENTS
    WHERE PERIOD IN ('Q1', 'Q2', 'Q3', 'Q4') AND SYMBOL IN (SELECT SYMBOL FROM t)
    QUALIFY ROW_NUMBER() OVER (
        PARTITION BY SYMBOL, PERIOD_END_DATE
        ORDER BY FILING_DATE DESC NULLS LAST, ACCEPTED_DATE DESC NULLS LAST, FETCHED_AT DESC NULLS LAST, PERIOD DESC
    ) = 1
),
src AS (
    SELECT t.SYMBOL, t.AS_OF_PERIOD_END_DATE, t.FIRST_PERIOD_END_DATE,
           COUNT(DISTINCT q.PERIOD_END_DATE) AS N_DATES, COUNT(DISTINCT q.PERIOD) AS N_LABELS
    FROM t
    LEFT JOIN quarters q
        ON q.SYMBOL = t.SYMBOL AND q.PERIOD_END_DATE BETWEEN t.FIRST_PERIOD_END_DATE AND t.AS_OF_PERIOD_END_DATE
    GROUP BY t.SYMBOL, t.AS_OF_PERIOD_END_DATE, t.FIRST_PERIOD_END_DATE
)
SELECT
    COUNT(*),
    COUNT_IF(
        FIRST_PERIOD_END_DATE IS NULL OR N_DATES <> 4 OR N_LABELS <> 4
        OR NOT (DATEDIFF(day, DATEADD(month, -3, FIRST_PERIOD_END_DATE)::DATE, AS_OF_PERIOD_END_DATE)
                BETWEEN 330 AND 380)
    )
FROM src
"""


def finite_check_sql(table_name: str, columns) -> str:
    bad = " OR ".join(f"{c} IN ('inf'::FLOAT, '-inf'::FLOAT, 'NaN'::FLOAT)" for c in columns)
    return f"SELECT COUNT_IF({bad}), COUNT(*) FROM {table_name}"


def _make_key_check(asset_key: AssetKey, table: Table):
    @asset_check(asset=asset_key, name="keys_not_null_and_unique", blocking=True,
                 description=f"{', '.join(table.key)} never NULL and unique in {table.name}.")
    def _check(warehouse: Warehouse) -> AssetCheckResult:
        with warehouse.get_connection() as conn:
            nulls, dups, rows = conn.cursor().execute(key_check_sql(table)).fetchone()
        return AssetCheckResult(
            passed=(nulls or 0) == 0 and (dups or 0) == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={"null_keys": int(nulls or 0), "duplicate_keys": int(dups or 0), "rows": int(rows or 0)},
        )

    return _check


@asset_check(asset=TTM_KEY, name="ttm_only_from_four_quarters", blocking=True,
             description="Every non-NULL TTM flow row has exactly 4 distinct source quarters spanning 330-380 days.")
def ttm_only_from_four_quarters(warehouse: Warehouse) -> AssetCheckResult:
    with warehouse.get_connection() as conn:
        checked, broken = conn.cursor().execute(TTM_FOUR_QUARTERS_SQL).fetchone()
    return AssetCheckResult(
        passed=(broken or 0) == 0,
        metadata={"ttm_rows_checked": int(checked or 0), "rows_not_from_four_quarters": int(broken or 0)},
    )


@asset_check(asset=RATIOS_KEY, name="ratios_finite", blocking=True,
             description="No ratio or ratio input is +/-infinity or NaN (divisions are guarded to NULL).")
def ratios_finite(warehouse: Warehouse) -> AssetCheckResult:
    with warehouse.get_connection() as conn:
        bad, rows = conn.cursor().execute(
            finite_check_sql("FMP_CORE.FINANCIAL_RATIOS", RATIO_COLUMNS + RATIO_INPUT_COLUMNS)
        ).fetchone()
    return AssetCheckResult(passed=(bad or 0) == 0, metadata={"non_finite_rows": int(bad or 0), "rows": int(rows or 0)})


@asset_check(asset=MARKET_METRICS_KEY, name="metrics_finite", blocking=True,
             description="No market metric is +/-infinity or NaN.")
def metrics_finite(warehouse: Warehouse) -> AssetCheckResult:
    with warehouse.get_connection() as conn:
        bad, rows = conn.cursor().execute(
            finite_check_sql("FMP_CORE.MARKET_METRICS", MARKET_METRIC_COLUMNS)
        ).fetchone()
    return AssetCheckResult(passed=(bad or 0) == 0, metadata={"non_finite_rows": int(bad or 0), "rows": int(rows or 0)})


derived_asset_checks = [
    *[_make_key_check(key, table) for key, table in TABLE_OF.items()],
    ttm_only_from_four_quarters,
    ratios_finite,
    metrics_finite,
]
