"""The conflict_assets code location: conflict detection in the warehouse, the PostgreSQL conflict update."""

from __future__ import annotations

from dagster import AssetSelection, AutomationConditionSensorDefinition, Definitions

from conflict_assets.assets import conflictvisitmaps, visit_conflicts
from conflict_assets.checks import conflict_pairs_complete, visits_without_ssn
from conflict_assets.sensors import conflict_sensors
from resources.settings import sensors_default_status
from resources.shared import shared_resources

# declared here so it runs by default (the implicit default automation sensor starts stopped)
conflict_automation = AutomationConditionSensorDefinition(
    "conflict_automation",
    target=AssetSelection.assets(conflictvisitmaps),
    default_status=sensors_default_status(),
    minimum_interval_seconds=60,
)

defs = Definitions(
    assets=[visit_conflicts, conflictvisitmaps],
    asset_checks=[conflict_pairs_complete, visits_without_ssn],
    sensors=[*conflict_sensors, conflict_automation],
    resources=shared_resources(),
)


def prepare_embedded_run(scale: int = 1000) -> None:
    """``make run`` on the embedded warehouse: generate sample visit data the first time."""
    from resources.warehouse import warehouse_from_env

    warehouse = warehouse_from_env()
    if not warehouse.emulated:
        return
    with warehouse.get_connection() as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES "
                       "WHERE TABLE_SCHEMA = 'VISITS' AND TABLE_NAME = 'VISITS'")
        if cursor.fetchone()[0]:
            return
        from conflict_assets.generate import generate

        print(f"conflict_assets: generating sample visit data ({scale} caregivers) in the embedded warehouse")
        generate(cursor, scale)
