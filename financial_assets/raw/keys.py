"""Asset keys of the raw symbol assets and the FMP_RAW table each one fills."""

from dagster import AssetKey

from financial_assets.raw.schema import (
    BALANCE,
    CASH_FLOW,
    COMPANY_PROFILES,
    DAILY_PRICES,
    INCOME,
    Table,
)

PROFILES_KEY = AssetKey(["fmp_raw", "company_profiles"])
PRICES_KEY = AssetKey(["fmp_raw", "daily_prices"])
INCOME_KEY = AssetKey(["fmp_raw", "income_statements"])
BALANCE_KEY = AssetKey(["fmp_raw", "balance_sheets"])
CASH_FLOW_KEY = AssetKey(["fmp_raw", "cash_flow_statements"])
RAW_SYMBOL_KEYS = (PROFILES_KEY, PRICES_KEY, INCOME_KEY, BALANCE_KEY, CASH_FLOW_KEY)

KIND_KEYS = {INCOME.kind: INCOME_KEY, BALANCE.kind: BALANCE_KEY, CASH_FLOW.kind: CASH_FLOW_KEY}
TABLE_OF_KEY: dict[AssetKey, Table] = {
    PROFILES_KEY: COMPANY_PROFILES, PRICES_KEY: DAILY_PRICES, INCOME_KEY: INCOME.table,
    BALANCE_KEY: BALANCE.table, CASH_FLOW_KEY: CASH_FLOW.table,
}
