"""Conflict update benchmark: the old batch job against the new assets, in one run, on the same data.

    python -m bench.conflict_bench                  # reference scale: 10,000 caregivers, ~5.2M visits in window
    python -m bench.conflict_bench --scale 300      # small, for a quick look

Steps: generate the data (skip with --no-generate), run ours as a full refresh (the backfill policy's runs of
250 prefixes, detection then sync), copy the result so the old job has rows to update, run the old job
(thread pool over 3-character prefix batches; each batch fetches all 98 columns of every visit of its SSNs in
the window with the full join, then updates PostgreSQL by VisitID one row at a time), then ours again with no
source change, then after changing visits as a source system does (stamping LastUpdatedDate): 1% concentrated
in 1% of the prefixes; 1% spread over all prefixes in a column detection does not read (billing); 0.1% and 1%
spread over all prefixes in the times detection pairs on (each three times on other visits, the median
reported); 1% of times again without stamps (found by the fingerprint sums, rescanning each prefix); 10% of
times, for the slope. Each change is picked up as the source sensor does it: its tick (one fingerprint
query over all prefixes), then the runs it requests (one run over the changed span when all are
incremental), timed together. Those are engine figures (the assets'
functions called directly). Then the same through Dagster (bench/conflict_dagster.py): a full
refresh as 4 range runs, a sensor tick with no source change, and a spread 1% time change picked up by a
sensor tick and run in the ranges it requests.
The old job runs on a random sample of batches by default and is extrapolated linearly (printed as such).
It works in its own databases (PostgreSQL ``conflict_bench``, warehouse ``CONFLICT_BENCH``), never on dev
data. Nothing printed carries an SSN.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from conflict_assets.columns import COLUMNS, NAMES
from conflict_assets.detection import DetectionParams, detect, reset_tables
from conflict_assets.generate import generate
from conflict_assets.partitions import PARTITIONS_PER_RUN, PREFIXES
from conflict_assets.postgres_schema import ensure_postgres, setup_postgres
from conflict_assets.probe_handoff import PROBE_TAG
from conflict_assets.sensors import evaluate
from conflict_assets.source_schema import visit_rows_sql
from conflict_assets.sync import _column_values, sync
from resources.local_instance import ensure_instance_yaml
from resources.postgres import PostgresResource, postgres_from_env
from resources.settings import PROJECT_ROOT
from resources.warehouse import warehouse_from_env

OLD_TABLE = "bench_old_conflictvisitmaps"
BENCH_DB = "conflict_bench"  # its own PostgreSQL database and warehouse database: a bench never touches dev data


def bench_postgres() -> PostgresResource:
    base = postgres_from_env()
    with psycopg.connect(base.dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DB,)).fetchone():
            conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return PostgresResource(url=psycopg.conninfo.make_conninfo(base.dsn, dbname=BENCH_DB), pool_max_size=8)


class Counter:
    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    def add(self, k: int = 1):
        with self.lock:
            self.n += k


class CountingWarehouse:
    """Counts every statement sent to the warehouse through this resource."""

    def __init__(self, inner, counter: Counter):
        self.inner, self.counter = inner, counter

    @contextmanager
    def get_connection(self):
        with self.inner.get_connection() as conn:
            yield _Conn(conn, self.counter)


class _Conn:
    def __init__(self, conn, counter):
        self.conn, self.counter = conn, counter

    def cursor(self):
        return _Cursor(self.conn.cursor(), self.counter)


class _Cursor:
    def __init__(self, cur, counter):
        self.cur, self.counter = cur, counter

    def execute(self, *args, **kwargs):
        self.counter.add()
        self.cur.execute(*args, **kwargs)
        return self

    def __getattr__(self, name):
        return getattr(self.cur, name)


def run_ours(warehouse, postgres, as_of: dt.date, after_tick: bool = False) -> dict:
    """The assets' work, run by run: as the backfill policy groups all prefixes, or (``after_tick``) as the
    source sensor requests the changed ones, its tick included."""
    counter = Counter()
    wh = CountingWarehouse(warehouse, counter)
    totals = {"rows_fetched": 0, "rows_written": 0, "rows_compared": 0, "prefixes_skipped": 0}
    found = {"visits_read": 0, "visits_repaired": 0, "conflict_rows_written": 0, "prefixes_rescanned": 0,
             "sequences_by_islands": 0, "sequences_read_whole": 0}
    started = time.monotonic()
    ensure_postgres(postgres)  # as the sync asset does: the full setup (ANALYZE of the whole table) only once
    runs = [PREFIXES[lo:lo + PARTITIONS_PER_RUN] for lo in range(0, len(PREFIXES), PARTITIONS_PER_RUN)]
    probe_id = None
    if after_tick:
        with wh.get_connection() as conn:
            ticked = evaluate(conn.cursor(), as_of, DetectionParams(), None)
        requests = getattr(ticked, "run_requests", None) or []
        runs = [PREFIXES[PREFIXES.index(r.tags[ASSET_PARTITION_RANGE_START_TAG]):
                         PREFIXES.index(r.tags[ASSET_PARTITION_RANGE_END_TAG]) + 1] for r in requests]
        probe_id = requests[0].tags[PROBE_TAG] if requests else None
    for prefixes in runs:
        with wh.get_connection() as conn:
            detected = detect(conn.cursor(), prefixes, as_of, probe_id=probe_id)  # as the asset does with the tag
        result = sync(wh, postgres, prefixes, as_of)
        for key in totals:
            totals[key] += result[key]
        for key in found:
            found[key] += detected[key]
    return {**totals, **found, "runs": len(runs), "seconds": time.monotonic() - started,
            "warehouse_queries": counter.n}


def reset_ours(warehouse, postgres) -> None:
    with warehouse.get_connection() as conn:
        reset_tables(conn.cursor())
    with postgres.connection() as conn:
        conn.execute("DROP TABLE IF EXISTS public.conflictvisitmaps, public.conflict_sync_state CASCADE")
    setup_postgres(postgres)


def prepare_old(postgres) -> None:
    """The old job updates existing rows: give it a copy of the full result, with the old plan's indexes."""
    with postgres.connection() as conn:
        conn.execute(f"DROP TABLE IF EXISTS {OLD_TABLE}")
        conn.execute(f"CREATE TABLE {OLD_TABLE} (LIKE public.conflictvisitmaps INCLUDING ALL)")
        conn.execute(f"INSERT INTO {OLD_TABLE} SELECT * FROM public.conflictvisitmaps")
        conn.execute(f"ANALYZE {OLD_TABLE}")


