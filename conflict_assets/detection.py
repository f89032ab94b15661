"""Conflict detection in the warehouse for a set of SSN prefixes, skipping prefixes whose source is unchanged.

One fingerprint query covers every prefix of the run; only changed prefixes are recomputed. A changed prefix
with per-visit state (VISIT_STATE) under the same dimensions and parameters is updated incrementally
(incremental.py: only the conflicts that can involve changed visits); otherwise (first load, ``force``, a
dimension table or parameter change) it is recomputed in full here, and its result rows and state are
replaced in one warehouse transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import time
from dataclasses import asdict, dataclass

from conflict_assets.pairs import (
    BAD_INPUT_RULES, bad_input_counts, overlap_seconds, result_rows, successor_columns, travel_pairs,
)
from conflict_assets.source_schema import prefix_filter, sql_file, table_columns, visit_rows_sql
from resources.warehouse import transaction

log = logging.getLogger(__name__)

RESULT_TABLE = "CONFLICTS.VISIT_CONFLICTS"
STATE_TABLE = "CONFLICTS.DETECTION_STATE"
VISIT_STATE = "CONFLICTS.VISIT_STATE"      # per visit: hashes, detection fields, successor; see README
PREFIX_STATE = "CONFLICTS.PREFIX_STATE"    # per prefix: basis (dimensions + parameters), change sequence
CHANGES_TABLE = "CONFLICTS.VISIT_CHANGES"  # per prefix and sequence: visits whose PostgreSQL rows may differ
PROBE_TABLE = "CONFLICTS.SOURCE_PROBES"    # the sensor tick's probe, for the runs it requests (probe_handoff.py)
EMPTY = "empty"
# in the basis: a state written with other hashes or fields is recomputed in full once (bump on such a change)
STATE_VERSION = 3
BATCH_VISITS = 400_000
PRIMES = (1000000007, 998244353)

# the per-visit state: what the incremental path needs of a visit without reading the source again
STATE_COLUMNS = [
    ("PREFIX", "VARCHAR(3)"), ("VISIT_ID", "VARCHAR(36)"), ("VKEY", "BIGINT"), ("DKEY", "BIGINT"),
    ("H1", "BIGINT"), ("H2", "BIGINT"),
    ("SSN", "VARCHAR(9)"), ("PROVIDER_KEY", "INT"), ("IS_MISSED", "BOOLEAN"), ("LAT", "FLOAT"), ("LON", "FLOAT"),
    ("COPIES", "BIGINT"), ("SKEWED", "BOOLEAN"), ("A_PRESENT", "BOOLEAN"), ("S_OK", "BOOLEAN"), ("A_OK", "BOOLEAN"),
    ("S0", "BIGINT"), ("S1", "BIGINT"), ("A0", "BIGINT"), ("A1", "BIGINT"), ("E0", "BIGINT"), ("E1", "BIGINT"),
    ("SP0", "BIGINT"), ("SP1", "BIGINT"), ("BUCKET", "BIGINT"), ("TRAVEL_OK", "BOOLEAN"), ("OVERLAP_OK", "BOOLEAN"),
    ("NEXT_ID", "VARCHAR(36)"), ("VISIT_DATE", "DATE"), ("STAMP", "BIGINT"),
]
STATE_NAMES = [name for name, _ in STATE_COLUMNS]
# everything detection and the bad-input counts read; a visit whose values here are unchanged needs no re-pairing
DETECTION_FIELDS = ["SSN", "PROVIDER_KEY", "IS_MISSED", "LAT", "LON", "COPIES", "SKEWED", "A_PRESENT", "S_OK",
                    "A_OK", "S0", "S1", "A0", "A1"]
# The state's lookup keys: VKEY for (PREFIX, VISIT_ID), DKEY for (SSN, day of E0). The incremental path looks
# up a few visits in millions of state rows; a join on one integer column lets the engine filter the state's
# scan before it reads the other columns (DuckDB pushes a bloom filter of the small side into it), where a
# join on the text columns decodes and hashes all of them. Matches are confirmed on the real columns
# (same_visit / same_day, written so the engine does not hash them too), so a key collision costs a
# comparison, never a wrong row; tests/test_conflict_incremental.py runs with every key equal to check it.
KEY_MODULUS = 2**61 - 1  # HASH is unsigned on DuckDB: the modulus keeps keys in BIGINT on both engines (and
# the CAST their type: a join on keys of two types compares casts, which the engine cannot push into a scan)


def lookup_keys(sql: str) -> str:
    """{visit_key} / {day_key}: the key of the PREFIX, VISIT_ID / SSN, DAY columns in scope;
    {same_visit:a:b} / {same_day:a:b}: a join condition on the key, confirmed on the columns (b is the state)."""
    sql = (sql.replace("{visit_key}", f"CAST(HASH(PREFIX, VISIT_ID) % {KEY_MODULUS} AS BIGINT)")
           .replace("{day_key}", f"CAST(HASH(SSN, CAST(DAY AS BIGINT)) % {KEY_MODULUS} AS BIGINT)"))
    sql = re.sub(r"\{same_visit:(\w+):(\w+)\}", lambda m: f"{m[1]}.VKEY = {m[2]}.VKEY AND IFF({m[1]}.PREFIX = "
                 f"{m[2]}.PREFIX AND {m[1]}.VISIT_ID = {m[2]}.VISIT_ID, TRUE, FALSE)", sql)
    return re.sub(r"\{same_day:(\w+):(\w+)\}", lambda m: f"{m[1]}.DKEY = {m[2]}.DKEY AND IFF({m[1]}.SSN = "
                  f"{m[2]}.SSN AND {m[1]}.DAY = CAST(FLOOR({m[2]}.E0 / 86400) AS BIGINT), TRUE, FALSE)", sql)


BAD_INPUT_KEYS = [name.lower() for name, _ in BAD_INPUT_RULES]
# Per prefix, in PREFIX_STATE: what the prefix's VISIT_STATE rows add up to (COPIES, H1, H2: the sums check),
# their bad-input counts and the prefix's conflict rows per type. An incremental run adds its deltas to these
# instead of scanning the state and the result table.
SUMS = ["SUM_COPIES", "SUM_H1", "SUM_H2"]
BAD_INPUT_COUNTS = [f"N_{name}" for name, _ in BAD_INPUT_RULES]
CONFLICT_COUNTS = ["N_OVERLAP_ROWS", "N_TRAVEL_ROWS"]
AGGREGATES = SUMS + BAD_INPUT_COUNTS + CONFLICT_COUNTS

_SETUP = [
    "CREATE SCHEMA IF NOT EXISTS CONFLICTS",
    f"CREATE TABLE IF NOT EXISTS {RESULT_TABLE} (PREFIX VARCHAR(3), CONFLICTID VARCHAR(32), CONFLICT_TYPE VARCHAR(20),"
    " VISIT_ID VARCHAR(36), OTHER_VISIT_ID VARCHAR(36), OVERLAP_SECONDS BIGINT, GAP_SECONDS BIGINT,"
    " DISTANCE_KM FLOAT, DETECTED_AT TIMESTAMP_NTZ)",
    f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (PREFIX VARCHAR(3), FINGERPRINT VARCHAR(64), VISITS BIGINT,"
    " CONFLICT_ROWS BIGINT, DETECTED_AT TIMESTAMP_NTZ)",
    f"CREATE TABLE IF NOT EXISTS {VISIT_STATE} ({', '.join(f'{n} {t}' for n, t in STATE_COLUMNS)})",
    f"CREATE TABLE IF NOT EXISTS {PREFIX_STATE} (PREFIX VARCHAR(3), FINGERPRINT VARCHAR(64), BASIS VARCHAR(32),"
    f" SEQ BIGINT, LOG_FROM BIGINT, WATERMARK BIGINT, AS_OF DATE, {', '.join(f'{a} BIGINT' for a in AGGREGATES)})",
    f"CREATE TABLE IF NOT EXISTS {CHANGES_TABLE} (PREFIX VARCHAR(3), SEQ BIGINT, VISIT_ID VARCHAR(36))",
    f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (PROBE_ID VARCHAR(32), PREFIX VARCHAR(3), FINGERPRINT VARCHAR(32),"
    " VISITS BIGINT, H1 BIGINT, H2 BIGINT, WATERMARK BIGINT, LATEST BIGINT, BASIS VARCHAR(32), AS_OF DATE,"
    " PARAMS VARCHAR, PROBED_AT TIMESTAMP_NTZ)",
]


def column_hashes() -> tuple[str, str]:
    """The hash of every column of a visit row, and of every column of its caregiver's row."""
    tables = table_columns()
    return (f"HASH({', '.join(f'v.{col}' for col in tables['VISITS.VISITS'])})",
            f"HASH({', '.join(f'c.{col}' for col in tables['VISITS.CAREGIVERS'])})")


