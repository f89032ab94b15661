"""Conflict detection in the warehouse for a set of SSN prefixes, skipping prefixes whose source is unchanged.

One fingerprint query covers every prefix of the run; only changed prefixes are recomputed, and their result
rows and state are replaced in one warehouse transaction (a prefix set is replaced wholly or not at all).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import asdict, dataclass

from conflict_assets.source_schema import prefix_filter, sql_file, table_columns, visit_rows_sql

log = logging.getLogger(__name__)

RESULT_TABLE = "CONFLICTS.VISIT_CONFLICTS"
STATE_TABLE = "CONFLICTS.DETECTION_STATE"
EMPTY = "empty"
BATCH_VISITS = 400_000

_SETUP = [
    "CREATE SCHEMA IF NOT EXISTS CONFLICTS",
    f"CREATE TABLE IF NOT EXISTS {RESULT_TABLE} (PREFIX VARCHAR(3), CONFLICTID VARCHAR(32), CONFLICT_TYPE VARCHAR(20),"
    " VISIT_ID VARCHAR(36), OTHER_VISIT_ID VARCHAR(36), OVERLAP_SECONDS BIGINT, GAP_SECONDS BIGINT,"
    " DISTANCE_KM FLOAT, DETECTED_AT TIMESTAMP_NTZ)",
    f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (PREFIX VARCHAR(3), FINGERPRINT VARCHAR(64), VISITS BIGINT,"
    " CONFLICT_ROWS BIGINT, DETECTED_AT TIMESTAMP_NTZ)",
]

_DETECTION_SELECT = """c.SSN AS SSN, LEFT(c.SSN, 3) AS PREFIX, v.VISIT_ID AS VISIT_ID, v.PROVIDER_KEY AS PROVIDER_KEY,
  v.IS_MISSED AS IS_MISSED, COALESCE(v.CALL_IN_LAT, v.CALL_OUT_LAT) AS LAT,
  COALESCE(v.CALL_IN_LON, v.CALL_OUT_LON) AS LON, v.SCH_START AS S_START, v.SCH_END AS S_END,
  v.VISIT_START AS A_START, v.VISIT_END AS A_END, COUNT(*) OVER (PARTITION BY v.VISIT_ID) AS COPIES,
  NVL(ABS(DATEDIFF(second, v.EVV_START, v.VISIT_START)) > 3600
      OR ABS(DATEDIFF(second, v.EVV_END, v.VISIT_END)) > 3600, FALSE) AS SKEWED"""

BAD_INPUT_KEYS = ["duplicate_visit_ids", "bad_scheduled_times", "bad_actual_times", "unusable_visits",
                  "without_gps", "clock_skew"]


@dataclass(frozen=True)
class DetectionParams:
    tolerance_minutes: float = 0.0   # overlaps must exceed this to count
    speed_kmh: float = 60.0          # travel speed for the travel-time test
    min_travel_km: float = 1.0       # GPS jitter below this never makes a travel conflict

    def tag(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(asdict(self).items()))


def _overlap_seconds() -> str:
    """Largest overlap over the 4 interval pairs (scheduled/actual x scheduled/actual), in integer epoch
    seconds; -1 when an interval is unusable. Written with IFF, never GREATEST/LEAST over NULLs."""
    parts = []
    for x0, x1 in (("S0", "S1"), ("A0", "A1")):
        for y0, y1 in (("S0", "S1"), ("A0", "A1")):
            parts.append(
                f"IFF(a.{x0} IS NULL OR b.{y0} IS NULL, -1, "
                f"IFF(a.{x1} < b.{y1}, a.{x1}, b.{y1}) - IFF(a.{x0} > b.{y0}, a.{x0}, b.{y0}))"
            )
    return "GREATEST(" + ", ".join(parts) + ")"


def ensure_tables(cursor) -> None:
    for stmt in _SETUP:
        cursor.execute(stmt)


def fingerprint_sql(prefixes: list[str], as_of: dt.date) -> str:
    tables = table_columns()
    row = [f"v.{col}" for col in tables["VISITS.VISITS"]] + [f"c.{col}" for col in tables["VISITS.CAREGIVERS"]]
    digests = []
    for table, cols in tables.items():
        if table in ("VISITS.VISITS", "VISITS.CAREGIVERS"):
            continue
        h = f"HASH({', '.join(cols)})"
        hs = f"HASH('salt', {', '.join(cols)})"
        digests.append(f"UNION ALL SELECT '{table}', COUNT(*), SUM({h} % 1000000007), SUM({hs} % 998244353) "
                       f"FROM {table}")
    return (sql_file("fingerprint.sql")
            .replace("{visit_hash}", f"HASH({', '.join(row)})")
            .replace("{visit_hash_salted}", f"HASH('salt', {', '.join(row)})")
            .replace("{as_of}", as_of.isoformat())
            .replace("{prefix_filter}", prefix_filter(prefixes))
            .replace("{dimension_digests}", "\n".join(digests)))


def fingerprints(cursor, prefixes: list[str], as_of: dt.date, params: DetectionParams) -> dict[str, tuple[str, int]]:
    """Per prefix: (fingerprint, visits in the window), from ONE warehouse query for all the prefixes.

    The detection parameters are mixed in: changing them changes the conflicts as surely as the data does.
    """
    cursor.execute(fingerprint_sql(prefixes, as_of))
    parts = {str(k): (int(n), int(h1 or 0), int(h2 or 0)) for k, n, h1, h2 in cursor.fetchall()}
    dims = "|".join(f"{k}:{v}" for k, v in sorted(parts.items()) if "." in k)
    out = {}
    for prefix in prefixes:
        n, h1, h2 = parts.get(prefix, (0, 0, 0))
        raw = f"{n}|{h1}|{h2}|{dims}|{params.tag()}" if n else f"{EMPTY}|{params.tag()}"
        out[prefix] = (hashlib.md5(raw.encode()).hexdigest(), n)
    return out


def stored_fingerprints(cursor, prefixes: list[str]) -> dict[str, str]:
    cursor.execute(f"SELECT PREFIX, FINGERPRINT FROM {STATE_TABLE} WHERE {prefix_filter(prefixes, 'PREFIX')}")
    return dict(cursor.fetchall())


def detect(cursor, prefixes: list[str], as_of: dt.date, params: DetectionParams = DetectionParams(),
           force: bool = False) -> dict:
    """Detect conflicts for the prefixes that changed; returns counts only (never an SSN)."""
    started = time.monotonic()
    ensure_tables(cursor)
    current = fingerprints(cursor, prefixes, as_of, params)
    stored = {} if force else stored_fingerprints(cursor, prefixes)
    changed = sorted(p for p in prefixes if stored.get(p) != current[p][0])
    summary = {"prefixes": len(prefixes), "prefixes_changed": len(changed),
               "prefixes_skipped": len(prefixes) - len(changed), "visits": sum(n for _, n in current.values()),
               "conflict_rows": 0, "time_overlap_conflicts": 0, "travel_time_conflicts": 0,
               **{k: 0 for k in BAD_INPUT_KEYS}}
    if changed:
        for number, batch in enumerate(_batches(changed, current)):
            _detect_batch(cursor, batch, as_of, params, summary)
            cursor.execute("CREATE OR REPLACE TEMPORARY TABLE CF_ALL AS SELECT * FROM CF_RESULT" if number == 0
                           else "INSERT INTO CF_ALL SELECT * FROM CF_RESULT")
        rows_per_prefix = dict(cursor.execute("SELECT PREFIX, COUNT(*) FROM CF_ALL GROUP BY PREFIX").fetchall())
        for ctype, n in cursor.execute("SELECT CONFLICT_TYPE, COUNT(*) / 2 FROM CF_ALL GROUP BY 1").fetchall():
            summary["time_overlap_conflicts" if ctype == "TIME_OVERLAP" else "travel_time_conflicts"] = int(n)
        summary["conflict_rows"] = sum(int(n) for n in rows_per_prefix.values())
        _replace(cursor, changed, current, rows_per_prefix)
    summary["seconds"] = round(time.monotonic() - started, 3)
    return summary


def _batches(changed: list[str], current: dict) -> list[list[str]]:
    """Prefixes grouped so each batch holds at most BATCH_VISITS visits: statement time stays bounded
    whatever the run's size (the emulator's client gives a statement 60 s), and the result still lands in
    one transaction."""
    batches, batch, size = [], [], 0
    for prefix in changed:
        visits = current[prefix][1]
        if batch and size + visits > BATCH_VISITS:
            batches.append(batch)
            batch, size = [], 0
        batch.append(prefix)
        size += visits
    return batches + [batch]


def _detect_batch(cursor, prefixes: list[str], as_of: dt.date, params: DetectionParams, summary: dict) -> None:
    """Run detection.sql for one batch: leaves the batch's conflict rows in CF_RESULT, adds bad-input counts."""
    template = sql_file("detection.sql").replace("{visit_rows}", visit_rows_sql(prefixes, as_of, _DETECTION_SELECT))
    sql = (template.replace("{overlap_seconds}", _overlap_seconds())
           .replace("{tolerance_seconds}", repr(float(params.tolerance_minutes) * 60))
           .replace("{speed_kmh}", repr(float(params.speed_kmh)))
           .replace("{min_travel_km}", repr(float(params.min_travel_km))))
    stmts = statements_from_text(sql)
    for number, stmt in enumerate(stmts[:-1]):
        began = time.monotonic()
        cursor.execute(stmt)
        log.debug("detection statement %d took %.1f s", number, time.monotonic() - began)
    cursor.execute(stmts[-1])  # the bad-input counts
    names = [d[0].lower() for d in cursor.description]
    for row in cursor.fetchall():
        for key, value in zip(names, row):
            if key in BAD_INPUT_KEYS:
                summary[key] += int(value)


