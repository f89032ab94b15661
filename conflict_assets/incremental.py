"""Incremental detection: for a changed prefix with valid per-visit state, redo only what changed visits touch.

The per-visit state (VISIT_STATE) holds each visit's two row hashes, its detection fields, its VisitDate and
its successor in its caregiver's sequence, and its stamp. The changed visits (added, removed, changed) come
from a watermark: only visits stamped since the prefix's last run (LAST_UPDATED_DATE, with a lookback, less
those the state holds with that stamp), visits the window newly covers and state rows it no longer covers
are read and compared (changed_visits.sql). The fingerprint query
measured the prefix's exact row count and hash sums; where the state plus the found changes does not add up
to them (a deletion, an SSN moved to another prefix, an edit that kept its old stamp) the prefix is rescanned:
every visit of its window hashed and diffed. Then:
- time overlaps are re-paired only for visits whose detection fields changed (their old rows go, their pairs
  with every nearby visit of the same caregiver are computed anew);
- travel pairs are re-evaluated only where the successor relation changed or a member changed;
- result rows, state rows and the change log are written only where they differ, with the prefix state, in
  ONE warehouse transaction per batch.
The outcome equals a full recompute (tests/test_conflict_incremental.py checks it on random edit sequences,
stamped and not, and on a moved window).
"""

from __future__ import annotations

import datetime as dt
import time

from conflict_assets.detection import (
    BAD_INPUT_COUNTS, CHANGES_TABLE, CONFLICT_COUNTS, DETECTION_FIELDS, PREFIX_STATE, PRIMES, RESULT_TABLE,
    STATE_NAMES, SUMS, VISIT_STATE, DetectionParams, Probe, _batches, add_counts, conflict_rows, detection_select,
    fill, literal_rows, lookup_keys, next_seq, row_hash, rows_by_prefix, run_statements, stage_prefix_rows,
    stored_prefix_state, write_prefix_state,
)
from conflict_assets.pairs import bad_input_counts, result_rows, travel_pairs
from conflict_assets.source_schema import prefix_filter, sql_file, visit_rows_sql
from resources.warehouse import transaction

# No pair join over all visits here: the scans are linear, so the sensor's one run over every prefix (~5.6M
# visits at the reference scale) is one batch, and its fixed cost is paid once.
BATCH_VISITS = 8_000_000
LOG_RETENTION_MS = 7 * 86_400_000  # a sync further behind than this compares its whole prefix instead
# Rows committed late with an older LAST_UPDATED_DATE than the watermark are still found within this; later
# ones are caught by the sums check (a rescan of their prefix), so it trades speed, never correctness. Rows
# the state already holds with their stamp (VISIT_STATE.STAMP) are not re-read, so a long lookback is cheap
# even when runs follow each other within it.
WATERMARK_LOOKBACK_SECONDS = 2 * 3600
# Successors are recomputed within this many days of each change (incremental.sql, step 4). Wider reads more
# visits per change; narrower sends more caregivers (a gap this long next to a change) to a whole-sequence read.
ISLAND_DAYS = 6
# Above this share of a batch's visits with changed detection fields, every affected caregiver is read whole at
# once instead of by islands (measured at the reference scale: islands 1.9 s at 1% and 2.9 s at 2% against
# 3.4 s whole; at 10% islands cover most sequences and cost 8.8 s against 3.6 s whole).
DENSE_SHARE = 0.03
SUCCESSORS = "-- @successors"
# what CF_CAND keeps of a candidate's state row: the hashes the diff needs and what CF_OLD takes (the old
# detection fields, position and successor), so the state is read once for both
STORED_COLUMNS = ["H1", "H2", *DETECTION_FIELDS, "E0", "TRAVEL_OK", "NEXT_ID"]
# per prefix: what the changed visits add to the state's sums (CF_TOUCH, changed_visits.sql)
TOUCH_DELTAS = ("SELECT PREFIX, SUM(D_ROWS) AS SUM_COPIES, SUM(D_H1) AS SUM_H1, SUM(D_H2) AS SUM_H2 "
                "FROM CF_TOUCH GROUP BY PREFIX")


