"""The two partitioned assets: conflict detection in the warehouse, and the PostgreSQL conflict update.

Both read ``context.partition_keys``, so a backfill run over a range of prefixes is one piece of work.
Metadata carries counts, seconds and rows/s only; partition keys are 3-digit prefixes; no SSN anywhere.
(No ``from __future__ import annotations`` here: Dagster reads the Config and resource annotations.)
"""

import hashlib
from datetime import timedelta

from dagster import (
    AssetExecutionContext,
    AutomationCondition,
    Config,
    DataVersion,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from conflict_assets.detection import BAD_INPUT_KEYS, DetectionParams, detect
from conflict_assets.partitions import backfill_policy, ssn_prefix_partitions
from conflict_assets.probe_handoff import PROBE_TAG
from conflict_assets.postgres_schema import ensure_postgres
from conflict_assets.source_schema import as_of_date
from conflict_assets.sync import sanitized, sync
from resources.postgres import PostgresResource
from resources.retry import network_retry_policy
from resources.warehouse import Warehouse


class DetectionConfig(Config):
    tolerance_minutes: float = 0.0
    speed_kmh: float = 60.0
    min_travel_km: float = 1.0
    force: bool = False  # recompute even prefixes whose fingerprint is unchanged


def _run_version(fingerprints: dict[str, str]) -> DataVersion:
    """One prefix: its fingerprint. A range: a digest of the range's fingerprints (the authoritative
    per-prefix copy lives in the warehouse detection state and PostgreSQL's conflict_sync_state)."""
    if len(fingerprints) == 1:
        return DataVersion(next(iter(fingerprints.values())))
    joined = ",".join(f"{p}:{fp}" for p, fp in sorted(fingerprints.items()))
    return DataVersion(hashlib.md5(joined.encode()).hexdigest())


@asset(
    key=["conflicts", "visit_conflicts"],
    partitions_def=ssn_prefix_partitions,
    backfill_policy=backfill_policy,
    pool="snowflake",
    retry_policy=network_retry_policy,
    group_name="conflicts",
    kinds={"snowflake"},
    description="Time-overlap and travel-time conflicts per SSN prefix (warehouse table CONFLICTS.VISIT_CONFLICTS).",
)
def visit_conflicts(context: AssetExecutionContext, config: DetectionConfig, warehouse: Warehouse) -> MaterializeResult:
    prefixes = sorted(context.partition_keys)
    params = DetectionParams(config.tolerance_minutes, config.speed_kmh, config.min_travel_km)
    as_of = as_of_date()
    with sanitized("conflict detection"), warehouse.get_connection() as conn:
        # a run the source sensor requested reuses the tick's probe (unless forced)
        summary = detect(conn.cursor(), prefixes, as_of, params, force=config.force,
                         probe_id=context.run.tags.get(PROBE_TAG))
    bad = {k: summary[k] for k in BAD_INPUT_KEYS if summary[k]}
    if bad:
        context.log.warning(f"bad input in {len(prefixes)} prefixes (kept, counted): {bad}")
    context.log.info(f"detection: {summary['prefixes_changed']} prefixes recomputed, "
                     f"{summary['prefixes_skipped']} unchanged, {summary['conflict_rows']} conflict rows")
    return MaterializeResult(metadata={**summary, "as_of": as_of.isoformat()})


@asset(
    key=["conflicts", "conflictvisitmaps"],
    deps=[visit_conflicts],
    partitions_def=ssn_prefix_partitions,
    backfill_policy=backfill_policy,
    pool="postgres",
    retry_policy=network_retry_policy,
    group_name="conflicts",
    kinds={"postgres"},
    # late in the UI when no sync has landed for a day
    freshness_policy=FreshnessPolicy.time_window(fail_window=timedelta(hours=36), warn_window=timedelta(hours=26)),
    # follows detection partition by partition, never while a run or backfill of it is in progress
    automation_condition=AutomationCondition.eager(),
    description="PostgreSQL conflictvisitmaps kept in step with the detected conflicts, only what changed.",
)
def conflictvisitmaps(context: AssetExecutionContext, warehouse: Warehouse, postgres: PostgresResource
                      ) -> MaterializeResult:
    prefixes = sorted(context.partition_keys)
    with sanitized("PostgreSQL schema setup"):
        ensure_postgres(postgres)
    result = sync(warehouse, postgres, prefixes, as_of_date())
    fingerprints = result.pop("fingerprints")
    context.log.info(f"sync: {result['prefixes_skipped']} of {len(prefixes)} prefixes unchanged; "
                     f"{result['rows_compared']} compared, {result['rows_changed']} changed, "
                     f"{result['rows_inserted']} inserted, {result['rows_resolved']} resolved "
                     f"in {result['seconds']} s")
    metadata = {k: v for k, v in result.items()}
    metadata["rows_per_second"] = MetadataValue.float(float(result["rows_per_second"]))
    return MaterializeResult(metadata=metadata, data_version=_run_version(fingerprints))