def statements_from_text(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [stmt.strip() for stmt in body.split(";") if stmt.strip()]


def _replace(cursor, changed: list[str], current: dict, rows_per_prefix: dict) -> None:
    """Swap the changed prefixes' result rows and state in one transaction."""
    values = ", ".join(f"('{p}', '{current[p][0]}', {current[p][1]}, {int(rows_per_prefix.get(p, 0))})"
                       for p in changed)
    cursor.execute("BEGIN")
    try:
        cursor.execute(f"DELETE FROM {RESULT_TABLE} WHERE {prefix_filter(changed, 'PREFIX')}")
        cursor.execute(f"INSERT INTO {RESULT_TABLE} SELECT PREFIX, CONFLICTID, CONFLICT_TYPE, VISIT_ID, OTHER_VISIT_ID, "
                       "OVERLAP_SECONDS, GAP_SECONDS, DISTANCE_KM, CURRENT_TIMESTAMP()::TIMESTAMP_NTZ FROM CF_ALL")
        cursor.execute(f"DELETE FROM {STATE_TABLE} WHERE {prefix_filter(changed, 'PREFIX')}")
        cursor.execute(f"INSERT INTO {STATE_TABLE} SELECT column1, column2, column3, column4, "
                       f"CURRENT_TIMESTAMP()::TIMESTAMP_NTZ FROM VALUES {values}")
        cursor.execute("COMMIT")
    except BaseException:
        cursor.execute("ROLLBACK")
        raise

