"""The derived layer follows the raw layer by declarative automation (no warehouse needed).

The daily refresh sensor (financial_assets/sensors.py) runs only the raw assets; TTM, ratios, metrics
and the analytics tables must then be requested for exactly the updated symbols, and a universe refresh
alone must not recompute them.
"""

from __future__ import annotations

import dagster as dg

from financial_assets.derived import derived_asset_checks, derived_assets
from financial_assets.derived.assets import (
    DIM_COMPANY_KEY,
    DIM_DATE_KEY,
    FACT_DAILY_PRICES_KEY,
    FACT_FINANCIALS_KEY,
    MARKET_METRICS_KEY,
    RATIOS_KEY,
    RAW_PRICES,
    RAW_PROFILES,
    RAW_STATEMENTS,
    RAW_UNIVERSE,
    TTM_KEY,
)
from financial_assets.partitions import symbol_partitions
from resources.warehouse import warehouse_from_env

SYMBOLS = ["AAA", "BBB", "FOX"]
PARTITIONED = [TTM_KEY, RATIOS_KEY, MARKET_METRICS_KEY, DIM_COMPANY_KEY, FACT_DAILY_PRICES_KEY, FACT_FINANCIALS_KEY]


def _requested(result) -> dict[str, set[str]]:
    out = {}
    for key in PARTITIONED:
        parts = set(result.get_requested_partitions(key))
        if parts:
            out[key.to_user_string()] = parts
    return out


def test_dependents_follow_the_raw_layer_by_automation():
    raw_specs = [dg.AssetSpec(k, partitions_def=symbol_partitions) for k in [*RAW_STATEMENTS, RAW_PRICES, RAW_PROFILES]]
    defs = dg.Definitions(
        assets=[*raw_specs, dg.AssetSpec(RAW_UNIVERSE), *derived_assets],
        asset_checks=derived_asset_checks,
        resources={"warehouse": warehouse_from_env()},
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("sp500_symbols", SYMBOLS)
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert result.total_requested == 0

        # a cold raw load of every symbol -> every derived asset for every symbol, in one evaluation
        instance.report_runless_asset_event(dg.AssetMaterialization(RAW_UNIVERSE))
        for key in [*RAW_STATEMENTS, RAW_PRICES, RAW_PROFILES]:
            for symbol in SYMBOLS:
                instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=symbol))
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert _requested(result) == {key.to_user_string(): set(SYMBOLS) for key in PARTITIONED}
        assert result.get_requested_partitions(DIM_DATE_KEY) == {None}

        # the requested runs happen
        for key in PARTITIONED:
            for symbol in SYMBOLS:
                instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=symbol))
        instance.report_runless_asset_event(dg.AssetMaterialization(DIM_DATE_KEY))
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert result.total_requested == 0

        # one new trading day for BBB -> only BBB's price-driven tables (TTM and FACT_FINANCIALS untouched)
        instance.report_runless_asset_event(dg.AssetMaterialization(RAW_PRICES, partition="BBB"))
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert _requested(result) == {
            "fmp_core/financial_ratios": {"BBB"},
            "fmp_core/market_metrics": {"BBB"},
            "analytics/dim_company": {"BBB"},
            "analytics/fact_daily_prices": {"BBB"},
        }
        for key in (RATIOS_KEY, MARKET_METRICS_KEY, DIM_COMPANY_KEY, FACT_DAILY_PRICES_KEY):
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition="BBB"))
        instance.report_runless_asset_event(dg.AssetMaterialization(DIM_DATE_KEY))

        # a universe refresh alone recomputes nothing
        instance.report_runless_asset_event(dg.AssetMaterialization(RAW_UNIVERSE))
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert result.total_requested == 0
