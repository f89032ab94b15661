"""Incremental detection and sync equal a from-scratch run, after every round of random source edits.

Database A is updated incrementally (per-visit state, change log); database B (a second warehouse database
and a second PostgreSQL database) is rebuilt from scratch on a copy of A's source each round. The result
table, the per-visit state, the per-prefix state and PostgreSQL's active rows must be identical, and a
whole-prefix re-sync of A must find nothing to write.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid

import psycopg
import pytest

from conflict_assets import detection, incremental
from conflict_assets.detection import (
    AGGREGATES,
    PREFIX_STATE,
    RESULT_TABLE,
    STATE_NAMES,
    STATE_TABLE,
    VISIT_STATE,
    DetectionParams,
    detect,
    reset_tables,
)
from conflict_assets.generate import generate
from conflict_assets.partitions import PREFIXES
from conflict_assets.postgres_schema import setup_postgres
from conflict_assets.probe_handoff import PROBE_TAG, load_probe
from conflict_assets.sensors import evaluate
from conflict_assets.source_schema import table_columns
from conflict_assets.sync import sync
from resources.postgres import PostgresResource
from resources.warehouse import Warehouse
from tests.pg_helpers import scratch_database

AS_OF = dt.date(2026, 3, 1)
REF_DB = "CONFLICT_INCR_REF"
SOURCE_TABLES = list(table_columns())
STAMP = "LAST_UPDATED_DATE = CURRENT_TIMESTAMP()::TIMESTAMP_NTZ"


@pytest.fixture(scope="module")
def pair(warehouse, postgres):
    ref_wh = Warehouse(account="emulator", user="emulator", password="emulator", database=REF_DB,
                       schema="PUBLIC", emulated=True)
    ref_db = f"{psycopg.conninfo.conninfo_to_dict(postgres.dsn)['dbname']}_ref"
    with scratch_database(ref_db, admin=postgres.dsn) as ref_conninfo:
        ref_pg = PostgresResource(url=ref_conninfo)
        _fresh(warehouse, postgres)
        yield warehouse, postgres, ref_wh, ref_pg


def _fresh(warehouse, postgres) -> None:
    """The test source as generated, nothing detected or synced yet."""
    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        generate(cur, scale=40, seed=21, as_of=AS_OF, visits_per_caregiver=120)
        reset_tables(cur)
    _reset_pg(postgres)


def _reset_pg(pg) -> None:
    with pg.connection() as conn:
        conn.execute("DROP TABLE IF EXISTS public.conflictvisitmaps, public.conflict_sync_state CASCADE")
    setup_postgres(pg)


def _wh(warehouse, sql: str) -> list[tuple]:
    with warehouse.get_connection() as conn:
        return conn.cursor().execute(sql).fetchall()


def _run(warehouse, postgres, force: bool = False, as_of: dt.date = AS_OF) -> tuple[dict, dict]:
    with warehouse.get_connection() as conn:
        found = detect(conn.cursor(), PREFIXES, as_of, DetectionParams(), force=force)
    return found, sync(warehouse, postgres, PREFIXES, as_of)


def _assert_equals_from_scratch(pair, label: str, as_of: dt.date = AS_OF, state: bool = True) -> dict:
    """Rebuild B from a copy of A's source and compare everything (``state``: the per-visit state too);
    returns B's detection summary."""
    warehouse, postgres, ref_wh, ref_pg = pair
    _copy_source(warehouse, ref_wh)
    with ref_wh.get_connection() as conn:
        reset_tables(conn.cursor())
    _reset_pg(ref_pg)
    ref_found, _ = _run(ref_wh, ref_pg, force=True, as_of=as_of)
    ours, ref = _snapshot_wh(warehouse), _snapshot_wh(ref_wh)
    if not state:
        for part in ("visit_state", "aggregates"):
            del ours[part], ref[part]
    assert ours == ref, label
    assert _pg_rows(postgres, "\"ConflictStatus\" = 'active'") == _pg_rows(ref_pg), label
    return ref_found


def _copy_source(warehouse, ref_wh) -> None:
    with warehouse.get_connection() as conn:
        database = conn.cursor().execute("SELECT CURRENT_DATABASE()").fetchone()[0]
    with ref_wh.get_connection() as conn:
        cur = conn.cursor()
        cur.execute("CREATE SCHEMA IF NOT EXISTS VISITS")
        for table in SOURCE_TABLES:
            cur.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {database}.{table}")


