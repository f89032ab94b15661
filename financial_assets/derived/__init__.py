"""Derived (FMP_CORE) and analytics (ANALYTICS) layers, computed in the warehouse with SQL."""

from financial_assets.derived.assets import derived_assets
from financial_assets.derived.checks import derived_asset_checks

__all__ = ["derived_assets", "derived_asset_checks"]
