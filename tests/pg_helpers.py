"""Scratch databases on the session's PostgreSQL server, and their URLs for Dagster's storage config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def scratch_database(name: str, admin: str | None = None) -> Iterator[str]:
    """Create ``name`` afresh on the server of ``admin`` (default POSTGRES_URL), yield its conninfo, drop it."""
    admin = admin or os.environ["POSTGRES_URL"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield psycopg.conninfo.make_conninfo(admin, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def postgres_url(conninfo: str, **overrides: str) -> str:
    """``conninfo`` (key=value or URL) as the postgresql:// URL dagster-postgres takes."""
    info = {**psycopg.conninfo.conninfo_to_dict(conninfo), **overrides}
    password = f":{info['password']}" if info.get("password") else ""
    return (f"postgresql://{info.get('user', 'postgres')}{password}@{info.get('host', '127.0.0.1')}:"
            f"{info.get('port', '5432')}/{info['dbname']}")