def row_hash(prime: int) -> str:
    """A visit row's hash modulo ``prime`` (the fingerprint's and the per-visit diff's): its own columns' hash
    and its caregiver's, each modulo the prime, added. Summed modulo each of PRIMES it is exact on both
    engines, and a change goes unseen only if a hash keeps its value modulo their product (~2^60). Two
    hashes added, not one over both rows, so the fingerprint sums a caregiver's visits before it joins the
    caregiver (fingerprint.sql); hashing is most of a full scan."""
    visit, caregiver = column_hashes()
    return f"({visit} % {prime} + {caregiver} % {prime})"


def detection_select() -> str:
    """Detection's columns of a visit row; COPIES and the hashes cover every copy of the VisitID in its prefix
    (computed before the QUALIFY that keeps the latest copy)."""
    copies = "OVER (PARTITION BY v.VISIT_ID, LEFT(c.SSN, 3))"
    return f"""c.SSN AS SSN, LEFT(c.SSN, 3) AS PREFIX, v.VISIT_ID AS VISIT_ID, v.PROVIDER_KEY AS PROVIDER_KEY,
  v.IS_MISSED AS IS_MISSED, COALESCE(v.CALL_IN_LAT, v.CALL_OUT_LAT) AS LAT,
  COALESCE(v.CALL_IN_LON, v.CALL_OUT_LON) AS LON, v.SCH_START AS S_START, v.SCH_END AS S_END,
  v.VISIT_START AS A_START, v.VISIT_END AS A_END, COUNT(*) {copies} AS COPIES,
  CAST(SUM({row_hash(PRIMES[0])}) {copies} AS BIGINT) AS H1, CAST(SUM({row_hash(PRIMES[1])}) {copies} AS BIGINT) AS H2,
  NVL(ABS(DATEDIFF(second, v.EVV_START, v.VISIT_START)) > 3600
      OR ABS(DATEDIFF(second, v.EVV_END, v.VISIT_END)) > 3600, FALSE) AS SKEWED,
  MIN(v.VISIT_DATE) {copies} AS VISIT_DATE,
  DATE_PART(epoch_second, MAX(v.LAST_UPDATED_DATE) {copies}) AS STAMP"""


