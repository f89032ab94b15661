"""The PostgreSQL resource against the real server."""

from __future__ import annotations

import psycopg
import pytest

from resources.postgres import PostgresResource


@pytest.fixture()
def small_pool(postgres) -> PostgresResource:
    return PostgresResource(url=postgres.dsn, pool_min_size=1, pool_max_size=1, statement_timeout_ms=500,
                            connect_timeout_s=3, application_name="pool-test")


def test_connections_are_reused_from_the_pool(small_pool):
    with small_pool.connection() as conn:
        first = conn.info.backend_pid
    with small_pool.connection() as conn:
        assert conn.info.backend_pid == first


def test_timeouts_and_name_are_applied(small_pool):
    with small_pool.connection() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("500ms",)
        assert conn.execute("SELECT current_setting('application_name')").fetchone() == ("pool-test",)
        assert conn.info.get_parameters()["connect_timeout"] == "3"
    with pytest.raises(psycopg.errors.QueryCanceled):
        with small_pool.connection() as conn:
            conn.execute("SELECT pg_sleep(2)")


def test_a_failed_statement_rolls_back_and_releases_its_connection(small_pool):
    with small_pool.connection() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS pool_probe (id int primary key)")
        conn.execute("TRUNCATE pool_probe")
    with pytest.raises(psycopg.errors.UniqueViolation):
        with small_pool.connection() as conn:
            conn.execute("INSERT INTO pool_probe VALUES (1)")
            conn.execute("INSERT INTO pool_probe VALUES (1)")
    # the only connection of the pool is free again, and the first insert did not survive
    with small_pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM pool_probe").fetchone() == (0,)
    assert small_pool._pool().get_stats()["pool_available"] == 1


def test_the_embedded_server_serves_when_no_server_answers(tmp_path):
    from resources.ensure_postgres import answers, start_embedded

    server = start_embedded(tmp_path / "pgdata")
    try:
        assert answers(server.get_uri())
        with psycopg.connect(server.get_uri()) as conn:
            assert conn.execute("SELECT 1 + 1").fetchone() == (2,)
    finally:
        server.cleanup_mode = "delete"  # the run command keeps it running; the test stops and removes it
        server.cleanup()