def _snapshot_wh(warehouse) -> dict:
    return {
        "results": sorted(_wh(warehouse, f"SELECT PREFIX, CONFLICTID, CONFLICT_TYPE, VISIT_ID, OTHER_VISIT_ID, "
                                         f"OVERLAP_SECONDS, GAP_SECONDS, DISTANCE_KM FROM {RESULT_TABLE}"), key=str),
        "prefix_state": sorted(_wh(warehouse, f"SELECT PREFIX, FINGERPRINT, VISITS, CONFLICT_ROWS FROM {STATE_TABLE}")),
        # kept by adding each run's deltas: must equal what a full recompute counts
        "aggregates": sorted(_wh(warehouse, f"SELECT PREFIX, {', '.join(AGGREGATES)} FROM {PREFIX_STATE}")),
        "visit_state": sorted(_wh(warehouse, f"SELECT {', '.join(STATE_NAMES)} FROM {VISIT_STATE}"), key=str),
    }


def _pg_rows(pg, where: str = "TRUE") -> set[tuple]:
    with pg.connection() as conn:
        cols = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'conflictvisitmaps' "
            "AND column_name NOT IN ('UpdateFlag', 'FirstSeenAt', 'ResolvedAt', 'LastSyncedAt') ORDER BY 1")]
        rows = conn.execute(f"SELECT {', '.join(f'{chr(34)}{c}{chr(34)}' for c in cols)} "
                            f"FROM public.conflictvisitmaps WHERE {where}").fetchall()
    return set(rows)


