"""The conflict source sensor's decisions: only changed prefixes, one span when all are incremental,
contiguous ranges otherwise, no repeats."""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from conflict_assets.partitions import PREFIXES
from conflict_assets.sensors import contiguous_ranges, run_ranges, source_change_requests


def test_contiguous_ranges_split_gaps_and_long_runs():
    assert contiguous_ranges(["003", "001", "002", "007"]) == [("001", "003"), ("007", "007")]
    assert contiguous_ranges(PREFIXES, max_len=250) == [("000", "249"), ("250", "499"), ("500", "749"),
                                                         ("750", "999")]


def test_incremental_changes_go_in_one_span_and_anything_else_in_backfill_chunks():
    assert run_ranges(["010", "500", "999"], {"010", "500", "999"}) == [("010", "999")]
    assert run_ranges(["010", "500", "999"], {"010", "999"}) == [("010", "010"), ("500", "500"), ("999", "999")]
    assert run_ranges(PREFIXES, set()) == contiguous_ranges(PREFIXES)
    assert run_ranges([], set()) == []


def test_only_changed_prefixes_are_requested_once():
    recorded = {p: f"fp{p}" for p in PREFIXES}
    assert isinstance(source_change_requests(dict(recorded), recorded, None), dg.SkipReason)
    current = {**recorded, "010": "new", "011": "new", "500": "new"}
    result = source_change_requests(current, recorded, None)
    spans = [(r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG])
             for r in result.run_requests]
    assert spans == [("010", "011"), ("500", "500")]
    # the same changed state is not requested twice while detection has not caught up
    assert isinstance(source_change_requests(current, recorded, result.cursor), dg.SkipReason)
    # a prefix whose visits vanished (recorded but no longer present) is a change too
    vanished = {p: fp for p, fp in recorded.items() if p != "999"}
    assert [r.tags[ASSET_PARTITION_RANGE_START_TAG] for r in
            source_change_requests(vanished, recorded, None).run_requests] == ["999"]


def test_a_sensor_tick_leads_to_runs_that_succeed_and_then_nothing_to_do(warehouse, postgres, monkeypatch):
    """End to end on tiny data: the tick requests detection for changed prefixes only; running its
    requests succeeds; the next tick finds nothing changed; a source edit brings back just its prefix."""
    import datetime as dt

    from dagster import DagsterInstance, build_sensor_context, materialize

    from conflict_assets.assets import conflictvisitmaps, visit_conflicts
    from conflict_assets.detection import RESULT_TABLE, STATE_TABLE, ensure_tables
    from conflict_assets.generate import generate
    from conflict_assets.sensors import conflict_source_changes

    as_of = dt.date(2026, 3, 1)
    monkeypatch.setenv("CONFLICT_AS_OF", as_of.isoformat())
    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        generate(cur, scale=40, seed=5, as_of=as_of, visits_per_caregiver=100)
        ensure_tables(cur)
        cur.execute(f"DELETE FROM {RESULT_TABLE}")
        cur.execute(f"DELETE FROM {STATE_TABLE}")
    instance = DagsterInstance.ephemeral()
    resources = {"warehouse": warehouse, "postgres": postgres}

    def tick(cursor=None):
        return conflict_source_changes(build_sensor_context(instance=instance, cursor=cursor, resources=resources))

    first = tick()
    assert first.run_requests, "a fresh source must request detection"
    for request in first.run_requests:
        result = materialize([visit_conflicts, conflictvisitmaps], instance=instance, resources=resources,
                             selection=request.asset_selection, tags=request.tags)
        assert result.success
    assert isinstance(tick(first.cursor), dg.SkipReason)

    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        low, high = cur.execute("SELECT MIN(LEFT(SSN, 3)), MAX(LEFT(SSN, 3)) FROM VISITS.CAREGIVERS "
                                "WHERE SSN IS NOT NULL").fetchone()
        cur.execute("UPDATE VISITS.VISITS SET LAST_UPDATED_BY = 'sensor test' WHERE CAREGIVER_KEY IN "
                    f"(SELECT CAREGIVER_KEY FROM VISITS.CAREGIVERS WHERE LEFT(SSN, 3) = '{low}')")
    changed = tick(first.cursor)
    assert [(r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG])
            for r in changed.run_requests] == [(low, low)]

    # edits in two distant prefixes with state in place: ONE run over their span, detection and sync
    with warehouse.get_connection() as conn:
        conn.cursor().execute("UPDATE VISITS.VISITS SET LAST_UPDATED_BY = 'sensor test 2' WHERE CAREGIVER_KEY IN "
                              "(SELECT CAREGIVER_KEY FROM VISITS.CAREGIVERS WHERE LEFT(SSN, 3) = "
                              f"'{high}')")
    spanned = tick(changed.cursor)
    (request,) = spanned.run_requests
    assert (request.tags[ASSET_PARTITION_RANGE_START_TAG], request.tags[ASSET_PARTITION_RANGE_END_TAG]) == (low, high)
    assert set(request.asset_selection) == {visit_conflicts.key, conflictvisitmaps.key}
    result = materialize([visit_conflicts, conflictvisitmaps], instance=instance, resources=resources,
                         selection=request.asset_selection, tags=request.tags)
    assert result.success
    detection = result.asset_materializations_for_node("conflicts__visit_conflicts")[0].metadata
    assert detection["prefixes_incremental"].value == 2
    assert detection["probe_from_tick"].value is True  # the run did not probe the source again
    assert isinstance(tick(spanned.cursor), dg.SkipReason)
