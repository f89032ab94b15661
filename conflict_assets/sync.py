"""Apply detected conflicts to PostgreSQL's conflictvisitmaps for a set of SSN prefixes, only what changed.

Warehouse side: one query reads the prefixes' fingerprints (computed by detection in one query over all of
them); prefixes whose fingerprint equals the PostgreSQL sync state are skipped. A prefix whose PostgreSQL
state names a change sequence the warehouse change log still covers is synced incrementally: only the
visits logged since (VISIT_CHANGES), their conflict links and their 98 columns are fetched. Other changed
prefixes are compared whole: all their links, and the 98 columns of only the visits in a conflict (a
semi-join in the warehouse either way). PostgreSQL side, in ONE transaction: binary COPY into temp staging
tables, ANALYZE their key columns, set-based resolve / UPDATE (IS DISTINCT FROM) / INSERT, and the sync state.
A failure anywhere rolls everything back, so a prefix is applied wholly or not at all.

Nothing here logs or raises an SSN: errors are reduced to their class and SQLSTATE/errno, because driver
messages (PostgreSQL DETAIL lines, warehouse conversion errors) can quote row values.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.compute as pc

from conflict_assets.columns import COLUMNS, NAMES
from conflict_assets.detection import (
    CHANGES_TABLE, PREFIX_STATE, RESULT_TABLE, STATE_TABLE, literal_rows, statements_from_text,
)
from conflict_assets.source_schema import prefix_filter, sql_file, visit_rows_sql

_COPY_TYPE = {"real": "float4", "bool": "bool", "int8": "int8", "uuid": "uuid", "date": "date",
              "timestamp": "timestamp"}


class SyncError(RuntimeError):
    """A sanitised failure: which step, which error class and code; never row values."""


@contextmanager
def sanitized(step: str) -> Iterator[None]:
    try:
        yield
    except SyncError:
        raise
    except Exception as exc:  # noqa: BLE001 - every driver error is reduced the same way
        code = getattr(exc, "sqlstate", None) or getattr(exc, "errno", None) or "-"
        raise SyncError(f"{step} failed: {type(exc).__module__}.{type(exc).__name__} (code {code})") from None


def _copy_type(pg_type: str) -> str:
    return _COPY_TYPE.get(pg_type, "text")


def _sql() -> list[str]:
    quoted = [f'"{n}"' for n in NAMES]
    return statements_from_text(
        sql_file("sync.sql")
        .replace("{stage_columns}", ", ".join(f'"{n}" {t}' for n, t, _ in COLUMNS))
        .replace("{target_columns}", ", ".join(quoted))
        .replace("{insert_columns}", ", ".join(quoted))
        .replace("{source_columns}", ", ".join(f"s.{q}" for q in quoted))
        .replace("{compare_target}", ", ".join(f"t.{q}" for q in quoted))
        .replace("{compare_source}", ", ".join(f"s.{q}" for q in quoted))
    )


def _arrow(cursor) -> pa.Table | None:
    table = cursor.fetch_arrow_all()
    return table if table is not None and table.num_rows else None


def _column_values(table: pa.Table, name: str, pg_type: str) -> list:
    col = table.column(name)
    if pg_type == "timestamp":  # epoch seconds, see columns.py
        return pc.cast(pc.cast(col, pa.int64()), pa.timestamp("s")).to_pylist()
    if pg_type == "uuid":
        return [None if v is None else uuid.UUID(v) for v in col.to_pylist()]
    if pg_type == "int8":
        return pc.cast(col, pa.int64()).to_pylist()
    if pg_type == "real":
        return pc.cast(col, pa.float64()).to_pylist()
    if pg_type == "date" and not pa.types.is_date(col.type):
        return pc.cast(col, pa.date32()).to_pylist()
    return col.to_pylist()


def _copy(cur, table: str, names: list[str], types: list[str], columns: list[list]) -> None:
    cols = ", ".join(f'"{n}"' for n in names)
    with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in zip(*columns):
            copy.write_row(row)


def warehouse_state(wcur, prefixes: list[str]) -> dict[str, tuple]:
    """Per prefix: (fingerprint, visits, conflict rows, seq, log_from); seq/log_from are None unless the
    change log belongs to the stored result (same fingerprint)."""
    wcur.execute(f"SELECT d.PREFIX, d.FINGERPRINT, d.VISITS, d.CONFLICT_ROWS, p.SEQ, p.LOG_FROM FROM {STATE_TABLE} d "
                 f"LEFT JOIN {PREFIX_STATE} p ON p.PREFIX = d.PREFIX AND p.FINGERPRINT = d.FINGERPRINT "
                 f"WHERE {prefix_filter(prefixes, 'd.PREFIX')}")
    return {p: (fp, int(v), int(r), None if s is None else int(s), None if f is None else int(f))
            for p, fp, v, r, s, f in wcur.fetchall()}


def synced_state(pg_conn, prefixes: list[str]) -> dict[str, tuple[str, int | None]]:
    rows = pg_conn.execute("SELECT prefix, fingerprint, seq FROM public.conflict_sync_state WHERE prefix = ANY(%s)",
                           (prefixes,)).fetchall()
    return {p: (fp, seq) for p, fp, seq in rows}


def incremental_since(state: tuple, synced: tuple | None) -> int | None:
    """The synced sequence to read the change log from, or None: compare the whole prefix."""
    seq, log_from = state[3], state[4]
    done = synced[1] if synced else None
    if seq is None or done is None or not log_from <= done <= seq:
        return None
    return done


def sync(warehouse, postgres, prefixes: list[str], as_of: dt.date, on_pg_transaction=None) -> dict:
    """Sync the prefixes; returns counts, seconds and rows/s, plus the per-prefix fingerprints applied.

    ``on_pg_transaction(conn)`` is a test hook called inside the open PostgreSQL transaction after the
    staging load, before the data statements.
    """
    started = time.monotonic()
    counts = {"prefixes": len(prefixes), "prefixes_skipped": 0, "prefixes_incremental": 0, "warehouse_queries": 0,
              "rows_fetched": 0,
              "rows_compared": 0, "rows_changed": 0, "rows_inserted": 0, "rows_resolved": 0}
    with warehouse.get_connection() as wconn:
        wcur = wconn.cursor()
        with sanitized("reading detection state"):
            state = warehouse_state(wcur, prefixes)
            counts["warehouse_queries"] += 1
        missing = [p for p in prefixes if p not in state]
        if missing:
            raise SyncError(f"{len(missing)} prefixes have no detection result yet; materialize detection first")
        with sanitized("reading sync state"), postgres.connection() as pg:
            done = synced_state(pg, prefixes)
        changed = sorted(p for p in prefixes if done.get(p, (None,))[0] != state[p][0])
        since = {p: incremental_since(state[p], done.get(p)) for p in changed}
        full = [p for p in changed if since[p] is None]
        counts["prefixes_skipped"] = len(prefixes) - len(changed)
        counts["prefixes_incremental"] = len(changed) - len(full)
        links = visits = touched = None
        if changed:
            with sanitized("fetching conflicts"):
                links, visits, touched = _fetch(wcur, changed, full, since, as_of, counts)
    fetched_at = time.monotonic()
    if changed:
        counts["rows_fetched"] = sum(t.num_rows for t in (links, visits, touched) if t is not None)
        _apply(postgres, changed, full, state, links, visits, touched, counts, on_pg_transaction)
    seconds = time.monotonic() - started
    written = counts["rows_changed"] + counts["rows_inserted"] + counts["rows_resolved"]
    counts.update(seconds=round(seconds, 3), fetch_seconds=round(fetched_at - started, 3),
                  rows_written=written, rows_per_second=round(counts["rows_compared"] / seconds, 1) if seconds else 0)
    counts["fingerprints"] = {p: state[p][0] for p in prefixes}
    return counts


def _fetch(wcur, changed: list[str], full: list[str], since: dict, as_of: dt.date, counts: dict):
    """Links and visit rows for the whole of ``full`` prefixes and for the logged visits of the others."""
    conditions = [prefix_filter(full, "PREFIX")] if full else []
    touched = None
    incremental = [(p, since[p]) for p in changed if since[p] is not None]
    if incremental:
        wcur.execute("CREATE OR REPLACE TEMPORARY TABLE CF_SYNC_TOUCH AS SELECT DISTINCT c.PREFIX, c.VISIT_ID "
                     f"FROM {CHANGES_TABLE} c JOIN ({literal_rows(incremental, [('P', 'VARCHAR'), ('S', 'BIGINT')])}) w "
                     "ON c.PREFIX = w.P AND c.SEQ > w.S")
        wcur.execute("SELECT PREFIX, VISIT_ID FROM CF_SYNC_TOUCH")
        touched = _arrow(wcur)
        counts["warehouse_queries"] += 2
        conditions.append("PREFIX || VISIT_ID IN (SELECT PREFIX || VISIT_ID FROM CF_SYNC_TOUCH)")
    where = " OR ".join(f"({c})" for c in conditions)
    wcur.execute(f"SELECT PREFIX, CONFLICTID, CONFLICT_TYPE, VISIT_ID, OTHER_VISIT_ID FROM {RESULT_TABLE} WHERE {where}")
    links = _arrow(wcur)
    wcur.execute(visit_rows_sql(changed, as_of, extra=f"v.VISIT_ID IN (SELECT VISIT_ID FROM {RESULT_TABLE} WHERE {where})"))
    counts["warehouse_queries"] += 2
    return links, _arrow(wcur), touched


def _known_rows(cur) -> float:
    """The row count PostgreSQL's statistics hold for the table (0 when it was never analyzed)."""
    cur.execute("SELECT reltuples FROM pg_class WHERE oid = 'public.conflictvisitmaps'::regclass")
    return max(float(cur.fetchone()[0]), 0.0)