class Editor:
    """Random source edits of the kinds the issue lists, by SQL on the warehouse source."""

    def __init__(self, warehouse, rng: random.Random):
        self.wh, self.rng = warehouse, rng
        self.cols = table_columns()["VISITS.VISITS"]

    def _visit(self) -> str:
        """Half the time a visit in a conflict (so conflicts move and go away), else any recent visit."""
        if self.rng.random() < 0.5:
            ids = _wh(self.wh, f"SELECT DISTINCT VISIT_ID FROM {RESULT_TABLE} ORDER BY VISIT_ID")
        else:
            ids = _wh(self.wh, "SELECT VISIT_ID FROM VISITS.VISITS WHERE VISIT_DATE >= DATEADD(day, -60, "
                               f"TO_DATE('{AS_OF}')) ORDER BY VISIT_ID")
        return self.rng.choice(ids)[0]

    def _copy(self, vid: str, new_id: str, shift_hours: int, later: bool) -> None:
        shifted = {"SCH_START", "SCH_END", "VISIT_START", "VISIT_END", "EVV_START", "EVV_END"}
        exprs = []
        for col in self.cols:
            if col == "VISIT_ID":
                exprs.append(f"'{new_id}'")
            elif col in shifted:
                exprs.append(f"DATEADD(hour, {shift_hours}, {col})")
            elif col == "LAST_UPDATED_DATE":
                exprs.append(f"DATEADD(hour, 2, {col})" if later else STAMP.split(" = ")[1])
            else:
                exprs.append(col)
        _wh(self.wh, f"INSERT INTO VISITS.VISITS ({', '.join(self.cols)}) SELECT {', '.join(exprs)} "
                     f"FROM VISITS.VISITS WHERE VISIT_ID = '{vid}'")

    def edit(self) -> str:
        kind = self.rng.choice(["move", "gps", "gps_off", "provider", "delete", "add", "duplicate",
                                "other_prefix", "out_of_window", "billing", "caregiver_ssn"])
        vid = self._visit()
        where = f"WHERE VISIT_ID = '{vid}'"
        hours = self.rng.choice([-30, -20, -9, -5, 5, 9, 20, 30])  # crosses midnight more often than not
        sql = {
            "move": f"UPDATE VISITS.VISITS SET SCH_START = DATEADD(hour, {hours}, SCH_START), "
                    f"SCH_END = DATEADD(hour, {hours}, SCH_END), VISIT_START = DATEADD(hour, {hours}, VISIT_START), "
                    f"VISIT_END = DATEADD(hour, {hours}, VISIT_END) {where}",
            "gps": f"UPDATE VISITS.VISITS SET CALL_IN_LAT = CALL_IN_LAT + 0.4, CALL_OUT_LAT = CALL_OUT_LAT + 0.4 {where}",
            "gps_off": f"UPDATE VISITS.VISITS SET CALL_IN_LAT = NULL, CALL_IN_LON = NULL, CALL_OUT_LAT = NULL, "
                       f"CALL_OUT_LON = NULL {where}",
            "provider": f"UPDATE VISITS.VISITS SET PROVIDER_KEY = MOD(PROVIDER_KEY + 1, 4) {where}",
            "delete": f"DELETE FROM VISITS.VISITS {where}",
            "other_prefix": "UPDATE VISITS.VISITS SET CAREGIVER_KEY = (SELECT MIN(CAREGIVER_KEY) FROM VISITS.CAREGIVERS "
                            "WHERE SSN IS NOT NULL AND LEFT(SSN, 3) <> (SELECT MIN(LEFT(c.SSN, 3)) FROM VISITS.VISITS v "
                            f"JOIN VISITS.CAREGIVERS c ON c.CAREGIVER_KEY = v.CAREGIVER_KEY {where.replace('VISIT_ID', 'v.VISIT_ID')})) {where}",
            "out_of_window": f"UPDATE VISITS.VISITS SET VISIT_DATE = DATEADD(year, -3, VISIT_DATE) {where}",
            "billing": f"UPDATE VISITS.VISITS SET BILLED_RATE = COALESCE(BILLED_RATE, 0) + 1 {where}",
            "caregiver_ssn": "UPDATE VISITS.CAREGIVERS SET SSN = '9' || RIGHT(SSN, 8) WHERE CAREGIVER_KEY = "
                             f"(SELECT MIN(CAREGIVER_KEY) FROM VISITS.VISITS {where})",
        }.get(kind)
        # source systems stamp their edits; some here keep the old stamp, which only the sums check catches
        stamped = self.rng.random() < 0.75
        if sql and stamped:
            sql = sql.replace("UPDATE VISITS.VISITS SET ", f"UPDATE VISITS.VISITS SET {STAMP}, ")
        if kind == "add":
            self._copy(vid, str(uuid.UUID(int=self.rng.getrandbits(128))), hours, later=False)
        elif kind == "duplicate":
            self._copy(vid, vid, self.rng.choice([0, 1]), later=True)
        else:
            _wh(self.wh, sql)
        return kind


def test_incremental_equals_from_scratch_after_random_edits(pair, monkeypatch):
    warehouse, postgres, ref_wh, ref_pg = pair
    first, _ = _run(warehouse, postgres)
    assert first["prefixes_full"] > 0 and first["prefixes_incremental"] == 0
    editor = Editor(warehouse, random.Random(5))
    kinds, written = set(), 0
    ways = {"prefixes_by_watermark": 0, "prefixes_rescanned": 0, "sequences_by_islands": 0, "sequences_read_whole": 0}
    for round_number in range(7):
        # successors by islands in even rounds, every affected caregiver whole ("dense" changes) in odd ones
        monkeypatch.setattr(incremental, "DENSE_SHARE", 0.0 if round_number % 2 else 1.0)
        kinds |= {editor.edit() for _ in range(6)}
        found, synced = _run(warehouse, postgres)
        written += found["conflict_rows_written"]
        # the changed prefixes were updated incrementally, re-pairing only around the changed visits
        assert found["prefixes_full"] == 0 and found["prefixes_incremental"] == found["prefixes_changed"] > 0
        assert 0 < found["visits_repaired"] < found["visits"] / 10
        assert synced["prefixes_incremental"] == found["prefixes_changed"]
        for key in ways:
            ways[key] += found[key]

        ref_found = _assert_equals_from_scratch(pair, f"round {round_number}")
        for key in ("duplicate_visit_ids", "without_gps", "bad_scheduled_times"):
            assert ref_found[key] > 0  # the data keeps exercising the bad-input paths
    assert written > 20  # conflicts really moved
    # stamped edits were found by the watermark; deletions, moves and unstamped edits by a rescan
    assert ways["prefixes_by_watermark"] > 0 and ways["prefixes_rescanned"] > 0
    # successors were recomputed around the changes, and over whole sequences where an island was not closed
    assert ways["sequences_by_islands"] > 0 and ways["sequences_read_whole"] > 0
    assert kinds >= {"move", "gps_off", "provider", "delete", "add", "duplicate", "other_prefix", "out_of_window"}
    # a whole-prefix comparison of A finds nothing the incremental sync missed
    with postgres.connection() as conn:
        conn.execute("UPDATE public.conflict_sync_state SET seq = NULL, fingerprint = 'forget'")
    again = sync(warehouse, postgres, PREFIXES, AS_OF)
    assert again["prefixes_incremental"] == 0 and again["rows_written"] == 0
    assert _pg_rows(postgres, "\"ConflictStatus\" = 'resolved'")  # conflicts that went away were kept, resolved


