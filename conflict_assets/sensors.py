"""The conflict source sensor: request detection only for the SSN prefixes whose source changed.

One warehouse query fingerprints every prefix's visits in the window (dimensions included); prefixes
whose fingerprint differs from the one recorded by the last detection are requested as range runs of
contiguous prefixes (at most one backfill chunk each). The PostgreSQL update follows detection by
declarative automation. The cursor holds a digest of the requested state, so an unchanged source
or a request still in flight is never requested twice.
"""

from __future__ import annotations

import hashlib

import dagster as dg

from conflict_assets.detection import DetectionParams, ensure_tables, fingerprints, stored_fingerprints
from conflict_assets.partitions import PARTITIONS_PER_RUN, PREFIXES
from conflict_assets.source_schema import as_of_date
from resources.partition_runs import partition_range_tags
from resources.settings import sensors_default_status
from resources.warehouse import Warehouse

DETECTION_KEY = dg.AssetKey(["conflicts", "visit_conflicts"])


def changed_prefixes(current: dict[str, str], recorded: dict[str, str]) -> list[str]:
    return sorted(p for p in PREFIXES if current.get(p) != recorded.get(p))


def contiguous_ranges(prefixes: list[str], max_len: int = PARTITIONS_PER_RUN) -> list[tuple[str, str]]:
    """Runs of adjacent prefixes in partition order, each at most ``max_len`` long."""
    position = {p: i for i, p in enumerate(PREFIXES)}
    ranges: list[list[str]] = []
    for prefix in sorted(prefixes, key=position.__getitem__):
        last = ranges[-1] if ranges else None
        if last and position[prefix] == position[last[-1]] + 1 and len(last) < max_len:
            last.append(prefix)
        else:
            ranges.append([prefix])
    return [(r[0], r[-1]) for r in ranges]


def source_change_requests(current: dict[str, str], recorded: dict[str, str], cursor: str | None):
    changed = changed_prefixes(current, recorded)
    if not changed:
        return dg.SkipReason("no SSN prefix changed since the last detection")
    state = hashlib.md5("|".join(f"{p}:{current.get(p)}" for p in changed).encode()).hexdigest()
    if state == cursor:
        return dg.SkipReason(f"{len(changed)} changed prefixes already requested")
    runs = [
        dg.RunRequest(
            run_key=f"conflicts-{state[:12]}-{first}-{last}",
            asset_selection=[DETECTION_KEY],
            tags=partition_range_tags(first, last),
        )
        for first, last in contiguous_ranges(changed)
    ]
    return dg.SensorResult(run_requests=runs, cursor=state)


@dg.sensor(
    name="conflict_source_changes",
    asset_selection=[DETECTION_KEY],
    minimum_interval_seconds=900,
    default_status=sensors_default_status(),
    description="Requests conflict detection for the SSN prefixes whose visit data changed.",
)
def conflict_source_changes(context: dg.SensorEvaluationContext, warehouse: Warehouse):
    import snowflake.connector

    try:
        with warehouse.get_connection() as conn:
            cursor = conn.cursor()
            ensure_tables(cursor)
            params = DetectionParams()
            current = {p: fp for p, (fp, _) in fingerprints(cursor, PREFIXES, as_of_date(), params).items()}
            recorded = stored_fingerprints(cursor, PREFIXES)
    except snowflake.connector.errors.ProgrammingError as exc:
        # e.g. no visit tables yet; the error number says which, without quoting any data
        return dg.SkipReason(f"visit source not readable (Snowflake error {exc.errno})")
    return source_change_requests(current, recorded, context.cursor)


conflict_sensors = [conflict_source_changes]
