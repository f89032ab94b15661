"""A cold, isolated environment per benchmark leg: its own data folder, ports and Dagster home."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import requests

from resources.local_instance import ensure_instance_yaml
from resources.local_service import free_port
from resources.settings import PROJECT_ROOT

BENCH_ROOT = PROJECT_ROOT / ".data" / "bench"


@contextmanager
def fresh_environment(name: str, latency_ms: float = 0, calls_per_minute: int = 3000, warehouse_latency_ms: float = 0):
    """Point every resource at a new empty data folder and fresh embedded services; stop them after.
    ``latency_ms``: the offline FMP server's per call; ``warehouse_latency_ms``: the emulator's per statement."""
    root = BENCH_ROOT / name
    shutil.rmtree(root, ignore_errors=True)
    saved = dict(os.environ)
    os.environ.update({
        "PROJECT_DATA_DIR": str(root / "data"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "SNOWFLAKE_EMULATOR_PORT": str(free_port()),
        "FMP_OFFLINE_PORT": str(free_port()),
        "FMP_OFFLINE_LATENCY_MS": str(latency_ms),
        "FMP_OFFLINE_CALLS_PER_MINUTE": str(calls_per_minute),
        "FMP_CALLS_PER_MINUTE": str(calls_per_minute),
        "SNOWFLAKE_EMULATOR_LATENCY_MS": str(warehouse_latency_ms),
    })
    for var in ("SNOWFLAKE_ACCOUNT", "FMP_API_KEY", "FMP_BASE_URL"):
        os.environ.pop(var, None)
    ensure_instance_yaml(Path(os.environ["DAGSTER_HOME"]))
    try:
        yield root
    finally:
        from resources.offline_fmp import stop_offline_fmp
        from resources.snowflake_emulator import stop_emulator

        stop_offline_fmp()
        stop_emulator()
        os.environ.clear()
        os.environ.update(saved)


def _offline_url() -> str:
    from resources.offline_fmp import ensure_offline_fmp

    return ensure_offline_fmp()


def set_offline_fmp(**knobs) -> None:
    requests.post(f"{_offline_url()}/_offline/config", json=knobs, timeout=10).raise_for_status()


def offline_fmp_stats() -> dict:
    return requests.get(f"{_offline_url()}/_offline/stats", timeout=10).json()
