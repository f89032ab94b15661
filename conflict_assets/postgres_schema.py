"""Idempotent PostgreSQL setup: conflictvisitmaps, its view and indexes, and the per-prefix sync state."""

from __future__ import annotations

from conflict_assets.columns import COLUMNS
from conflict_assets.source_schema import statements
from resources.postgres import PostgresResource

_LOCK_KEY = 4_042_004  # advisory lock: concurrent runs must not race on CREATE ... IF NOT EXISTS


def ddl() -> list[str]:
    columns = ",\n  ".join(f'"{name}" {pg_type}' for name, pg_type, _ in COLUMNS)
    return [stmt.replace("{columns}", columns) for stmt in statements("postgres_schema.sql")]


def setup_postgres(postgres: PostgresResource) -> None:
    with postgres.connection() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for stmt in ddl():
            conn.execute(stmt)


def ensure_postgres(postgres: PostgresResource) -> None:
    """Run the setup only when something is missing: the full setup takes an exclusive lock (ALTER TABLE)
    and ANALYZEs the whole table, which every sync run should not pay for or wait on."""
    with postgres.connection() as conn:
        present = conn.execute(
            "SELECT to_regclass('public.conflictvisitmaps') IS NOT NULL"
            " AND to_regclass('public.vw_conflictvisitmaps_base') IS NOT NULL"
            " AND to_regclass('public.conflict_sync_state') IS NOT NULL"
            " AND EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name = 'conflict_sync_state' AND column_name = 'seq')"
        ).fetchone()[0]
    if not present:
        setup_postgres(postgres)