def test_moving_the_window_keeps_the_incremental_result_exact(pair):
    """A later run date drops the oldest visits, an earlier one brings older history back: both edges are
    found from the state's VisitDate and the window the state was computed for, without a rescan."""
    warehouse, postgres, _, _ = pair
    _run(warehouse, postgres)
    for days in (10, -20):
        as_of = AS_OF + dt.timedelta(days=days)
        found, _ = _run(warehouse, postgres, as_of=as_of)
        assert found["prefixes_incremental"] == found["prefixes_changed"] > 0 and found["prefixes_full"] == 0
        assert found["prefixes_by_watermark"] == found["prefixes_changed"] and found["prefixes_rescanned"] == 0
        ref_found = _assert_equals_from_scratch(pair, f"as of {as_of}", as_of)
        assert found["visits"] == ref_found["visits"]
    _run(warehouse, postgres)  # back to the module's date for the tests after this one


def test_a_dimension_change_falls_back_to_a_full_prefix_recompute(pair):
    warehouse, postgres, _, _ = pair
    _run(warehouse, postgres)
    provider = _wh(warehouse, f"SELECT MIN(v.PROVIDER_KEY) FROM {RESULT_TABLE} r "
                              "JOIN VISITS.VISITS v ON v.VISIT_ID = r.VISIT_ID")[0][0]  # one with conflicts
    _wh(warehouse, f"UPDATE VISITS.PROVIDERS SET PROVIDER_NAME = 'Renamed' WHERE PROVIDER_KEY = {provider}")
    found, synced = _run(warehouse, postgres)
    assert found["prefixes_incremental"] == 0 and found["prefixes_full"] == found["prefixes_changed"] > 0
    assert synced["prefixes_incremental"] == 0 and synced["rows_changed"] > 0
    found, synced = _run(warehouse, postgres)
    assert found["prefixes_changed"] == 0 and synced["rows_written"] == 0


def test_runs_within_the_lookback_read_only_what_is_new(pair):
    """Runs closer together than the watermark lookback: the second reads only its own edits, not the
    first run's again (the state holds those with their stamp)."""
    warehouse, postgres, _, _ = pair
    _run(warehouse, postgres)
    single = [r[0] for r in _wh(warehouse, "SELECT VISIT_ID FROM VISITS.VISITS v JOIN VISITS.CAREGIVERS c "
                                           "ON c.CAREGIVER_KEY = v.CAREGIVER_KEY WHERE c.SSN IS NOT NULL AND "
                                           f"v.VISIT_DATE >= DATEADD(day, -60, TO_DATE('{AS_OF}')) GROUP BY VISIT_ID "
                                           "HAVING COUNT(*) = 1 ORDER BY VISIT_ID LIMIT 5")]
    for batch in (single[:3], single[3:]):
        ids = ", ".join(f"'{v}'" for v in batch)
        _wh(warehouse, f"UPDATE VISITS.VISITS SET {STAMP}, BILLED_RATE = COALESCE(BILLED_RATE, 0) + 1 "
                       f"WHERE VISIT_ID IN ({ids})")
        found, _ = _run(warehouse, postgres)
        assert found["prefixes_rescanned"] == 0
        assert found["visits_read"] == found["visits_changed"] == len(batch)
    _assert_equals_from_scratch(pair, "after back-to-back runs")