def _fill(sql: str, prefixes: list[str], as_of: dt.date) -> str:
    """The placeholders every incremental statement shares."""
    window = "DATEADD(year, -2, TO_DATE('{as_of}')) AND DATEADD(day, 45, TO_DATE('{as_of}'))"
    return (lookup_keys(sql).replace("{in_window}", f"v.VISIT_DATE BETWEEN {window}").replace("{window}", window)
            .replace("{h1}", row_hash(PRIMES[0])).replace("{h2}", row_hash(PRIMES[1]))
            .replace("{stored_columns}", ", ".join(f"s.{c}" for c in STORED_COLUMNS))
            .replace("{as_of}", as_of.isoformat())
            .replace("{lookback_seconds}", str(WATERMARK_LOOKBACK_SECONDS))
            .replace("{island_days}", str(ISLAND_DAYS))
            .replace("{island_offsets}", ", ".join(f"({k})" for k in range(-ISLAND_DAYS, ISLAND_DAYS + 1)))
            .replace("{visit_prefix_filter}", prefix_filter(prefixes))
            .replace("{visit_state_table}", VISIT_STATE)
            .replace("{prefix_state_table}", PREFIX_STATE)
            .replace("{result_table}", RESULT_TABLE)
            .replace("{fs}", prefix_filter(prefixes, "s.PREFIX"))
            .replace("{f}", prefix_filter(prefixes, "PREFIX")))


def _sql(prefixes: list[str], as_of: dt.date, params: DetectionParams) -> str:
    fields = [n for n in STATE_NAMES if n != "NEXT_ID"]
    sql = (sql_file("incremental.sql")
           .replace("{visit_state}", sql_file("visit_state.sql"))
           .replace("{travel_pairs}", travel_pairs(
               "(SELECT a.* FROM CF_AFTER a LEFT JOIN CF_DET c ON c.PREFIX = a.PREFIX AND c.VISIT_ID = a.VISIT_ID "
               "LEFT JOIN CF_DET n ON n.PREFIX = a.PREFIX AND n.VISIT_ID = a.NEXT_ID WHERE a.CERTAIN AND "
               "(c.VISIT_ID IS NOT NULL OR n.VISIT_ID IS NOT NULL OR a.NEXT_ID IS DISTINCT FROM a.OLD_NEXT)) s"))
           .replace("{result_rows}", result_rows("CF_OVERLAPS", "CF_TRAVEL"))
           .replace("{same_detection_fields}",
                    " AND ".join(f"n.{c} IS NOT DISTINCT FROM o.{c}" for c in DETECTION_FIELDS))
           .replace("{bad_input_deltas}", bad_input_counts("W"))
           .replace("{n_fields}", ", ".join(f"n.{c}" for c in fields))
           .replace("{s_fields}", ", ".join(f"s.{c}" for c in fields))
           .replace("{fields}", ", ".join(fields)))
    return fill(_fill(sql, prefixes, as_of), params)


def _rows(prefixes: list[str], as_of: dt.date, ids: str) -> str:
    """Detection's columns of the prefixes' visits whose VisitID ``ids`` selects (every copy, latest kept)."""
    return visit_rows_sql(prefixes, as_of, detection_select(), extra=f"v.VISIT_ID IN ({ids})", dimensions=False)