@dataclass(frozen=True)
class DetectionParams:
    tolerance_minutes: float = 0.0   # overlaps must exceed this to count
    speed_kmh: float = 60.0          # travel speed for the travel-time test
    min_travel_km: float = 1.0       # GPS jitter below this never makes a travel conflict

    def tag(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(asdict(self).items()))


# columns a table must have for this release to use it as it stands
_REQUIRED = {"VISIT_CONFLICTS": set(), "DETECTION_STATE": set(), "VISIT_CHANGES": set(), "SOURCE_PROBES": set(),
             "VISIT_STATE": set(STATE_NAMES), "PREFIX_STATE": {"BASIS", "WATERMARK", "AS_OF", *AGGREGATES}}


def ensure_tables(cursor) -> None:
    """One catalog query when everything is in place (every run and sensor tick calls this)."""
    cursor.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'CONFLICTS'")
    have: dict[str, set[str]] = {}
    for table, column in cursor.fetchall():
        have.setdefault(table.upper(), set()).add(column.upper())
    if all(table in have and need <= have[table] for table, need in _REQUIRED.items()):
        return
    # State written under an older layout cannot drive the incremental path: drop it, so each prefix is
    # recomputed in full once (both tables are derived; the result and the sync are untouched).
    if any(t in have and not _REQUIRED[t] <= have[t] for t in ("VISIT_STATE", "PREFIX_STATE")):
        cursor.execute(f"DROP TABLE IF EXISTS {VISIT_STATE}")
        cursor.execute(f"DROP TABLE IF EXISTS {PREFIX_STATE}")
    for stmt in _SETUP:
        cursor.execute(stmt)


def reset_tables(cursor) -> None:
    """Forget every detection result and state (tests and the benchmark start from nothing)."""
    ensure_tables(cursor)
    for table in (RESULT_TABLE, STATE_TABLE, VISIT_STATE, PREFIX_STATE, CHANGES_TABLE):
        cursor.execute(f"DELETE FROM {table}")


