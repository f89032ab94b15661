"""The warehouse resource against the embedded Snowflake emulator (real connector over HTTP)."""

from __future__ import annotations

import multiprocessing

import pandas as pd
import pytest

from resources.snowflake_emulator import ensure_emulator, stop_emulator
from resources.warehouse import Warehouse, bulk_load, warehouse_from_env


def _frame(start: int, count: int) -> pd.DataFrame:
    ids = range(start, start + count)
    return pd.DataFrame(
        {"ID": list(ids), "NAME": [f"n{i}" for i in ids], "PAYLOAD": [f'{{"v": {i}}}' for i in ids]}
    )


LOAD_COLUMNS = {"ID": "$1:ID", "NAME": "$1:NAME", "PAYLOAD": "PARSE_JSON($1:PAYLOAD)"}


def _create(cur, table: str) -> None:
    cur.execute("CREATE SCHEMA IF NOT EXISTS WH_TEST")
    cur.execute(f"CREATE OR REPLACE TABLE {table} (ID INT, NAME VARCHAR, PAYLOAD VARIANT)")


def test_bulk_load_then_merge_and_read_back(warehouse):
    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        _create(cur, "WH_TEST.TARGET")
        _create(cur, "WH_TEST.STAGING")
        assert bulk_load(cur, "WH_TEST.TARGET", _frame(0, 5000), LOAD_COLUMNS) == 5000
        # the staging rows overlap the target on 2500..4999 and add 5000..7499
        assert bulk_load(cur, "WH_TEST.STAGING", _frame(2500, 5000).assign(NAME="changed"), LOAD_COLUMNS) == 5000
        cur.execute(
            "MERGE INTO WH_TEST.TARGET t USING WH_TEST.STAGING s ON t.ID = s.ID "
            "WHEN MATCHED THEN UPDATE SET NAME = s.NAME, PAYLOAD = s.PAYLOAD "
            "WHEN NOT MATCHED THEN INSERT (ID, NAME, PAYLOAD) VALUES (s.ID, s.NAME, s.PAYLOAD)"
        )
        cur.execute(
            "SELECT COUNT(*), COUNT(DISTINCT ID), SUM(IFF(NAME = 'changed', 1, 0)), "
            "MAX(PAYLOAD:v::INT) FROM WH_TEST.TARGET"
        )
        assert cur.fetchone() == (7500, 7500, 5000, 7499)


def _load_in_child(start: int) -> None:
    with warehouse_from_env().get_connection() as conn:
        bulk_load(conn.cursor(), "WH_TEST.SHARED", _frame(start, 2000), LOAD_COLUMNS)


def test_two_processes_write_at_the_same_time(warehouse):
    with warehouse.get_connection() as conn:
        _create(conn.cursor(), "WH_TEST.SHARED")
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=_load_in_child, args=(start,)) for start in (0, 10_000)]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
    assert [child.exitcode for child in children] == [0, 0]
    with warehouse.get_connection() as conn:
        assert conn.cursor().execute("SELECT COUNT(DISTINCT ID) FROM WH_TEST.SHARED").fetchone() == (4000,)


def test_data_survives_an_emulator_restart(warehouse):
    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        _create(cur, "WH_TEST.DURABLE")
        bulk_load(cur, "WH_TEST.DURABLE", _frame(0, 123), LOAD_COLUMNS)
    assert stop_emulator()
    ensure_emulator()
    with warehouse.get_connection() as conn:
        assert conn.cursor().execute("SELECT COUNT(*) FROM WH_TEST.DURABLE").fetchone() == (123,)


def test_a_raising_body_rolls_back_and_releases_the_connection(warehouse):
    with warehouse.get_connection() as conn:
        _create(conn.cursor(), "WH_TEST.TXN")
    manual = Warehouse(**{**warehouse._resolved_config_dict, "autocommit": False})
    seen = []
    with pytest.raises(RuntimeError, match="boom"):
        with manual.get_connection() as conn:
            seen.append(conn)
            conn.cursor().execute("INSERT INTO WH_TEST.TXN (ID, NAME) VALUES (1, 'lost')")
            raise RuntimeError("boom")
    assert seen[0].is_closed()
    with warehouse.get_connection() as conn:
        assert conn.cursor().execute("SELECT COUNT(*) FROM WH_TEST.TXN").fetchone() == (0,)


def test_empty_frame_loads_nothing(warehouse):
    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        _create(cur, "WH_TEST.EMPTY")
        assert bulk_load(cur, "WH_TEST.EMPTY", _frame(0, 0), LOAD_COLUMNS) == 0


def test_a_write_conflict_is_an_error_not_a_hang(warehouse):
    """Two open transactions updating the same row: the second gets an error back at once."""
    import snowflake.connector

    with warehouse.get_connection() as setup:
        _create(setup.cursor(), "WH_TEST.CONFLICT")
        bulk_load(setup.cursor(), "WH_TEST.CONFLICT", _frame(0, 1), LOAD_COLUMNS)
    with warehouse.get_connection() as first, warehouse.get_connection() as second:
        first.cursor().execute("BEGIN")
        first.cursor().execute("UPDATE WH_TEST.CONFLICT SET NAME = 'first' WHERE ID = 0")
        second.cursor().execute("BEGIN")
        with pytest.raises(snowflake.connector.errors.Error):
            second.cursor().execute("UPDATE WH_TEST.CONFLICT SET NAME = 'second' WHERE ID = 0")
        first.cursor().execute("COMMIT")