def _old_batch(warehouse, postgres, prefix: str, as_of: dt.date, stats: dict, lock: threading.Lock) -> None:
    began = time.monotonic()
    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        cur.execute(visit_rows_sql([prefix], as_of))  # the full 98-column join, all visits of the batch
        table = cur.fetch_arrow_all()
    fetched = time.monotonic()
    rows = 0 if table is None else table.num_rows
    written = 0
    if rows:
        columns = [_column_values(table, n, t) for n, t, _ in COLUMNS]
        sets = ", ".join(f'"{n}" = %s' for n in NAMES[1:])
        sql = f'UPDATE {OLD_TABLE} SET {sets} WHERE "VisitID" = %s'
        with postgres.connection() as pg, pg.cursor() as pcur:
            for row in zip(*columns):  # one statement per row, as the old job did
                pcur.execute(sql, (*row[1:], row[0]))
                written += pcur.rowcount
    with lock:
        stats["queries"] += 1
        stats["rows_fetched"] += rows
        stats["statements"] += rows
        stats["rows_written"] += written
        stats["fetch_seconds"] += fetched - began
        stats["update_seconds"] += time.monotonic() - fetched


def run_old(warehouse, postgres, as_of: dt.date, workers: int, sample: int | None, seed: int) -> dict:
    batches = list(PREFIXES)
    if sample and sample < len(batches):
        batches = sorted(random.Random(seed).sample(batches, sample))
    stats = {"queries": 0, "rows_fetched": 0, "statements": 0, "rows_written": 0, "fetch_seconds": 0.0,
             "update_seconds": 0.0}
    lock = threading.Lock()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda p: _old_batch(warehouse, postgres, p, as_of, stats, lock), batches))
    stats["seconds"] = time.monotonic() - started
    stats["batches"] = len(batches)
    factor = len(PREFIXES) / len(batches)
    stats["extrapolated"] = factor != 1
    for key in ("queries", "rows_fetched", "statements", "rows_written", "seconds"):
        stats[f"{key}_full"] = stats[key] * factor
    return stats


BILLING = "BILLED_RATE = COALESCE(BILLED_RATE, 0) + 1"
# 90 minutes later: moves overlaps and travel gaps, often across midnight for evening visits
TIMES = ", ".join(f"{c} = DATEADD(minute, 90, {c})" for c in ("SCH_START", "SCH_END", "VISIT_START", "VISIT_END",
                                                              "EVV_START", "EVV_END"))


