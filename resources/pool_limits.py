"""Apply the per-pool concurrency limits of ``deploy/pools.yaml`` to the Dagster instance.

dagster.yaml only takes ``concurrency.pools.default_limit`` / ``granularity``; a named pool's limit
is instance state (the same call as ``dagster instance concurrency set <pool> <limit>``). This writes
every pool of the file, only where the instance differs, so running it again changes nothing.

    python -m resources.pool_limits                 # apply deploy/pools.yaml to $DAGSTER_HOME's instance
    python -m resources.pool_limits --check         # exit 1 if the instance differs from the file
    python -m resources.pool_limits --file other.yaml

The instance needs storage with global concurrency support (PostgreSQL in production; the local
SQLite default of ``dagster dev`` supports it too).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import yaml

from resources.settings import PROJECT_ROOT

DEFAULT_POOLS_FILE = PROJECT_ROOT / "deploy" / "pools.yaml"


@dataclass(frozen=True)
class PoolChange:
    pool: str
    before: int | None  # None: the pool had no limit on the instance
    after: int

    @property
    def changed(self) -> bool:
        return self.before != self.after


def load_pool_limits(path: str | Path = DEFAULT_POOLS_FILE) -> dict[str, int]:
    """The ``pools:`` mapping of a pools file, validated (names non-empty, limits non-negative ints)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    pools = data.get("pools")
    if not isinstance(pools, dict) or not pools:
        raise ValueError(f"{path}: expected a non-empty `pools:` mapping of pool name -> limit")
    limits: dict[str, int] = {}
    for name, limit in pools.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{path}: invalid pool name {name!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"{path}: pool {name!r} needs a non-negative integer limit, got {limit!r}")
        limits[name] = limit
    return limits


def current_pool_limits(instance) -> dict[str, int]:
    """Every pool limit set on the instance."""
    storage = instance.event_log_storage
    return {key: storage.get_concurrency_info(key).slot_count for key in storage.get_concurrency_keys()}


def _require_support(instance) -> None:
    if not instance.event_log_storage.supports_global_concurrency_limits:
        raise RuntimeError(
            f"{type(instance.event_log_storage).__name__} does not support concurrency pools; "
            "use the PostgreSQL storage of deploy/dagster.yaml"
        )


def apply_pool_limits(instance, limits: Mapping[str, int]) -> list[PoolChange]:
    """Set each pool's limit where it differs; pools not in ``limits`` are left alone."""
    _require_support(instance)
    before = current_pool_limits(instance)
    changes = []
    for pool, limit in sorted(limits.items()):
        change = PoolChange(pool, before.get(pool), int(limit))
        if change.changed:
            instance.event_log_storage.set_concurrency_slots(pool, change.after)
        changes.append(change)
    return changes


def diff_pool_limits(instance, limits: Mapping[str, int]) -> list[PoolChange]:
    """What ``apply_pool_limits`` would change (only the differing pools)."""
    _require_support(instance)
    before = current_pool_limits(instance)
    return [PoolChange(p, before.get(p), int(v)) for p, v in sorted(limits.items()) if before.get(p) != v]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resources.pool_limits", description=__doc__.split("\n")[0])
    parser.add_argument("--file", default=str(DEFAULT_POOLS_FILE), help="pools file (default: deploy/pools.yaml)")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if the instance differs")
    args = parser.parse_args(argv)

    from dagster import DagsterInstance

    limits = load_pool_limits(args.file)
    with DagsterInstance.get() as instance:
        if args.check:
            drift = diff_pool_limits(instance, limits)
            for change in drift:
                print(f"pool {change.pool}: instance {change.before}, file {change.after}")
            print("pool limits match" if not drift else f"{len(drift)} pool limit(s) differ")
            return 1 if drift else 0
        for change in apply_pool_limits(instance, limits):
            status = f"{change.before} -> {change.after}" if change.changed else f"{change.after} (unchanged)"
            print(f"pool {change.pool}: {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