def fingerprint_sql(prefixes: list[str], as_of: dt.date) -> str:
    tables = table_columns()
    visit_hash, caregiver_hash = column_hashes()
    digests = []
    for table, cols in tables.items():
        if table in ("VISITS.VISITS", "VISITS.CAREGIVERS"):
            continue
        h = f"HASH({', '.join(cols)})"
        digests.append(f"UNION ALL SELECT '{table}', COUNT(*), SUM({h} % {PRIMES[0]}), SUM({h} % {PRIMES[1]}), "
                       f"NULL, NULL FROM {table}")
    return (sql_file("fingerprint.sql")
            .replace("{visit_hash}", visit_hash).replace("{caregiver_hash}", caregiver_hash)
            .replace("{p1}", str(PRIMES[0])).replace("{p2}", str(PRIMES[1]))
            .replace("{as_of}", as_of.isoformat())
            .replace("{prefix_filter}", prefix_filter(prefixes))
            .replace("{dimension_digests}", "\n".join(digests)))


@dataclass(frozen=True)
class Probe:
    """What the one fingerprint query says about a run's prefixes."""
    current: dict[str, tuple[str, int]]       # prefix -> (fingerprint, visits in the window)
    sums: dict[str, tuple[int, int, int]]     # prefix -> (rows, H1 sum, H2 sum): what VISIT_STATE must add up to
    watermarks: dict[str, int | None]         # prefix -> latest LAST_UPDATED_DATE, epoch seconds, at most now
    latest: dict[str, int | None]             # prefix -> latest LAST_UPDATED_DATE as found, epoch microseconds
                                              # (the probe's horizon: exact, where seconds round on the emulator)
    basis: str                                # digest of the dimension tables and the parameters


def probe(cursor, prefixes: list[str], as_of: dt.date, params: DetectionParams) -> Probe:
    """Per prefix, from ONE warehouse query for all the prefixes: (fingerprint, visits in the window), the raw
    sums and the watermark; and the basis. The detection parameters are mixed into the fingerprints: changing
    them changes the conflicts as surely as the data does. Per-visit state is only reusable under the basis
    it was computed with (dimension rows are not in the per-visit hashes)."""
    cursor.execute(fingerprint_sql(prefixes, as_of))
    parts = {str(k): (int(n), int(h1 or 0), int(h2 or 0), *(None if x is None else int(x) for x in (w, u)))
             for k, n, h1, h2, w, u in cursor.fetchall()}
    dims = "|".join(f"{k}:{v[:3]}" for k, v in sorted(parts.items()) if "." in k)
    current, sums, watermarks, latest = {}, {}, {}, {}
    for prefix in prefixes:
        n, h1, h2, w, u = parts.get(prefix, (0, 0, 0, None, None))
        raw = f"{n}|{h1}|{h2}|{dims}|{params.tag()}" if n else f"{EMPTY}|{params.tag()}"
        current[prefix] = (hashlib.md5(raw.encode()).hexdigest(), n)
        # a stamp in the future (clock skew) must not hide later edits: never above now
        sums[prefix], watermarks[prefix] = (n, h1, h2), None if w is None else min(w, int(time.time()))
        latest[prefix] = u
    basis = hashlib.md5(f"{dims}|{params.tag()}|{STATE_VERSION}".encode()).hexdigest()
    return Probe(current, sums, watermarks, latest, basis)


def stored_fingerprints(cursor, prefixes: list[str]) -> dict[str, str]:
    cursor.execute(f"SELECT PREFIX, FINGERPRINT FROM {STATE_TABLE} WHERE {prefix_filter(prefixes, 'PREFIX')}")
    return dict(cursor.fetchall())


def incremental_prefixes(cursor, changed: list[str], stored: dict, basis: str) -> set[str]:
    """Changed prefixes whose per-visit state can be reused: recorded under the same basis, and consistent
    with the stored result (PREFIX_STATE and DETECTION_STATE name the same fingerprint)."""
    if not changed:
        return set()
    cursor.execute(f"SELECT PREFIX, FINGERPRINT, BASIS FROM {PREFIX_STATE} WHERE {prefix_filter(changed, 'PREFIX')}")
    return {p for p, fp, b in cursor.fetchall() if b == basis and stored.get(p) == fp}


@dataclass(frozen=True)
class Plan:
    """What a run (or the source sensor) has to do for its prefixes."""
    found: Probe
    stored: dict[str, str]   # prefix -> fingerprint recorded by the last detection (empty with ``force``)
    changed: list[str]       # prefixes whose fingerprint differs from the recorded one
    incremental: set[str]    # of those, the ones whose per-visit state can be reused
    from_tick: bool = False  # ``found`` is the sensor tick's probe, not this run's