def change_visits(warehouse, where: str, assignments: str = BILLING, stamped: bool = True) -> int:
    """Edit visits as a source system does: stamping LastUpdatedDate, unless ``stamped`` is False (an edit
    the watermark cannot see; the fingerprint sums then send its prefix to a rescan)."""
    stamp = ", LAST_UPDATED_DATE = CURRENT_TIMESTAMP()::TIMESTAMP_NTZ" if stamped else ""
    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        cur.execute(f"UPDATE VISITS.VISITS SET {assignments}{stamp} WHERE {where}")
        return int(cur.fetchone()[0])


def _line(label: str, seconds: float, queries, fetched, written, extra: str = "") -> None:
    q = f"{queries:>10,.0f}" if isinstance(queries, (int, float)) else f"{queries:>10}"
    print(f"{label:<52} {seconds:>9.1f} s {q} {fetched:>13,.0f} {written:>12,.0f}  {extra}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="old conflict job vs the new assets")
    parser.add_argument("--scale", type=int, default=10_000, help="caregivers (SSNs); reference 10,000")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 11, 24))
    parser.add_argument("--no-generate", action="store_true", help="reuse the data already in the warehouse")
    parser.add_argument("--workers", type=int, default=6, help="old job's thread pool (4-8 in production)")
    parser.add_argument("--old-sample", type=int, default=24,
                        help="old job: batches to run, extrapolated linearly (0 = all 1,000)")
    parser.add_argument("--warehouse-database", default="CONFLICT_BENCH")
    parser.add_argument("--no-dagster", action="store_true", help="skip the end-to-end legs through Dagster")
    opts = parser.parse_args(argv)
    os.environ["SNOWFLAKE_DATABASE"] = opts.warehouse_database
    warehouse, postgres = warehouse_from_env(), bench_postgres()

    if not opts.no_generate:
        began = time.monotonic()
        with warehouse.get_connection() as conn:
            counts = generate(conn.cursor(), opts.scale, opts.seed, opts.as_of)
        print(f"generated {counts['VISITS']:,} visit rows for {opts.scale:,} caregivers "
              f"in {time.monotonic() - began:.0f} s")
    print(f"{'step':<52} {'wall':>11} {'wh queries':>10} {'rows fetched':>13} {'rows written':>12}")

    reset_ours(warehouse, postgres)
    full = run_ours(warehouse, postgres, opts.as_of)
    _line("new: full refresh", full["seconds"], full["warehouse_queries"], full["rows_fetched"], full["rows_written"])

    prepare_old(postgres)
    old = run_old(warehouse, postgres, opts.as_of, opts.workers, opts.old_sample or None, opts.seed)
    label = f"old: {old['batches']} batches, {opts.workers} workers"
    _line(label, old["seconds"], old["queries"], old["rows_fetched"], old["rows_written"],
          f"({old['statements']:,} UPDATE statements; fetch {old['fetch_seconds']:.0f} s, row updates "
          f"{old['update_seconds']:.0f} s, summed over workers)")
    if old["extrapolated"]:
        _line("old: EXTRAPOLATED linearly to 1,000 batches", old["seconds_full"], old["queries_full"],
              old["rows_fetched_full"], old["rows_written_full"], "(estimate, not measured)")
    print(f"speed-up, full refresh: {old['seconds_full'] / full['seconds']:.1f}x "
          f"({'vs extrapolated old' if old['extrapolated'] else 'measured'})")

    rerun = run_ours(warehouse, postgres, opts.as_of)
    _line("new: rerun, no source change", rerun["seconds"], rerun["warehouse_queries"], rerun["rows_fetched"],
          rerun["rows_written"], "(target: 0 written, <= 10 s)")
    idle = run_ours(warehouse, postgres, opts.as_of, after_tick=True)
    _line("new: sensor tick, no source change", idle["seconds"], idle["warehouse_queries"], idle["rows_fetched"],
          idle["rows_written"], f"({idle['runs']} runs)")

    ten = ", ".join(f"'{p}'" for p in PREFIXES[::100])
    changed = change_visits(warehouse, f"CAREGIVER_KEY IN (SELECT CAREGIVER_KEY FROM VISITS.CAREGIVERS "
                                       f"WHERE LEFT(SSN, 3) IN ({ten}))")
    local = run_ours(warehouse, postgres, opts.as_of, after_tick=True)
    _line(f"new: {changed:,} visits changed in 1% of prefixes", local["seconds"], local["warehouse_queries"],
          local["rows_fetched"], local["rows_written"], f"({local['runs']} runs)")
    spread = {}
    # the time legs at 0.1% and 1% run three times on different visits: their median is reported (one run on a
    # shared 2-core machine varies by +-10%)
    for label, wheres, what, stamped in (("1%", ["APP_VISIT_ID % 100 = 0"], BILLING, True),
                                         ("0.1%", [f"APP_VISIT_ID % 1000 = {k}" for k in (5, 15, 25)], TIMES, True),
                                         ("1%", [f"APP_VISIT_ID % 100 = {k}" for k in (1, 4, 7)], TIMES, True),
                                         ("1%", ["APP_VISIT_ID % 100 = 3"], TIMES, False),
                                         ("10%", ["APP_VISIT_ID % 10 = 9"], TIMES, True)):
        step = f"{label} {'billing' if what == BILLING else 'times +90 min'}{'' if stamped else ', not stamped'}"
        runs = []
        for where in wheres:
            changed = change_visits(warehouse, where, what, stamped)
            r = run_ours(warehouse, postgres, opts.as_of, after_tick=True)
            runs.append(r)
            _line(f"new: {changed:,} visits ({step})", r["seconds"], r["warehouse_queries"], r["rows_fetched"],
                  r["rows_written"], f"({r['runs']} runs; {r['visits_read']:,} visits read by watermark, "
                  f"{r['visits_repaired']:,} re-paired, {r['conflict_rows_written']:,} "
                  f"conflict rows rewritten; {r['prefixes_rescanned']} prefixes rescanned; successors around the "
                  f"changes for {r['sequences_by_islands']:,} caregivers, whole for {r['sequences_read_whole']:,})")
        spread[step] = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
        if len(runs) > 1:
            print(f"  {step}: median {spread[step]['seconds']:.1f} s of {len(runs)} "
                  f"({min(r['seconds'] for r in runs):.1f}-{max(r['seconds'] for r in runs):.1f} s)")
    points = []
    for share, step in ((0.1, "0.1% times +90 min"), (1.0, "1% times +90 min"), (10.0, "10% times +90 min")):
        above = spread[step]["seconds"] - idle["seconds"]
        points.append((share, spread[step]["seconds"]))
        print(f"spread {step} / full refresh: {spread[step]['seconds'] / full['seconds']:.1%}; above the "
              f"no-change tick: {above:.1f} s = {above / full['seconds']:.1%} of the full refresh")
    # least squares over the three: what any change costs, and what each 1% of changed visits adds
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    slope = (sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points))
    print(f"fit over 0.1% / 1% / 10%: {mean_y - slope * mean_x:.1f} s + {slope:.2f} s per 1% of visits changed "
          f"(each 1% costs {slope / full['seconds']:.1%} of the full refresh; the no-change tick is "
          f"{idle['seconds']:.1f} s)")
    if not opts.no_dagster:
        dagster_legs(warehouse, postgres, opts, old)


