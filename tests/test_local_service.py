"""A local service whose port another process holds fails the step at once, with no retries."""

import socket

import dagster as dg

from resources.local_service import free_port
from resources.retry import network_retry_policy
from resources.warehouse import warehouse_from_env


@dg.asset(retry_policy=network_retry_policy)
def needs_the_warehouse() -> None:
    with warehouse_from_env().get_connection():
        pass


def test_port_taken_by_a_stranger_fails_without_retries(tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("PROJECT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SNOWFLAKE_EMULATOR_PORT", str(port))
    monkeypatch.delenv("SNOWFLAKE_ACCOUNT", raising=False)
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", port))
        stranger.listen()
        result = dg.materialize([needs_the_warehouse], raise_on_error=False)
    kinds = [e.event_type_value for e in result.all_events]
    assert not result.success
    assert "STEP_UP_FOR_RETRY" not in kinds and kinds.count("STEP_FAILURE") == 1
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert f"port {port} is taken" in str(failure.step_failure_data.error.cause or failure.step_failure_data.error)
