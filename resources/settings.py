"""Project-wide settings read from the environment, with the embedded defaults."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The local data folder for the embedded emulator, offline server and run artifacts."""
    path = Path(os.environ.get("PROJECT_DATA_DIR", PROJECT_ROOT / ".data")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def resolved(value):
    """The value of a ``dg.EnvVar`` left unresolved because a resource is used outside a Dagster run
    (sensors, the benchmarks, tests); any other value as it is."""
    getter = getattr(value, "get_value", None)
    return getter() if callable(getter) else value


def sensors_default_status():
    """Sensors run by default; PLATFORM_SENSORS_DEFAULT=stopped starts them stopped (staging, UI tests),
    to be turned on from the UI. A status set in the UI always wins over this default."""
    from dagster import DefaultSensorStatus

    value = os.environ.get("PLATFORM_SENSORS_DEFAULT", "running").strip().lower()
    if value not in ("running", "stopped"):
        raise ValueError(f"PLATFORM_SENSORS_DEFAULT must be 'running' or 'stopped', not {value!r}")
    return DefaultSensorStatus.RUNNING if value == "running" else DefaultSensorStatus.STOPPED
