"""Offline, FMP-compatible HTTP server with deterministic synthetic data for the S&P 500.

Importing this package is cheap; the server and its data generators load on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from resources.local_service import stop_service
from resources.settings import data_dir, env_float, env_int

if TYPE_CHECKING:
    from resources.offline_fmp.server import OfflineFMPServer

OFFLINE_API_KEY = "offline-demo-key"
DEFAULT_PORT = 47652


def state_dir() -> Path:
    return data_dir() / "offline_fmp"


def offline_calls_per_minute() -> int:
    """The offline server's rate limit (FMP_OFFLINE_CALLS_PER_MINUTE, default 3000 as on Ultimate)."""
    return env_int("FMP_OFFLINE_CALLS_PER_MINUTE", 3000)


def service_args() -> list[str]:
    """Command-line knobs for the detached server, from FMP_OFFLINE_* environment variables."""
    import os

    args = [
        "--latency-ms", str(env_float("FMP_OFFLINE_LATENCY_MS", 0.0)),
        "--calls-per-minute", str(offline_calls_per_minute()),
        "--plan", os.environ.get("FMP_OFFLINE_PLAN") or "premium",
    ]
    as_of = os.environ.get("FMP_OFFLINE_AS_OF")
    if as_of:  # without it the server follows the calendar day
        args += ["--as-of", as_of]
    return args


def ensure_offline_fmp() -> str:
    """Start this data folder's offline FMP server if needed; return its base URL.

    A server that is already running keeps the knobs it was started with; change them at run time
    with POST /_offline/config or stop it with ``stop_offline_fmp()``.
    """
    from resources.local_service import ensure_service

    port = ensure_service(
        "offline FMP server",
        "resources.offline_fmp",
        state_dir(),
        env_int("FMP_OFFLINE_PORT", DEFAULT_PORT),
        service_args(),
    )
    return f"http://127.0.0.1:{port}"


def stop_offline_fmp() -> bool:
    return stop_service(state_dir())


def make_server(port: int = 0, **config: Any) -> "OfflineFMPServer":
    """A bound offline FMP server (call ``serve_forever`` in a thread); knobs as in ``OfflineConfig``."""
    from resources.offline_fmp.server import make_server as _make_server

    return _make_server(port, **config)


__all__ = ["OFFLINE_API_KEY", "DEFAULT_PORT", "ensure_offline_fmp", "stop_offline_fmp", "make_server", "state_dir"]
