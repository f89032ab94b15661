"""Staged, idempotent loads: every table is written once per run.

All rows of a run for one table go to a session-temporary staging table with one bulk load
(PUT Parquet + COPY INTO); then ONE MERGE per table upserts them on the natural key, de-duplicated
in SQL (the first row per key in the table's preference order wins: latest ACCEPTED_DATE, then
FETCHED_AT/LOADED_AT, then the latest fetched within the run).

Only rows whose values differ are written (bookkeeping timestamps aside), and the symbols whose rows
changed are reported, so the assets materialize only what changed.

Why a single MERGE per table rather than BEGIN / DELETE / INSERT / COMMIT: one statement is atomic
on its own, so a run killed at any point (even SIGKILL) leaves each table exactly as before or as
after its MERGE, and leaves no open transaction behind. A killed multi-statement transaction keeps
its locks until the server times the session out (hours on Snowflake; until restart on the
emulator), blocking the retry. Tables are merged in a fixed order and FETCH_LOG last, so a run
killed between tables is simply redone by the next run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from financial_assets.raw.schema import Table
from resources.warehouse import bulk_load

SEQ = "LOAD_SEQ"  # staging-only tie-breaker: later rows of the same run win over earlier ones


# when a row was fetched is not a change of the row
BOOKKEEPING = ("FETCHED_AT", "LOADED_AT")


@dataclass
class Staged:
    table: Table
    staging: str
    rows: int


@dataclass
class Written:
    rows: int
    symbols: set[str]  # symbols with at least one new or changed row


def _before_merge(table: Table) -> None:
    """Hook before each table's MERGE (a fault-injection point for tests)."""


def stage(cursor, table: Table, frame: pd.DataFrame) -> Staged:
    """Bulk load ``frame`` into a temporary staging table shaped like ``table``; returns it staged."""
    staging = f"STG_{table.name}"
    if frame.empty:  # nothing to merge: no statement at all (each one is a round trip on Snowflake)
        return Staged(table, staging, 0)
    types = dict(table.columns)
    cols = ", ".join(f"{c} {types[c].replace(' NOT NULL', '')}" for c in table.column_names)
    cursor.execute(f"CREATE OR REPLACE TEMPORARY TABLE {staging} ({cols}, {SEQ} INT)")
    frame = frame.reindex(columns=table.column_names).copy()
    frame[SEQ] = range(len(frame))
    mapping = {c: (f"PARSE_JSON($1:{c})" if types.get(c) == "VARIANT" else f"$1:{c}") for c in frame.columns}
    return Staged(table, staging, bulk_load(cursor, staging, frame, mapping))


def _deduplicated(table: Table, staging: str) -> str:
    keys = ", ".join(table.key)
    return (f"SELECT {', '.join(table.column_names)} FROM {staging} "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY {table.order_by}, {SEQ} DESC) = 1")


def _differs(table: Table) -> str:
    compared = [c for c in table.column_names if c not in table.key and c not in BOOKKEEPING]
    return "(" + " OR ".join(f"t.{c} IS DISTINCT FROM s.{c}" for c in compared) + ")"


def _match(table: Table) -> str:
    return " AND ".join(f"t.{k} = s.{k}" for k in table.key)


def changed_symbols_sql(table: Table, staging: str) -> str:
    return (f"SELECT DISTINCT s.SYMBOL FROM ({_deduplicated(table, staging)}) s "
            f"LEFT JOIN {table.qualified} t ON {_match(table)} WHERE t.{table.key[0]} IS NULL OR {_differs(table)}")


def merge_sql(table: Table, staging: str) -> str:
    cols = table.column_names
    updates = ", ".join(f"{c} = s.{c}" for c in cols if c not in table.key)
    return (f"MERGE INTO {table.qualified} t USING ({_deduplicated(table, staging)}) s ON {_match(table)} "
            f"WHEN MATCHED AND {_differs(table)} THEN UPDATE SET {updates} "
            f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols)}) VALUES ({', '.join('s.' + c for c in cols)})")


def merge_staged(cursor, staged: list[Staged]) -> dict[str, Written]:
    """One atomic statement per table: MERGE on the natural key (INSERT for key-less logs).

    Returns, per table, the rows inserted or updated and the symbols they belong to.
    """
    written: dict[str, Written] = {}
    for item in staged:
        _before_merge(item.table)
        if item.rows == 0:
            written[item.table.name] = Written(0, set())
            continue
        if item.table.key:
            symbols = {r[0] for r in cursor.execute(changed_symbols_sql(item.table, item.staging)).fetchall()}
            cursor.execute(merge_sql(item.table, item.staging))
            inserted, updated = cursor.fetchone()[:2]
            written[item.table.name] = Written(int(inserted) + int(updated), symbols)
        else:
            cols = ", ".join(item.table.column_names)
            cursor.execute(f"INSERT INTO {item.table.qualified} ({cols}) SELECT {cols} FROM {item.staging}")
            written[item.table.name] = Written(int(cursor.fetchone()[0]), set())
    return written


def load_tables(cursor, frames: list[tuple[Table, pd.DataFrame]]) -> dict[str, Written]:
    """Stage every frame (bulk loads), then merge them in the given order."""
    staged = [stage(cursor, table, frame) for table, frame in frames]
    return merge_staged(cursor, staged)
