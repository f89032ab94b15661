"""``make run``: materialize every asset of both code locations and print a summary.

Unpartitioned assets run first (the universe asset registers the symbol partitions); then every
group of assets that share a partitions definition runs as ONE range run over all its partitions,
as a backfill with a single-run policy does; unpartitioned assets downstream of them run last.
Runs are recorded in the Dagster instance under DAGSTER_HOME, so the UI shows them afterwards.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections import defaultdict

import dagster as dg

from resources.partition_runs import partition_range_tags

LOCATIONS = ("financial_assets", "conflict_assets")


def _split(defs: dg.Definitions) -> tuple[list, list, dict]:
    """(unpartitioned roots, unpartitioned downstream, partitioned groups)."""
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    partitioned_keys = {k for a in assets if a.partitions_def for k in a.keys}
    roots, downstream, groups = [], [], defaultdict(list)
    for a in assets:
        if a.partitions_def is not None:
            groups[a.partitions_def].append(a)
        elif any(dep in partitioned_keys for dep in a.dependency_keys):
            downstream.append(a)
        else:
            roots.append(a)
    return roots, downstream, groups


def _run(label: str, selected: list, defs: dg.Definitions, instance, tags: dict | None = None) -> dict:
    started = time.monotonic()
    result = dg.materialize(
        [*defs.assets, *(defs.asset_checks or [])],
        selection=dg.AssetSelection.assets(*selected),
        instance=instance,
        resources=defs.resources,
        tags=tags or {},
        raise_on_error=False,
    )
    checks = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    warned = sum(not c.passed and c.severity.value == "WARN" for c in checks)
    failed = sum(not c.passed and c.severity.value != "WARN" for c in checks)
    return {
        "run": label,
        "ok": result.success and not failed,
        "materializations": len(result.get_asset_materialization_events()),
        "checks": f"{sum(c.passed for c in checks)} ok, {warned} warn, {failed} failed",
        "seconds": round(time.monotonic() - started, 1),
    }


def materialize_location(name: str, instance, limit: int | None = None) -> list[dict]:
    defs = importlib.import_module(f"{name}.definitions").defs
    roots, downstream, groups = _split(defs)
    summaries = [_run(f"{name}: unpartitioned", roots, defs, instance)] if roots else []
    for partitions_def, assets in groups.items():
        keys = list(partitions_def.get_partition_keys(dynamic_partitions_store=instance))[:limit]
        if keys:
            tags = partition_range_tags(keys[0], keys[-1])
            summaries.append(_run(f"{name}: {len(keys)} partitions", assets, defs, instance, tags))
    if downstream:
        summaries.append(_run(f"{name}: downstream", downstream, defs, instance))
    return summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--location", choices=LOCATIONS, action="append", help="default: both")
    parser.add_argument("--limit", type=int, help="only the first N partitions of each group")
    opts = parser.parse_args(argv)
    started = time.monotonic()
    instance = dg.DagsterInstance.get()
    summaries = []
    for name in opts.location or LOCATIONS:
        prepare = importlib.import_module(f"{name}.definitions")
        if hasattr(prepare, "prepare_embedded_run"):
            prepare.prepare_embedded_run()
        summaries += materialize_location(name, instance, opts.limit)
    print("\nSummary")
    for s in summaries:
        status = "ok    " if s["ok"] else "FAILED"
        print(f"  {status} {s['run']:<40} {s['materializations']:>6} materializations  "
              f"checks {s['checks']:<24} {s['seconds']:>8.1f} s")
    print(f"  total {time.monotonic() - started:.1f} s")
    return 0 if all(s["ok"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