def test_a_run_requested_by_a_tick_uses_its_probe_and_leaves_later_edits_to_the_next_tick(pair):
    """The run reuses the tick's probe (no second scan of the source): an edit stamped after the tick is not
    read, the state still adds up to the probe's sums (no rescan), and the next tick brings the edit."""
    warehouse, postgres, _, _ = pair
    _run(warehouse, postgres)
    # two visits of one prefix: the run recomputes that prefix, and must still not read the later edit
    first, second = [r[0] for r in _wh(warehouse, f"SELECT DISTINCT VISIT_ID FROM {RESULT_TABLE} WHERE PREFIX = "
                                                  f"(SELECT MIN(PREFIX) FROM {RESULT_TABLE}) ORDER BY 1 LIMIT 2")]
    params = DetectionParams()

    def tick() -> str:
        """The sensor's tick: the probe id its run requests are tagged with."""
        with warehouse.get_connection() as conn:
            cur = conn.cursor()
            probe_id = evaluate(cur, AS_OF, params, None).run_requests[0].tags[PROBE_TAG]
            assert load_probe(cur, probe_id, PREFIXES, AS_OF, params) is not None
            # the probe is only handed to runs of the same date and parameters, under a well-formed id
            assert load_probe(cur, probe_id, PREFIXES, AS_OF + dt.timedelta(days=1), params) is None
            assert load_probe(cur, probe_id, PREFIXES, AS_OF, DetectionParams(speed_kmh=30.0)) is None
            assert load_probe(cur, "' OR '1' = '1", PREFIXES, AS_OF, params) is None
        return probe_id

    def run(probe_id: str) -> dict:
        with warehouse.get_connection() as conn:
            done = detect(conn.cursor(), PREFIXES, AS_OF, params, probe_id=probe_id)
        sync(warehouse, postgres, PREFIXES, AS_OF)
        return done

    move = "SCH_START = DATEADD(hour, 5, SCH_START), SCH_END = DATEADD(hour, 5, SCH_END)"
    _wh(warehouse, f"UPDATE VISITS.VISITS SET {STAMP}, {move} WHERE VISIT_ID = '{first}'")
    probe_id = tick()
    # stamped after the probe's latest stamp, to the microsecond (no wait: the horizon is exact)
    _wh(warehouse, f"UPDATE VISITS.VISITS SET {STAMP}, {move} WHERE VISIT_ID = '{second}'")
    done = run(probe_id)
    assert done["probe_from_tick"] and done["prefixes_rescanned"] == 0
    assert done["visits_changed"] == 1  # the first edit only
    again = run(tick())
    assert again["probe_from_tick"] and again["prefixes_rescanned"] == 0 and again["visits_changed"] == 1
    _assert_equals_from_scratch(pair, "after runs on the tick's probe")


def test_state_of_an_older_layout_is_dropped_and_rebuilt_where_the_source_changes(pair):
    """A release that adds per-visit state columns (as VKEY and DKEY did) finds the old VISIT_STATE without
    them: the derived state goes, unchanged prefixes stay skipped with their results, and a prefix that
    changes is recomputed in full once, then incrementally again."""
    warehouse, postgres, _, _ = pair
    _run(warehouse, postgres)
    results = _snapshot_wh(warehouse)["results"]
    _wh(warehouse, f"ALTER TABLE {VISIT_STATE} DROP COLUMN DKEY")
    found, synced = _run(warehouse, postgres)
    assert found["prefixes_changed"] == 0 and synced["rows_written"] == 0
    assert _snapshot_wh(warehouse)["results"] == results
    assert _wh(warehouse, f"SELECT COUNT(*) FROM {VISIT_STATE}") == [(0,)]
    moved = _wh(warehouse, "SELECT MIN(VISIT_ID) FROM VISITS.VISITS WHERE VISIT_DATE >= "
                           f"DATEADD(day, -60, TO_DATE('{AS_OF}'))")[0][0]
    for round_number in range(2):
        _wh(warehouse, f"UPDATE VISITS.VISITS SET {STAMP}, SCH_START = DATEADD(hour, 5, SCH_START), "
                       f"SCH_END = DATEADD(hour, 5, SCH_END) WHERE VISIT_ID = '{moved}'")
        found, _ = _run(warehouse, postgres)
        assert found["prefixes_changed"] >= 1
        assert found["prefixes_full" if round_number == 0 else "prefixes_incremental"] == found["prefixes_changed"]
        # results and PostgreSQL as a recompute has them; state only where the source changed
        _assert_equals_from_scratch(pair, f"after the layout change, round {round_number}", state=False)
        assert _wh(warehouse, f"SELECT COUNT(DISTINCT PREFIX) FROM {VISIT_STATE}") == [(found["prefixes_changed"],)]