def plan(cursor, prefixes: list[str], as_of: dt.date, params: DetectionParams, force: bool = False,
         probe_id: str | None = None) -> Plan:
    """``probe_id``: the sensor tick's probe the run was tagged with (probe_handoff.py); used when it is still
    usable for these prefixes and the run is not forced, else the source is probed here."""
    from conflict_assets.probe_handoff import load_probe

    ensure_tables(cursor)
    saved = None if force else load_probe(cursor, probe_id, prefixes, as_of, params)
    found = saved or probe(cursor, prefixes, as_of, params)
    stored = {} if force else stored_fingerprints(cursor, prefixes)
    changed = sorted(p for p in prefixes if stored.get(p) != found.current[p][0])
    return Plan(found, stored, changed, incremental_prefixes(cursor, changed, stored, found.basis), saved is not None)


def detect(cursor, prefixes: list[str], as_of: dt.date, params: DetectionParams = DetectionParams(),
           force: bool = False, probe_id: str | None = None) -> dict:
    """Detect conflicts for the prefixes that changed; returns counts only (never an SSN). ``probe_id``: the
    sensor tick's probe the run was tagged with, which saves the run a scan of the source (see ``plan``)."""
    from conflict_assets.incremental import detect_incremental

    started = time.monotonic()
    todo = plan(cursor, prefixes, as_of, params, force, probe_id)
    found, changed, incremental = todo.found, todo.changed, todo.incremental
    full = [p for p in changed if p not in incremental]
    summary = {"prefixes": len(prefixes), "probe_from_tick": todo.from_tick, "prefixes_changed": len(changed),
               "prefixes_skipped": len(prefixes) - len(changed), "prefixes_full": len(full),
               "prefixes_incremental": len(incremental), "prefixes_by_watermark": 0, "prefixes_rescanned": 0,
               "sequences_by_islands": 0, "sequences_read_whole": 0,
               "visits": sum(n for _, n in found.current.values()),
               "visits_read": 0, "visits_changed": 0, "visits_repaired": 0, "conflict_rows": 0,
               "conflict_rows_written": 0,
               "time_overlap_conflicts": 0, "travel_time_conflicts": 0, **{k: 0 for k in BAD_INPUT_KEYS}}
    if full:
        _detect_full(cursor, full, found, as_of, params, summary)
    if incremental:
        detect_incremental(cursor, sorted(incremental), found, as_of, params, summary)
    summary["seconds"] = round(time.monotonic() - started, 3)
    return summary


def _detect_full(cursor, changed: list[str], found: Probe, as_of: dt.date, params: DetectionParams,
                 summary: dict) -> None:
    current = found.current
    stored = stored_prefix_state(cursor, changed)
    # Without PREFIX_STATE a prefix is never updated incrementally: dropping it first means the per-batch
    # VISIT_STATE writes below can never be mistaken for a consistent state if this run dies half-way.
    cursor.execute(f"DELETE FROM {PREFIX_STATE} WHERE {prefix_filter(changed, 'PREFIX')}")
    cursor.execute(f"DELETE FROM {VISIT_STATE} WHERE {prefix_filter(changed, 'PREFIX')}")
    aggregates = {p: dict.fromkeys(AGGREGATES, 0) for p in changed}  # a prefix without visits or conflicts: 0
    for number, batch in enumerate(_batches(changed, current)):
        for prefix, values in _detect_batch(cursor, batch, as_of, params).items():
            aggregates[prefix].update(values)
        cursor.execute("CREATE OR REPLACE TEMPORARY TABLE CF_ALL AS SELECT * FROM CF_RESULT" if number == 0
                       else "INSERT INTO CF_ALL SELECT * FROM CF_RESULT")
        cursor.execute(f"INSERT INTO {VISIT_STATE} ({', '.join(STATE_NAMES)}) SELECT {', '.join(STATE_NAMES)} FROM CF_SEQ")
    cursor.execute("SELECT PREFIX, COUNT_IF(CONFLICT_TYPE = 'TIME_OVERLAP') AS N_OVERLAP_ROWS, "
                   "COUNT_IF(CONFLICT_TYPE = 'TRAVEL_TIME') AS N_TRAVEL_ROWS FROM CF_ALL GROUP BY PREFIX")
    for prefix, counts in rows_by_prefix(cursor).items():
        aggregates[prefix].update(counts)
    summary["conflict_rows_written"] += sum(conflict_rows(a) for a in aggregates.values())
    summary["visits_changed"] += sum(current[p][1] for p in changed)
    summary["visits_repaired"] += sum(current[p][1] for p in changed)
    add_counts(summary, aggregates)
    _replace(cursor, changed, found, as_of, stored, aggregates)


