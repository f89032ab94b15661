"""The financial_assets code location: the S&P 500 universe, the raw FMP layer, derived and analytics tables."""

from dagster import AssetSelection, AutomationConditionSensorDefinition, Definitions

from financial_assets.derived import derived_asset_checks, derived_assets
from financial_assets.raw import raw_asset_checks, raw_assets
from financial_assets.sensors import financial_sensors
from resources.settings import sensors_default_status
from resources.shared import shared_resources

# Dependents follow their inputs by declarative automation; declared here so it runs by default
# (the implicit default automation sensor starts stopped).
financial_automation = AutomationConditionSensorDefinition(
    "financial_automation",
    target=AssetSelection.assets(*derived_assets),
    default_status=sensors_default_status(),
    minimum_interval_seconds=60,
)

defs = Definitions(
    assets=[*raw_assets, *derived_assets],
    asset_checks=[*raw_asset_checks, *derived_asset_checks],
    sensors=[*financial_sensors, financial_automation],
    resources=shared_resources(),
)