def test_colliding_lookup_keys_change_nothing(pair, monkeypatch):
    """The state's integer lookup keys (VKEY, DKEY) only narrow the scans: every match is confirmed on the
    columns they stand for. With every key equal, incremental updates still equal a recompute from scratch."""
    warehouse, postgres, _, _ = pair
    monkeypatch.setattr(detection, "KEY_MODULUS", 1)
    try:
        _fresh(warehouse, postgres)  # the earlier tests' edits left few conflicts to edit
        _run(warehouse, postgres)
        assert _wh(warehouse, f"SELECT COUNT(DISTINCT VKEY), COUNT(DISTINCT DKEY) FROM {VISIT_STATE}") == [(1, 1)]
        editor = Editor(warehouse, random.Random(17))
        for round_number in range(2):
            monkeypatch.setattr(incremental, "DENSE_SHARE", 1.0 if round_number == 0 else 0.0)  # islands, then whole
            for _ in range(6):
                editor.edit()
            found, _ = _run(warehouse, postgres)
            assert found["prefixes_incremental"] > 0 and found["visits_repaired"] > 0
            # islands still close where they should (an island read by the day key alone is never closed)
            assert (found["sequences_by_islands"] > 0) == (round_number == 0)
            _assert_equals_from_scratch(pair, f"colliding keys, round {round_number}")
    finally:
        monkeypatch.undo()
        _fresh(warehouse, postgres)


def test_a_visit_leaving_or_entering_between_two_visits_changes_their_travel_pair(warehouse):
    """The successor relation: removing the visit between x and w makes (x, w) consecutive (a new travel
    conflict although neither changed); putting it back removes it. Checked against the brute-force reference."""
    from conflict_assets.source_schema import create_source_tables
    from resources.warehouse import bulk_load
    from tests.test_conflict_detection import AS_OF as REF_AS_OF
    from tests.test_conflict_detection import (
        BASE,
        CAREGIVERS,
        _frames,
        _visit,
        reference,
    )

    h = lambda x: BASE + dt.timedelta(hours=x)  # noqa: E731
    rows = [_visit("x1", 0, 0, h(8), h(9), lat=40.0, lon=-74.0),
            _visit("v1", 0, 0, h(9.1), h(9.2)),  # no GPS: never in a travel conflict itself
            _visit("w1", 1, 1, h(9.5), h(10), lat=41.0, lon=-74.0)]  # 111 km in 30 min from x1
    frame = _frames(rows)
    params = DetectionParams()

    def found(cur) -> set[tuple]:
        summary = detect(cur, ["111"], REF_AS_OF, params)
        cur.execute(f"SELECT CONFLICTID, CONFLICT_TYPE, VISIT_ID, OTHER_VISIT_ID FROM {RESULT_TABLE}")
        return set(cur.fetchall()), summary

    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        create_source_tables(cur)
        reset_tables(cur)
        bulk_load(cur, "VISITS.CAREGIVERS", CAREGIVERS)
        bulk_load(cur, "VISITS.VISITS", frame)
        got, summary = found(cur)
        assert got == reference(frame, params) == set() and summary["prefixes_full"] == 1
        cur.execute("DELETE FROM VISITS.VISITS WHERE VISIT_ID = 'v1'")
        got, summary = found(cur)
        without = frame[frame.VISIT_ID != "v1"]
        assert summary["prefixes_incremental"] == 1 and summary["visits_repaired"] == 1
        assert got == reference(without, params) and {k for _, k, _, _ in got} == {"TRAVEL_TIME"}
        bulk_load(cur, "VISITS.VISITS", frame[frame.VISIT_ID == "v1"])
        got, summary = found(cur)
        assert summary["prefixes_incremental"] == 1 and got == reference(frame, params) == set()
