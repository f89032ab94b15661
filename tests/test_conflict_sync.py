"""The PostgreSQL conflict update against the emulator and the real PostgreSQL, on tiny generated data.

The tests run in file order and share one data set: each leaves the source and PostgreSQL converged.
"""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from conflict_assets.detection import RESULT_TABLE, STATE_TABLE, detect, ensure_tables
from conflict_assets.generate import generate
from conflict_assets.partitions import PREFIXES
from conflict_assets.postgres_schema import setup_postgres
from conflict_assets.sync import SyncError, sanitized, sync

AS_OF = dt.date(2026, 3, 1)


@pytest.fixture(scope="module")
def data(warehouse, postgres):
    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        generate(cur, scale=120, seed=3, as_of=AS_OF, visits_per_caregiver=150)
        ensure_tables(cur)  # start from no detection state, whatever ran before in this session
        cur.execute(f"DELETE FROM {RESULT_TABLE}")
        cur.execute(f"DELETE FROM {STATE_TABLE}")
    with postgres.connection() as conn:
        conn.execute("DROP TABLE IF EXISTS public.conflictvisitmaps, public.conflict_sync_state CASCADE")
    setup_postgres(postgres)
    setup_postgres(postgres)  # idempotent
    return warehouse, postgres


def _wh(warehouse, sql: str) -> list[tuple]:
    with warehouse.get_connection() as conn:
        return conn.cursor().execute(sql).fetchall()


def _pg(postgres, sql: str, params=None) -> list[tuple]:
    with postgres.connection() as conn:
        return conn.execute(sql, params).fetchall()


def _detect_and_sync(warehouse, postgres, hook=None) -> tuple[dict, dict]:
    with warehouse.get_connection() as conn:
        found = detect(conn.cursor(), PREFIXES, AS_OF)
    return found, sync(warehouse, postgres, PREFIXES, AS_OF, on_pg_transaction=hook)


def _conflict_visits(warehouse, prefix_rank: int = 0, n: int = 3) -> tuple[str, list[str], int]:
    """A prefix with conflicts, n of its conflict visits, and how many conflict rows those visits have."""
    prefix = _wh(warehouse, f"SELECT PREFIX FROM {RESULT_TABLE} GROUP BY 1 ORDER BY COUNT(*) DESC, 1")[prefix_rank][0]
    visits = [r[0] for r in _wh(warehouse, f"SELECT DISTINCT VISIT_ID FROM {RESULT_TABLE} WHERE PREFIX = '{prefix}' "
                                           f"ORDER BY 1 LIMIT {n}")]
    ids = ", ".join(f"'{v}'" for v in visits)
    rows = _wh(warehouse, f"SELECT COUNT(*) FROM {RESULT_TABLE} WHERE VISIT_ID IN ({ids})")[0][0]
    return prefix, visits, rows


def _table_digest(postgres) -> tuple:
    return _pg(postgres, """SELECT COUNT(*), md5(string_agg(t::text, '' ORDER BY "CONFLICTID", "VisitID"))
                             FROM (SELECT * FROM public.conflictvisitmaps) t""")[0] + \
        _pg(postgres, "SELECT md5(string_agg(fingerprint, '' ORDER BY prefix)) FROM public.conflict_sync_state")[0]


def test_first_sync_inserts_all_and_reruns_write_nothing(data):
    warehouse, postgres = data
    found, first = _detect_and_sync(warehouse, postgres)
    expected = _wh(warehouse, f"SELECT COUNT(*) FROM {RESULT_TABLE}")[0][0]
    assert expected > 100 and found["time_overlap_conflicts"] > 0 and found["travel_time_conflicts"] > 0
    assert first["rows_inserted"] == expected == first["rows_compared"]
    assert _pg(postgres, "SELECT COUNT(*) FROM public.vw_conflictvisitmaps_base")[0][0] == expected
    # a first load is analyzed in the same transaction: the next run does not plan against "empty"
    assert _pg(postgres, "SELECT reltuples FROM pg_class WHERE oid = 'public.conflictvisitmaps'::regclass")[0][0] \
        == expected
    # unchanged source: every prefix skipped, one warehouse query, nothing fetched or written
    _, second = _detect_and_sync(warehouse, postgres)
    assert second["prefixes_skipped"] == len(PREFIXES)
    assert (second["warehouse_queries"], second["rows_fetched"], second["rows_written"]) == (1, 0, 0)
    # forgetting the sync state makes it compare everything again; values round-trip, so still 0 written
    _pg_exec(postgres, "DELETE FROM public.conflict_sync_state")
    third = sync(warehouse, postgres, PREFIXES, AS_OF)
    assert third["rows_compared"] == expected and third["rows_written"] == 0


def _pg_exec(postgres, sql: str, params=None) -> None:
    with postgres.connection() as conn:
        conn.execute(sql, params)


