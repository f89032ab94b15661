"""The Dagster assets materialize single partitions and a range on an ephemeral instance, and no SSN leaks
into logs or materialization metadata."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from dagster import DagsterInstance, materialize

from conflict_assets.assets import conflictvisitmaps, visit_conflicts
from conflict_assets.detection import RESULT_TABLE, STATE_TABLE, ensure_tables
from conflict_assets.checks import conflict_pairs_complete, visits_without_ssn
from conflict_assets.generate import generate

AS_OF = dt.date(2026, 3, 1)


@pytest.fixture(scope="module")
def ssns(warehouse, postgres):
    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        generate(cur, scale=60, seed=11, as_of=AS_OF, visits_per_caregiver=150)
        ensure_tables(cur)  # start from no detection state, whatever ran before in this session
        cur.execute(f"DELETE FROM {RESULT_TABLE}")
        cur.execute(f"DELETE FROM {STATE_TABLE}")
        found = [r[0] for r in cur.execute("SELECT DISTINCT SSN FROM VISITS.CAREGIVERS WHERE SSN IS NOT NULL")]
        # a prefix whose caregiver works for several agencies has conflicts to write
        busy = cur.execute("SELECT LEFT(SSN, 3) FROM VISITS.CAREGIVERS WHERE SSN IS NOT NULL GROUP BY SSN "
                           "ORDER BY COUNT(*) DESC, SSN LIMIT 1").fetchone()[0]
    with postgres.connection() as conn:
        conn.execute("DROP TABLE IF EXISTS public.conflictvisitmaps, public.conflict_sync_state CASCADE")
    return found, busy


def _run(warehouse, postgres, instance, **kwargs):
    return materialize([visit_conflicts, conflictvisitmaps, conflict_pairs_complete, visits_without_ssn], instance=instance,
                       resources={"warehouse": warehouse, "postgres": postgres}, **kwargs)


def _metadata(result) -> list[dict]:
    return [m.metadata for m in result.get_asset_materialization_events() for m in [m.materialization]]


def test_single_partition_and_range_without_leaking_ssns(warehouse, postgres, ssns, monkeypatch, caplog):
    monkeypatch.setenv("CONFLICT_AS_OF", AS_OF.isoformat())
    caplog.set_level(logging.INFO)
    instance = DagsterInstance.ephemeral()
    ssns, busiest = ssns

    single = _run(warehouse, postgres, instance, partition_key=busiest)
    assert single.success
    sync_meta = _metadata(single)[-1]
    assert sync_meta["prefixes"].value == 1 and sync_meta["rows_inserted"].value > 0
    checks = {e.check_name: e for e in single.get_asset_check_evaluations()}
    assert checks["conflict_pairs_complete"].passed
    assert checks["visits_without_ssn"].metadata["visits_without_ssn"].value > 0  # the generator injects some

    tags = {"dagster/asset_partition_range_start": "000", "dagster/asset_partition_range_end": "999"}
    ranged = _run(warehouse, postgres, instance, tags=tags)
    assert ranged.success
    detect_meta, sync_meta = _metadata(ranged)[0], _metadata(ranged)[-1]
    # the busiest prefix was done by the first run and is skipped; the 999 others are new
    assert detect_meta["prefixes"].value == 1000 and detect_meta["prefixes_skipped"].value == 1
    assert sync_meta["prefixes_skipped"].value == 1
    assert sync_meta["rows_inserted"].value > 0

    again = _run(warehouse, postgres, instance, tags=tags)
    assert _metadata(again)[-1]["rows_written"].value == 0

    texts = [caplog.text] + [str(m) for r in (single, ranged, again) for m in _metadata(r)]
    for run in (single, ranged, again):
        texts += [str(e.message) for e in instance.all_logs(run.run_id)]
    blob = "\n".join(texts)
    assert not [s for s in ssns if s in blob]
