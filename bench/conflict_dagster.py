"""The conflict benchmark's end-to-end legs: the same work through Dagster, as a user waits for it.

Runs materialize both assets in the backfill policy's runs (4 range runs of 250 prefixes) in a Dagster
instance under the bench's own DAGSTER_HOME; the no-change check is one tick of the conflict_source_changes
sensor. Figures come from the runs' materialization metadata (counts only).
"""

from __future__ import annotations

import time

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from conflict_assets.assets import conflictvisitmaps, visit_conflicts
from conflict_assets.partitions import PARTITIONS_PER_RUN, PREFIXES
from conflict_assets.sensors import conflict_source_changes
from resources.partition_runs import partition_range_tags


def _materialize(instance, resources: dict, first: str, last: str) -> dict:
    result = dg.materialize([visit_conflicts, conflictvisitmaps], instance=instance, resources=resources,
                            tags=partition_range_tags(first, last))
    if not result.success:
        raise RuntimeError("a benchmark run failed")
    meta = {e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}
    return meta


def _add(totals: dict, meta: dict) -> None:
    sync = meta["conflictvisitmaps"]
    totals["runs"] += 1
    totals["rows_fetched"] += sync["rows_fetched"]
    totals["rows_written"] += sync["rows_written"]
    totals["warehouse_queries"] += sync["warehouse_queries"]


def backfill(instance, resources: dict, ranges: list[tuple[str, str]] | None = None) -> dict:
    """Both assets over ``ranges`` (default: all prefixes as the backfill policy groups them)."""
    if ranges is None:
        ranges = [(PREFIXES[lo], PREFIXES[min(lo + PARTITIONS_PER_RUN, len(PREFIXES)) - 1])
                  for lo in range(0, len(PREFIXES), PARTITIONS_PER_RUN)]
    totals = {"runs": 0, "rows_fetched": 0, "rows_written": 0, "warehouse_queries": 0}
    started = time.monotonic()
    for first, last in ranges:
        _add(totals, _materialize(instance, resources, first, last))
    return {**totals, "seconds": time.monotonic() - started}


def sensor_tick(instance, resources: dict, cursor: str | None = None):
    """One tick of the source sensor: (seconds, run requests, new cursor)."""
    started = time.monotonic()
    result = conflict_source_changes(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))
    seconds = time.monotonic() - started
    if isinstance(result, dg.SkipReason):
        return seconds, [], cursor
    return seconds, list(result.run_requests), result.cursor


def sensor_then_runs(instance, resources: dict, cursor: str | None) -> dict:
    """What the daemon does after a source change: a tick, then the runs it requests (detection and the
    sync, per requested range)."""
    started = time.monotonic()
    tick_seconds, requests, cursor = sensor_tick(instance, resources, cursor)
    ranges = [(r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) for r in requests]
    totals = backfill(instance, resources, ranges)
    return {**totals, "seconds": time.monotonic() - started, "tick_seconds": tick_seconds, "cursor": cursor}