def _batch_candidates(cursor, prefixes: list[str]) -> str:
    """Stamped since the batch's oldest watermark (less the lookback), or outside the window of a prefix's
    last run for the batch's widest windows: a superset of every prefix's own test, as literals, so the
    source scan filters on them (a join with PREFIX_STATE cannot be pushed into it)."""
    cursor.execute(f"SELECT MIN(WATERMARK), MIN(AS_OF), MAX(AS_OF) FROM {PREFIX_STATE} "
                   f"WHERE {prefix_filter(prefixes, 'PREFIX')}")
    since, first, last = cursor.fetchone()
    if first is None:
        return "TRUE"
    # a prefix without a watermark finds no visit by stamp (its own test is NULL), so it needs no bound here
    stamped = ("FALSE" if since is None else "v.LAST_UPDATED_DATE >= DATEADD(second, "
               f"{int(since) - WATERMARK_LOOKBACK_SECONDS}, TO_TIMESTAMP_NTZ('1970-01-01 00:00:00'))")
    return (f"{stamped} OR v.VISIT_DATE < DATEADD(year, -2, TO_DATE('{last.isoformat()}')) "
            f"OR v.VISIT_DATE > DATEADD(day, 45, TO_DATE('{first.isoformat()}'))")


def _plus(stored: dict[str, int], deltas: dict[str, dict[str, int]], prefix: str, names: list[str]) -> dict:
    return {n: stored[n] + deltas.get(prefix, {}).get(n, 0) for n in names}


def find_changed_visits(cursor, prefixes: list[str], found: Probe, as_of: dt.date, summary: dict,
                        stored: dict) -> dict[str, dict[str, int]]:
    """CF_TOUCH for the batch: by watermark, then a full rescan of the prefixes whose sums do not add up.
    Returns each prefix's sums once the changes are applied (the stored ones plus CF_TOUCH's deltas)."""

    def sums_after(batch: list[str]) -> dict[str, dict[str, int]]:
        cursor.execute(TOUCH_DELTAS)
        deltas = rows_by_prefix(cursor)
        return {p: _plus(stored[p], deltas, p, SUMS) for p in batch}

    # the probe's latest stamp per prefix, the horizon of the visits read by stamp
    latest = literal_rows([(p, found.latest[p]) for p in prefixes], [("PREFIX", "VARCHAR"), ("LATEST", "BIGINT")])
    run_statements(cursor, _fill(sql_file("changed_visits.sql"), prefixes, as_of)
                   .replace("{probe_latest}", latest)
                   .replace("{batch_candidates}", _batch_candidates(cursor, prefixes))
                   .replace("{candidate_rows}", _rows(prefixes, as_of, "SELECT CAND_ID FROM CF_CAND")))
    totals = sums_after(prefixes)
    missed = [p for p in prefixes if tuple(totals[p].values()) != found.sums[p]]
    if missed:
        for table in ("CF_TOUCH", "CF_CAND_ROWS", "CF_CAND"):
            cursor.execute(f"DELETE FROM {table} WHERE {prefix_filter(missed, 'PREFIX')}")
        run_statements(cursor, _fill(sql_file("changed_visits_rescan.sql"), missed, as_of)
                       .replace("{touched_rows}", _rows(missed, as_of, "SELECT VISIT_ID FROM CF_TOUCH WHERE PRESENT")))
        totals.update(sums_after(missed))
    summary["prefixes_by_watermark"] += len(prefixes) - len(missed)
    summary["prefixes_rescanned"] += len(missed)
    return totals


def detect_incremental(cursor, prefixes: list[str], found: Probe, as_of: dt.date, params: DetectionParams,
                       summary: dict) -> None:
    for batch in _batches(prefixes, found.current, BATCH_VISITS):
        _batch(cursor, batch, found, as_of, params, summary)


def repair(cursor, prefixes: list[str], found: Probe, as_of: dt.date, params: DetectionParams) -> None:
    """incremental.sql: up to the changed visits' positions, then successors by islands, or whole sequences
    when the changes are dense, and the rest."""
    head, tail = _sql(prefixes, as_of, params).split(SUCCESSORS, 1)
    run_statements(cursor, head + ";\nSELECT COUNT(*) FROM CF_DET")
    islands = cursor.fetchone()[0] <= DENSE_SHARE * sum(found.current[p][1] for p in prefixes)
    run_statements(cursor, SUCCESSORS + tail.replace("{islands}", "TRUE" if islands else "FALSE"))


