"""The conflict source sensor: request detection only for the SSN prefixes whose source changed.

One warehouse query fingerprints every prefix's visits in the window (dimensions included); prefixes
whose fingerprint differs from the one recorded by the last detection are requested, detection and the
PostgreSQL update in the same run. When every changed prefix can be updated incrementally (the usual daily
case) that is ONE run over their span: the work then follows the changed visits, while each run pays a
fixed cost (fingerprints, ~50 warehouse statements, the sync's read), and unchanged prefixes inside the
span are skipped by their fingerprint. Otherwise (first load, a dimension or parameter change) they are
range runs of contiguous prefixes, at most one backfill chunk each. The cursor holds a digest of the
requested state, so an unchanged source or a request still in flight is never requested twice. The tick's
probe is saved under that digest and the runs are tagged with it, so they do not probe again
(probe_handoff.py).
"""

from __future__ import annotations

import hashlib

import dagster as dg

from conflict_assets.detection import DetectionParams, plan
from conflict_assets.partitions import PARTITIONS_PER_RUN, PREFIXES
from conflict_assets.probe_handoff import PROBE_TAG, save_probe
from conflict_assets.source_schema import as_of_date
from resources.partition_runs import partition_range_tags
from resources.settings import sensors_default_status
from resources.warehouse import Warehouse

DETECTION_KEY = dg.AssetKey(["conflicts", "visit_conflicts"])
SYNC_KEY = dg.AssetKey(["conflicts", "conflictvisitmaps"])


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


def run_ranges(changed: list[str], reusable: set[str]) -> list[tuple[str, str]]:
    """One span when every changed prefix is incremental, else backfill-sized contiguous ranges."""
    if changed and set(changed) <= reusable:
        return [(changed[0], changed[-1])]
    return contiguous_ranges(changed)


def source_change_requests(current: dict[str, str], recorded: dict[str, str], cursor: str | None,
                           reusable: set[str] = frozenset()):
    changed = changed_prefixes(current, recorded)
    if not changed:
        return dg.SkipReason("no SSN prefix changed since the last detection")
    state = hashlib.md5("|".join(f"{p}:{current.get(p)}" for p in changed).encode()).hexdigest()
    if state == cursor:
        return dg.SkipReason(f"{len(changed)} changed prefixes already requested")
    runs = [
        dg.RunRequest(
            run_key=f"conflicts-{state[:12]}-{first}-{last}",
            asset_selection=[DETECTION_KEY, SYNC_KEY],
            tags={**partition_range_tags(first, last), PROBE_TAG: state},
        )
        for first, last in run_ranges(changed, reusable)
    ]
    return dg.SensorResult(run_requests=runs, cursor=state)


def evaluate(cursor, as_of, params: DetectionParams, sensor_cursor: str | None):
    """One tick: probe every prefix, request runs for the changed ones, and save the probe they are tagged with."""
    todo = plan(cursor, PREFIXES, as_of, params)
    current = {p: fp for p, (fp, _) in todo.found.current.items()}
    result = source_change_requests(current, todo.stored, sensor_cursor, todo.incremental)
    if isinstance(result, dg.SensorResult):
        save_probe(cursor, todo.found, result.cursor, as_of, params)
    return result


@dg.sensor(
    name="conflict_source_changes",
    asset_selection=[DETECTION_KEY, SYNC_KEY],
    minimum_interval_seconds=900,
    default_status=sensors_default_status(),
    description="Requests conflict detection and the PostgreSQL update for the SSN prefixes whose visit data changed.",
)
def conflict_source_changes(context: dg.SensorEvaluationContext, warehouse: Warehouse):
    import snowflake.connector

    try:
        with warehouse.get_connection() as conn:
            return evaluate(conn.cursor(), as_of_date(), DetectionParams(), context.cursor)
    except snowflake.connector.errors.ProgrammingError as exc:
        # e.g. no visit tables yet; the error number says which, without quoting any data
        return dg.SkipReason(f"visit source not readable (Snowflake error {exc.errno})")


conflict_sensors = [conflict_source_changes]