def _batches(changed: list[str], current: dict, limit: int = BATCH_VISITS) -> list[list[str]]:
    """Prefixes grouped so each batch holds at most ``limit`` visits: statement time stays bounded
    whatever the run's size (the emulator's client gives a statement 60 s)."""
    batches, batch, size = [], [], 0
    for prefix in changed:
        visits = current[prefix][1]
        if batch and size + visits > limit:
            batches.append(batch)
            batch, size = [], 0
        batch.append(prefix)
        size += visits
    return batches + [batch]


def fill(sql: str, params: DetectionParams) -> str:
    return (lookup_keys(sql).replace("{overlap_seconds}", overlap_seconds())
            .replace("{successor_columns}", successor_columns())
            .replace("{bad_input_counts}", bad_input_counts())
            .replace("{tolerance_seconds}", repr(float(params.tolerance_minutes) * 60))
            .replace("{speed_kmh}", repr(float(params.speed_kmh)))
            .replace("{min_travel_km}", repr(float(params.min_travel_km))))


def run_statements(cursor, sql: str) -> None:
    """All statements but the last; the caller reads the last one's rows."""
    stmts = statements_from_text(sql)
    for number, stmt in enumerate(stmts[:-1]):
        began = time.monotonic()
        cursor.execute(stmt)
        log.debug("detection statement %d took %.1f s", number, time.monotonic() - began)
    cursor.execute(stmts[-1])


def rows_by_prefix(cursor) -> dict[str, dict[str, int]]:
    """Per prefix, the other columns of the rows the last statement returned (PREFIX first), by name."""
    names = [d[0].upper() for d in cursor.description]
    return {row[0]: {n: int(v or 0) for n, v in zip(names[1:], row[1:])} for row in cursor.fetchall()}


def conflict_rows(aggregates: dict[str, int]) -> int:
    return aggregates["N_OVERLAP_ROWS"] + aggregates["N_TRAVEL_ROWS"]


def add_counts(summary: dict, aggregates: dict[str, dict[str, int]]) -> None:
    """The prefixes' bad-input counts and conflicts after the run, into its summary (a conflict is two rows,
    one per visit, of the same caregiver and so of the same prefix)."""
    for values in aggregates.values():
        for key in BAD_INPUT_KEYS:
            summary[key] += values[f"N_{key.upper()}"]
        summary["conflict_rows"] += conflict_rows(values)
        summary["time_overlap_conflicts"] += values["N_OVERLAP_ROWS"] // 2
        summary["travel_time_conflicts"] += values["N_TRAVEL_ROWS"] // 2


def _detect_batch(cursor, prefixes: list[str], as_of: dt.date, params: DetectionParams) -> dict:
    """Run detection.sql for one batch: leaves the batch's conflict rows in CF_RESULT and its per-visit state
    in CF_SEQ; returns the AGGREGATES of each prefix with visits."""
    sql = (sql_file("detection.sql")
           .replace("{visit_rows}", visit_rows_sql(prefixes, as_of, detection_select(), dimensions=False))
           .replace("{visit_state}", sql_file("visit_state.sql"))
           .replace("{travel_pairs}", travel_pairs("CF_SEQ"))
           .replace("{result_rows}", result_rows("CF_OVERLAPS", "CF_TRAVEL")))
    run_statements(cursor, fill(sql, params))
    return rows_by_prefix(cursor)