def _batch(cursor, prefixes: list[str], found: Probe, as_of: dt.date, params: DetectionParams,
           summary: dict) -> None:
    stored = stored_prefix_state(cursor, prefixes)
    totals = find_changed_visits(cursor, prefixes, found, as_of, summary, stored)
    repair(cursor, prefixes, found, as_of, params)
    bad_input = rows_by_prefix(cursor)
    cursor.execute(f"SELECT PREFIX, {', '.join(CONFLICT_COUNTS)} FROM CF_COUNTS")
    conflicts = rows_by_prefix(cursor)
    aggregates = {p: {**totals[p], **_plus(stored[p], bad_input, p, BAD_INPUT_COUNTS),
                      **_plus(stored[p], conflicts, p, CONFLICT_COUNTS)} for p in prefixes}
    add_counts(summary, aggregates)
    read, touched, repaired, written, around, whole = cursor.execute(
        "SELECT (SELECT COUNT(*) FROM CF_CAND_ROWS), (SELECT COUNT(*) FROM CF_TOUCH), (SELECT COUNT(*) FROM CF_DET), "
        "(SELECT COUNT(*) FROM CF_DEL) + (SELECT COUNT(*) FROM CF_ADD), "
        "(SELECT COUNT(DISTINCT SSN) FROM CF_DAYS WHERE SSN NOT IN (SELECT SSN FROM CF_WHOLE)), "
        "(SELECT COUNT(*) FROM CF_WHOLE)").fetchone()
    summary["visits_read"] += int(read)
    summary["visits_changed"] += int(touched)
    summary["visits_repaired"] += int(repaired)
    summary["conflict_rows_written"] += int(written)
    summary["sequences_by_islands"] += int(around)
    summary["sequences_read_whole"] += int(whole)

    cutoff = int(time.time() * 1000) - LOG_RETENTION_MS
    rows = [(p, *found.current[p], conflict_rows(aggregates[p]), found.basis, next_seq(stored[p]["SEQ"]),
             max(stored[p]["LOG_FROM"], cutoff), found.watermarks[p], as_of, aggregates[p]) for p in prefixes]
    f = prefix_filter(prefixes, "PREFIX")
    names = ", ".join(STATE_NAMES)
    stage_prefix_rows(cursor, rows)
    with transaction(cursor):
        cursor.execute(f"DELETE FROM {RESULT_TABLE} USING CF_DEL WHERE {RESULT_TABLE}.PREFIX = CF_DEL.PREFIX "
                       f"AND {RESULT_TABLE}.CONFLICTID = CF_DEL.CONFLICTID AND {RESULT_TABLE}.VISIT_ID = CF_DEL.VISIT_ID")
        cursor.execute(f"INSERT INTO {RESULT_TABLE} SELECT PREFIX, CONFLICTID, CONFLICT_TYPE, VISIT_ID, OTHER_VISIT_ID, "
                       "OVERLAP_SECONDS, GAP_SECONDS, DISTANCE_KM, CURRENT_TIMESTAMP()::TIMESTAMP_NTZ FROM CF_ADD")
        cursor.execute(lookup_keys(f"DELETE FROM {VISIT_STATE} s USING CF_STATE_KEYS k WHERE {{same_visit:k:s}}"))
        cursor.execute(f"INSERT INTO {VISIT_STATE} ({names}) SELECT {names} FROM CF_STATE_NEW")
        cursor.execute(f"INSERT INTO {CHANGES_TABLE} SELECT l.PREFIX, s.SEQ, l.VISIT_ID FROM CF_LOG l "
                       "JOIN CF_PREFIX_ROWS s ON s.PREFIX = l.PREFIX")
        cursor.execute(f"DELETE FROM {CHANGES_TABLE} WHERE {f} AND SEQ <= {cutoff}")
        write_prefix_state(cursor, prefixes)
