"""Test session setup: every test talks to real services, isolated from a developer's data.

The embedded Snowflake emulator and the offline FMP server run under a temporary data folder on
free ports; PostgreSQL tests use a database of their own on the real server.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg
import pytest

from resources.local_service import free_port

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="platform-tests-"))
os.environ["PROJECT_DATA_DIR"] = str(_SESSION_DIR / "data")
os.environ["DAGSTER_HOME"] = str(_SESSION_DIR / "dagster_home")
os.environ["SNOWFLAKE_EMULATOR_PORT"] = str(free_port())
os.environ["FMP_OFFLINE_PORT"] = str(free_port())
for name in ("SNOWFLAKE_ACCOUNT", "FMP_API_KEY", "FMP_BASE_URL"):
    os.environ.pop(name, None)
(_SESSION_DIR / "dagster_home").mkdir(parents=True, exist_ok=True)

_BASE_PG_URL = os.environ.get("POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# one database per test session, so parallel sessions never disturb each other
_TEST_DB = f"platform_test_{os.getpid()}"


def _admin(sql: str) -> None:
    with psycopg.connect(_BASE_PG_URL, autocommit=True) as conn:
        conn.execute(sql)


_admin(f"DROP DATABASE IF EXISTS {_TEST_DB} WITH (FORCE)")
_admin(f"CREATE DATABASE {_TEST_DB}")
os.environ["POSTGRES_URL"] = psycopg.conninfo.make_conninfo(_BASE_PG_URL, dbname=_TEST_DB)


@pytest.fixture(scope="session", autouse=True)
def _stop_embedded_services():
    yield
    from resources.postgres import close_pools
    from resources.snowflake_emulator import stop_emulator

    close_pools()
    _admin(f"DROP DATABASE IF EXISTS {_TEST_DB} WITH (FORCE)")

    stop_emulator()
    try:
        from resources.offline_fmp import stop_offline_fmp
    except ImportError:
        return
    stop_offline_fmp()


@pytest.fixture(scope="session")
def warehouse():
    from resources.warehouse import warehouse_from_env

    return warehouse_from_env()


@pytest.fixture(scope="session")
def postgres():
    from resources.postgres import postgres_from_env

    return postgres_from_env()