def statements_from_text(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [stmt.strip() for stmt in body.split(";") if stmt.strip()]


def literal_rows(rows: list[tuple], columns: list[tuple[str, str]]) -> str:
    """A SELECT of already validated rows (prefixes, digests, integers, ISO dates) from ONE JSON string literal:
    the emulator compiles a VALUES list at about a millisecond per row, a string literal at once."""
    text = json.dumps([list(row) for row in rows])
    if "'" in text or "\\" in text:
        raise ValueError("literal rows must not contain quotes or backslashes")
    items = ", ".join(f"value[{i}]::{kind} AS {name}" for i, (name, kind) in enumerate(columns))
    return f"SELECT {items} FROM TABLE(FLATTEN(input => PARSE_JSON('{text}')))"


def stored_prefix_state(cursor, prefixes: list[str]) -> dict[str, dict[str, int]]:
    """Per prefix with a state: SEQ, LOG_FROM and the AGGREGATES."""
    cursor.execute(f"SELECT PREFIX, SEQ, LOG_FROM, {', '.join(AGGREGATES)} FROM {PREFIX_STATE} "
                   f"WHERE {prefix_filter(prefixes, 'PREFIX')}")
    return rows_by_prefix(cursor)


def stage_prefix_rows(cursor, rows: list[tuple]) -> None:
    """Before the caller's transaction (DDL would commit it): CF_PREFIX_ROWS from (prefix, fingerprint, visits,
    conflict rows, basis, seq, log_from, watermark, as-of date, aggregates dict) rows."""
    columns = [("PREFIX", "VARCHAR"), ("FINGERPRINT", "VARCHAR"), ("VISITS", "BIGINT"), ("CONFLICT_ROWS", "BIGINT"),
               ("BASIS", "VARCHAR"), ("SEQ", "BIGINT"), ("LOG_FROM", "BIGINT"), ("WATERMARK", "BIGINT"),
               ("AS_OF", "DATE"), *[(a, "BIGINT") for a in AGGREGATES]]
    rows = [(*r[:8], r[8].isoformat(), *(r[9][a] for a in AGGREGATES)) for r in rows]
    cursor.execute(f"CREATE OR REPLACE TEMPORARY TABLE CF_PREFIX_ROWS AS {literal_rows(rows, columns)}")


def write_prefix_state(cursor, prefixes: list[str]) -> None:
    """Inside the caller's transaction: DETECTION_STATE and PREFIX_STATE from CF_PREFIX_ROWS."""
    f = prefix_filter(prefixes, "PREFIX")
    cursor.execute(f"DELETE FROM {STATE_TABLE} WHERE {f}")
    cursor.execute(f"INSERT INTO {STATE_TABLE} SELECT PREFIX, FINGERPRINT, VISITS, CONFLICT_ROWS, "
                   "CURRENT_TIMESTAMP()::TIMESTAMP_NTZ FROM CF_PREFIX_ROWS")
    cursor.execute(f"DELETE FROM {PREFIX_STATE} WHERE {f}")
    names = f"PREFIX, FINGERPRINT, BASIS, SEQ, LOG_FROM, WATERMARK, AS_OF, {', '.join(AGGREGATES)}"
    cursor.execute(f"INSERT INTO {PREFIX_STATE} ({names}) SELECT {names} FROM CF_PREFIX_ROWS")


def next_seq(previous: int) -> int:
    """Change sequence numbers are run stamps (ms), strictly increasing per prefix: even after the warehouse
    state is lost, a new sequence is above any a PostgreSQL sync state still remembers."""
    return max(previous + 1, int(time.time() * 1000))


def _replace(cursor, changed: list[str], found: Probe, as_of: dt.date, stored: dict, aggregates: dict) -> None:
    """Swap the changed prefixes' result rows and state in one transaction. A full recompute starts a new
    change log: a sync behind it must compare the whole prefix (LOG_FROM = SEQ)."""
    rows = []
    for p in changed:
        seq = next_seq(stored.get(p, {}).get("SEQ", 0))
        rows.append((p, *found.current[p], conflict_rows(aggregates[p]), found.basis, seq, seq,
                     found.watermarks[p], as_of, aggregates[p]))
    stage_prefix_rows(cursor, rows)
    with transaction(cursor):
        cursor.execute(f"DELETE FROM {RESULT_TABLE} WHERE {prefix_filter(changed, 'PREFIX')}")
        cursor.execute(f"INSERT INTO {RESULT_TABLE} SELECT PREFIX, CONFLICTID, CONFLICT_TYPE, VISIT_ID, OTHER_VISIT_ID, "
                       "OVERLAP_SECONDS, GAP_SECONDS, DISTANCE_KM, CURRENT_TIMESTAMP()::TIMESTAMP_NTZ FROM CF_ALL")
        cursor.execute(f"DELETE FROM {CHANGES_TABLE} WHERE {prefix_filter(changed, 'PREFIX')}")
        write_prefix_state(cursor, changed)