def dagster_legs(warehouse, postgres, opts, old: dict) -> None:
    """End to end through Dagster, in an instance of the bench's own."""
    import dagster as dg

    from bench import conflict_dagster as legs

    home = PROJECT_ROOT / ".data" / "bench" / "conflict" / "dagster_home"
    shutil.rmtree(home, ignore_errors=True)
    ensure_instance_yaml(home)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["CONFLICT_AS_OF"] = opts.as_of.isoformat()
    resources = {"warehouse": warehouse, "postgres": postgres}
    reset_ours(warehouse, postgres)
    with dg.DagsterInstance.get() as instance:
        full = legs.backfill(instance, resources)
        _line("dagster: full refresh, 4 range runs", full["seconds"], "-", full["rows_fetched"],
              full["rows_written"], "(rows fetched/written by the sync; detection stays in the warehouse)")
        print(f"speed-up end to end: {old['seconds_full'] / full['seconds']:.1f}x")
        seconds, requests, cursor = legs.sensor_tick(instance, resources)
        _line("dagster: sensor tick, no source change", seconds, 1, 0, 0, f"({len(requests)} runs requested)")
        rerun = legs.backfill(instance, resources)
        _line("dagster: rerun, 4 range runs, no source change", rerun["seconds"], "-", rerun["rows_fetched"],
              rerun["rows_written"])
        changed = change_visits(warehouse, "APP_VISIT_ID % 100 = 2", TIMES)
        after = legs.sensor_then_runs(instance, resources, cursor)
        _line(f"dagster: {changed:,} visits (1%) times, tick + runs", after["seconds"], "-", after["rows_fetched"],
              after["rows_written"], f"({after['runs']} runs; tick {after['tick_seconds']:.1f} s)")


if __name__ == "__main__":
    main()
