"""Incremental detection: for a changed prefix with valid per-visit state, redo only what changed visits touch.

The per-visit state (VISIT_STATE) holds each visit's two row hashes, its detection fields and its successor in
its caregiver's sequence. Diffing the hashes of the window's visits now against it gives the exact set of
added, removed and changed visits (deletions, SSN moves to another prefix and visits crossing the window edge
included, which a last-updated watermark would miss). Then:
- time overlaps are re-paired only for visits whose detection fields changed (their old rows go, their pairs
  with every nearby visit of the same caregiver are computed anew);
- travel pairs are re-evaluated only where the successor relation changed or a member changed;
- result rows, state rows and the change log are written only where they differ, with the prefix state, in
  ONE warehouse transaction per batch.
The outcome equals a full recompute (tests/test_conflict_incremental.py checks it on random edit sequences).
"""

from __future__ import annotations

import datetime as dt
import time

from conflict_assets.detection import (
    CHANGES_TABLE, DETECTION_FIELDS, PRIMES, RESULT_TABLE, STATE_NAMES, VISIT_STATE, DetectionParams,
    _batches, add_bad_input_counts, detection_select, fill, next_seq, prefix_values, row_hashes, run_statements,
    stored_sequences, write_prefix_state,
)
from conflict_assets.pairs import result_rows, travel_pairs
from conflict_assets.source_schema import prefix_filter, sql_file, visit_rows_sql
from resources.warehouse import transaction

BATCH_VISITS = 1_500_000   # no pair join over all visits here, so a whole 250-prefix run fits one batch
LOG_RETENTION_MS = 7 * 86_400_000  # a sync further behind than this compares its whole prefix instead


def _sql(prefixes: list[str], as_of: dt.date, params: DetectionParams) -> str:
    h, hs = row_hashes()
    fields = [n for n in STATE_NAMES if n != "NEXT_ID"]
    touched_rows = visit_rows_sql(prefixes, as_of, detection_select(),
                                  extra="v.VISIT_ID IN (SELECT VISIT_ID FROM CF_TOUCH WHERE PRESENT)",
                                  dimensions=False)
    sql = (sql_file("incremental.sql")
           .replace("{visit_rows_touched}", touched_rows)
           .replace("{visit_state}", sql_file("visit_state.sql"))
           .replace("{travel_pairs}", travel_pairs(
               "(SELECT a.* FROM CF_AFTER a LEFT JOIN CF_CHG c ON c.PREFIX = a.PREFIX AND c.VISIT_ID = a.VISIT_ID "
               "LEFT JOIN CF_CHG n ON n.PREFIX = a.PREFIX AND n.VISIT_ID = a.NEXT_ID "
               "WHERE c.VISIT_ID IS NOT NULL OR n.VISIT_ID IS NOT NULL) s"))
           .replace("{result_rows}", result_rows("CF_OVERLAPS", "CF_TRAVEL"))
           .replace("{same_detection_fields}",
                    " AND ".join(f"n.{c} IS NOT DISTINCT FROM o.{c}" for c in DETECTION_FIELDS))
           .replace("{n_fields}", ", ".join(f"n.{c}" for c in fields))
           .replace("{s_fields}", ", ".join(f"s.{c}" for c in fields))
           .replace("{fields}", ", ".join(fields))
           .replace("{h}", h).replace("{hs}", hs)
           .replace("{p1}", str(PRIMES[0])).replace("{p2}", str(PRIMES[1]))
           .replace("{as_of}", as_of.isoformat())
           .replace("{visit_prefix_filter}", prefix_filter(prefixes))
           .replace("{visit_state_table}", VISIT_STATE)
           .replace("{result_table}", RESULT_TABLE)
           .replace("{fs}", prefix_filter(prefixes, "s.PREFIX"))
           .replace("{f}", prefix_filter(prefixes, "PREFIX")))
    return fill(sql, params)


def detect_incremental(cursor, prefixes: list[str], current: dict, basis: str, as_of: dt.date,
                       params: DetectionParams, summary: dict) -> None:
    for batch in _batches(prefixes, current, BATCH_VISITS):
        _batch(cursor, batch, current, basis, as_of, params, summary)


def _batch(cursor, prefixes: list[str], current: dict, basis: str, as_of: dt.date, params: DetectionParams,
           summary: dict) -> None:
    run_statements(cursor, _sql(prefixes, as_of, params))
    add_bad_input_counts(cursor, summary)
    counts: dict[str, int] = {}
    for prefix, ctype, n in cursor.execute("SELECT PREFIX, CONFLICT_TYPE, N FROM CF_COUNTS").fetchall():
        counts[prefix] = counts.get(prefix, 0) + int(n)
        summary["time_overlap_conflicts" if ctype == "TIME_OVERLAP" else "travel_time_conflicts"] += int(n) // 2
    summary["conflict_rows"] += sum(counts.values())
    touched, repaired, written = cursor.execute(
        "SELECT (SELECT COUNT(*) FROM CF_TOUCH), (SELECT COUNT(*) FROM CF_DET), "
        "(SELECT COUNT(*) FROM CF_DEL) + (SELECT COUNT(*) FROM CF_ADD)").fetchone()
    summary["visits_changed"] += int(touched)
    summary["visits_repaired"] += int(repaired)
    summary["conflict_rows_written"] += int(written)

    seqs = stored_sequences(cursor, prefixes)
    cutoff = int(time.time() * 1000) - LOG_RETENTION_MS
    rows = []
    for p in prefixes:
        old_seq, old_from = seqs[p]
        rows.append((p, current[p][0], current[p][1], counts.get(p, 0), basis, next_seq(old_seq),
                     max(old_from, cutoff)))
    f = prefix_filter(prefixes, "PREFIX")
    names = ", ".join(STATE_NAMES)
    with transaction(cursor):
        cursor.execute(f"DELETE FROM {RESULT_TABLE} USING CF_DEL WHERE {RESULT_TABLE}.PREFIX = CF_DEL.PREFIX "
                       f"AND {RESULT_TABLE}.CONFLICTID = CF_DEL.CONFLICTID AND {RESULT_TABLE}.VISIT_ID = CF_DEL.VISIT_ID")
        cursor.execute(f"INSERT INTO {RESULT_TABLE} SELECT PREFIX, CONFLICTID, CONFLICT_TYPE, VISIT_ID, OTHER_VISIT_ID, "
                       "OVERLAP_SECONDS, GAP_SECONDS, DISTANCE_KM, CURRENT_TIMESTAMP()::TIMESTAMP_NTZ FROM CF_ADD")
        cursor.execute(f"DELETE FROM {VISIT_STATE} USING CF_STATE_KEYS WHERE {VISIT_STATE}.PREFIX = CF_STATE_KEYS.PREFIX "
                       f"AND {VISIT_STATE}.VISIT_ID = CF_STATE_KEYS.VISIT_ID")
        cursor.execute(f"INSERT INTO {VISIT_STATE} ({names}) SELECT {names} FROM CF_STATE_NEW")
        cursor.execute(f"INSERT INTO {CHANGES_TABLE} SELECT l.PREFIX, s.column2, l.VISIT_ID FROM CF_LOG l "
                       f"JOIN (SELECT column1, column2 FROM VALUES {prefix_values([(r[0], r[5]) for r in rows])}) s "
                       "ON s.column1 = l.PREFIX")
        cursor.execute(f"DELETE FROM {CHANGES_TABLE} WHERE {f} AND SEQ <= {cutoff}")
        write_prefix_state(cursor, rows)