def _apply(postgres, changed, full, state, links, visits, touched, counts, hook) -> None:
    stmts = _sql()
    (create_visits, create_links, create_touched, analyze_visits, analyze_links, analyze_touched, resolve,
     resolve_touched, update, insert, analyze, upsert_state) = stmts
    with sanitized("applying to PostgreSQL"), postgres.connection() as pg:
        with pg.cursor() as cur:
            cur.execute(create_visits)
            cur.execute(create_links)
            cur.execute(create_touched)
            if visits is not None:
                _copy(cur, "cf_stage_visits", NAMES, [_copy_type(t) for _, t, _ in COLUMNS],
                      [_column_values(visits, n, t) for n, t, _ in COLUMNS])
            if links is not None:
                _copy(cur, "cf_stage_links", ["CONFLICTID", "VisitID", "ConflictType", "ConflictVisitID", "SSNPrefix"],
                      ["text", "uuid", "text", "uuid", "text"],
                      [links.column("CONFLICTID").to_pylist(), _column_values(links, "VISIT_ID", "uuid"),
                       links.column("CONFLICT_TYPE").to_pylist(), _column_values(links, "OTHER_VISIT_ID", "uuid"),
                       links.column("PREFIX").to_pylist()])
            if touched is not None:
                _copy(cur, "cf_stage_touched", ["VisitID", "SSNPrefix"], ["uuid", "text"],
                      [_column_values(touched, "VISIT_ID", "uuid"), touched.column("PREFIX").to_pylist()])
            cur.execute(analyze_visits)
            cur.execute(analyze_links)
            cur.execute(analyze_touched)
            counts["rows_compared"] = links.num_rows if links is not None else 0
            if hook:
                hook(pg)
            # resolve first: rows about to be inserted can never need it
            counts["rows_resolved"] = cur.execute(resolve, {"prefixes": full}).rowcount
            if touched is not None:
                counts["rows_resolved"] += cur.execute(resolve_touched).rowcount
            counts["rows_changed"] = cur.execute(update).rowcount
            counts["rows_inserted"] = cur.execute(insert).rowcount
            grown = counts["rows_inserted"] + counts["rows_resolved"]
            if grown and grown > 0.1 * _known_rows(cur):
                cur.execute(analyze)
            cur.execute(upsert_state, {"prefixes": changed, "fingerprints": [state[p][0] for p in changed],
                                       "visits": [state[p][1] for p in changed],
                                       "rows": [state[p][2] for p in changed],
                                       "seqs": [state[p][3] for p in changed]})
