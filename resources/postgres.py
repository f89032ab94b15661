"""The PostgreSQL resource: psycopg 3 with a process-wide connection pool."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from dagster import ConfigurableResource, EnvVar
from psycopg_pool import ConnectionPool
from pydantic import Field

from resources.settings import data_dir, resolved

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

_pools: dict[tuple, ConnectionPool] = {}
_pools_lock = threading.Lock()


class PostgresResource(ConfigurableResource):
    """Pooled PostgreSQL connections with connect and statement timeouts applied to every session."""

    url: str = Field(default=DEFAULT_URL, description="libpq connection URL (POSTGRES_URL).")
    application_name: str = "dagster-platform"
    connect_timeout_s: int = 10
    statement_timeout_ms: int = 600_000
    pool_min_size: int = 1
    pool_max_size: int = 4

    @property
    def dsn(self) -> str:
        """The connection URL, also when the resource is used outside a run with an unresolved EnvVar."""
        return resolved(self.url)

    def _pool(self) -> ConnectionPool:
        key = (self.dsn, self.application_name, self.connect_timeout_s, self.statement_timeout_ms,
               self.pool_min_size, self.pool_max_size, os.getpid())
        with _pools_lock:
            pool = _pools.get(key)
            if pool is None:
                pool = ConnectionPool(
                    self.dsn,
                    min_size=self.pool_min_size,
                    max_size=self.pool_max_size,
                    kwargs={
                        "connect_timeout": self.connect_timeout_s,
                        "application_name": self.application_name,
                        "options": f"-c statement_timeout={self.statement_timeout_ms}",
                    },
                    check=ConnectionPool.check_connection,
                    open=True,
                    name=self.application_name,
                )
                _pools[key] = pool
            return pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in one transaction: committed on success, rolled back on error,
        and always returned to the pool (a broken one is discarded)."""
        with self._pool().connection() as conn:
            yield conn


def close_pools() -> None:
    """Close every pool of this process (tests, and before a process hands off its databases)."""
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


def url_file() -> Path:
    """Where ``make postgres`` records the URL of an embedded server it had to start."""
    return data_dir() / "postgres" / "url"


def postgres_from_env() -> PostgresResource:
    """POSTGRES_URL, else the embedded server recorded in the data folder, else the local default.

    POSTGRES_URL stays an EnvVar so that a password in it never shows in the UI's resource config."""
    if os.environ.get("POSTGRES_URL"):
        return PostgresResource(url=EnvVar("POSTGRES_URL"))
    if url_file().exists():
        return PostgresResource(url=url_file().read_text().strip())
    return PostgresResource(url=DEFAULT_URL)