def test_a_source_change_updates_exactly_the_changed_rows(data):
    warehouse, postgres = data
    prefix, visits, rows = _conflict_visits(warehouse)
    ids = ", ".join(f"'{v}'" for v in visits)
    _wh(warehouse, f"UPDATE VISITS.VISITS SET BILLED_RATE = 99.5 WHERE VISIT_ID IN ({ids})")
    found, result = _detect_and_sync(warehouse, postgres)
    assert found["prefixes_changed"] == 1
    assert result["prefixes_skipped"] == len(PREFIXES) - 1
    assert (result["rows_changed"], result["rows_inserted"], result["rows_resolved"]) == (rows, 0, 0)
    got = _pg(postgres, """SELECT COUNT(*) FROM public.conflictvisitmaps
                           WHERE "BilledRate" = 99.5 AND "UpdateFlag" = 1 AND "SSNPrefix" = %s""", (prefix,))
    assert got[0][0] == rows


def test_a_conflict_that_no_longer_holds_is_resolved_not_deleted(data):
    warehouse, postgres = data
    _, [visit], _ = _conflict_visits(warehouse, prefix_rank=1, n=1)
    conflict_ids = [r[0] for r in _wh(warehouse, f"SELECT CONFLICTID FROM {RESULT_TABLE} WHERE VISIT_ID = '{visit}'")]
    total_before = _pg(postgres, "SELECT COUNT(*) FROM public.conflictvisitmaps")[0][0]
    _wh(warehouse, f"UPDATE VISITS.VISITS SET IS_MISSED = TRUE WHERE VISIT_ID = '{visit}'")  # missed: no conflict
    _, result = _detect_and_sync(warehouse, postgres)
    assert result["rows_resolved"] == 2 * len(conflict_ids)
    states = _pg(postgres, """SELECT DISTINCT "ConflictStatus", "ResolvedAt" IS NOT NULL FROM public.conflictvisitmaps
                              WHERE "CONFLICTID" = ANY(%s)""", (conflict_ids,))
    assert states == [("resolved", True)]
    assert _pg(postgres, "SELECT COUNT(*) FROM public.conflictvisitmaps")[0][0] >= total_before  # nothing deleted
    # the conflict comes back: the same rows become active again, no duplicates
    _wh(warehouse, f"UPDATE VISITS.VISITS SET IS_MISSED = FALSE WHERE VISIT_ID = '{visit}'")
    _, back = _detect_and_sync(warehouse, postgres)
    assert back["rows_changed"] >= 2 * len(conflict_ids)
    assert _pg(postgres, """SELECT DISTINCT "ConflictStatus" FROM public.conflictvisitmaps
                            WHERE "CONFLICTID" = ANY(%s)""", (conflict_ids,)) == [("active",)]


def test_a_killed_connection_mid_partition_changes_nothing_and_a_rerun_converges(data):
    warehouse, postgres = data
    _, visits, rows = _conflict_visits(warehouse, prefix_rank=2)
    ids = ", ".join(f"'{v}'" for v in visits)
    _wh(warehouse, f"UPDATE VISITS.VISITS SET LAST_UPDATED_BY = 'Kill Test' WHERE VISIT_ID IN ({ids})")
    before = _table_digest(postgres)

    def kill(conn):
        with psycopg.connect(postgres.dsn, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))

    with pytest.raises(SyncError) as err:
        _detect_and_sync(warehouse, postgres, hook=kill)
    assert "Kill Test" not in str(err.value)
    assert _table_digest(postgres) == before
    result = sync(warehouse, postgres, PREFIXES, AS_OF)
    assert (result["rows_changed"], result["rows_inserted"], result["rows_resolved"]) == (rows, 0, 0)
    assert sync(warehouse, postgres, PREFIXES, AS_OF)["rows_written"] == 0


def test_a_dimension_change_reaches_every_row_of_that_dimension(data):
    warehouse, postgres = data
    provider_id = _wh(warehouse, "SELECT PROVIDER_ID FROM VISITS.PROVIDERS WHERE PROVIDER_KEY = 0")[0][0]
    rows = _pg(postgres, """SELECT COUNT(*) FROM public.conflictvisitmaps
                            WHERE "ProviderID" = %s AND "ConflictStatus" = 'active'""", (provider_id,))[0][0]
    assert rows > 0
    _wh(warehouse, "UPDATE VISITS.PROVIDERS SET PROVIDER_NAME = 'Agency Renamed' WHERE PROVIDER_KEY = 0")
    found, result = _detect_and_sync(warehouse, postgres)
    # a dimension change flips the fingerprint of every prefix that has visits
    assert found["prefixes_changed"] == _wh(warehouse, f"SELECT COUNT(*) FROM {STATE_TABLE} WHERE VISITS > 0")[0][0]
    assert (result["rows_changed"], result["rows_inserted"], result["rows_resolved"]) == (rows, 0, 0)


def test_driver_errors_are_reduced_to_class_and_code():
    with pytest.raises(SyncError) as err:
        with sanitized("applying"):
            raise psycopg.errors.UniqueViolation('duplicate key\nDETAIL: Key ("SSN")=(123456789) already exists')
    assert "123456789" not in str(err.value) and "UniqueViolation" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
