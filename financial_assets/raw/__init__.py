"""Raw layer: the S&P 500 universe and FMP data per symbol, loaded into the FMP_RAW schema.

Tables (schema FMP_RAW): UNIVERSE, COMPANY_PROFILES, DAILY_PRICES, INCOME_STATEMENTS, BALANCE_SHEETS,
CASH_FLOW_STATEMENTS (contract in ``schema.py``), plus FETCH_LOG and REJECTED_ROWS (bookkeeping).
"""

from financial_assets.raw.assets import fmp_raw_symbols
from financial_assets.raw.keys import (
    BALANCE_KEY,
    CASH_FLOW_KEY,
    INCOME_KEY,
    PRICES_KEY,
    PROFILES_KEY,
)
from financial_assets.raw.plan import RawFmpConfig
from financial_assets.raw.universe import (
    UNIVERSE_KEY,
    fmp_universe,
    universe_keys_check,
)

raw_assets = [fmp_universe, fmp_raw_symbols]
raw_asset_checks = [universe_keys_check]

# asset keys for the derived layer's deps
RAW_ASSET_KEYS = {
    "universe": UNIVERSE_KEY,
    "company_profiles": PROFILES_KEY,
    "daily_prices": PRICES_KEY,
    "income_statements": INCOME_KEY,
    "balance_sheets": BALANCE_KEY,
    "cash_flow_statements": CASH_FLOW_KEY,
}

__all__ = ["RAW_ASSET_KEYS", "RawFmpConfig", "raw_asset_checks", "raw_assets"]
