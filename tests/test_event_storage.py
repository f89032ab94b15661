"""The batched event storages record what Dagster's own SQLite and PostgreSQL storages record.

The same range runs (one that succeeds, one that fails half way) go to an instance on Dagster's storage
and to one on resources/event_storage.py's (SQLite files; databases on the real PostgreSQL server);
partition statuses, planned and reported materializations, asset entries and check results must be equal,
and the batched storage must have received batches."""

import os
from pathlib import Path

import dagster as dg
import pytest
import yaml

from resources.event_storage import BatchedPostgresEventLogStorage, BatchedSqliteEventLogStorage
from resources.local_instance import ensure_instance_yaml
from tests.pg_helpers import postgres_url, scratch_database

PARTITIONS = dg.StaticPartitionsDefinition([f"P{i:02d}" for i in range(12)])
RANGE = {"dagster/asset_partition_range_start": "P00", "dagster/asset_partition_range_end": "P11"}


class FailConfig(dg.Config):
    fail: bool = False


@dg.asset(partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run())
def upstream(context: dg.AssetExecutionContext) -> None:
    context.log.info(f"{len(context.partition_keys)} partitions")


@dg.asset(deps=[upstream], partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run(),
          check_specs=[dg.AssetCheckSpec("positive", asset="downstream")])
def downstream(context: dg.AssetExecutionContext, config: FailConfig):
    if config.fail:
        raise RuntimeError("deliberate failure")
    yield dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=True)])


BATCHES: list[int] = []


class CountingSqlite(BatchedSqliteEventLogStorage):
    def store_event_batch(self, events):
        BATCHES.append(len(events))
        super().store_event_batch(events)


class CountingPostgres(BatchedPostgresEventLogStorage):
    def store_event_batch(self, events):
        BATCHES.append(len(events))
        super().store_event_batch(events)


def _home(path: Path) -> str:
    path.mkdir(parents=True)
    return str(path)


def _history(instance: dg.DagsterInstance) -> dict:
    keys = PARTITIONS.get_partition_keys()
    runs, run_ids = [], []
    for fail in (False, True):
        result = dg.materialize([upstream, downstream], instance=instance, tags=RANGE, raise_on_error=False,
                                run_config={"ops": {"downstream": {"config": {"fail": fail}}}})
        runs.append(result.success)
        run_ids.append(result.run_id)
    status = {a.key.to_user_string(): instance.get_status_by_partition(a.key, keys, PARTITIONS)
              for a in (upstream, downstream)}
    events = {}
    for kind in (dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                 dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        records = instance.get_event_records(dg.EventRecordsFilter(event_type=kind))
        events[kind.value] = sorted((r.asset_key.to_user_string() if r.asset_key else "", r.partition_key or "")
                                    for r in records)
    checks = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(downstream.key, "positive"), limit=10)
    entries = {}
    for record in instance.get_asset_records([upstream.key, downstream.key]):
        entry = record.asset_entry
        entries[entry.asset_key.to_user_string()] = (
            entry.last_materialization.dagster_event.partition if entry.last_materialization else None,
            entry.last_materialization_record.storage_id if entry.last_materialization_record else None,
            entry.last_planned_materialization_storage_id,
            # the failed run planned downstream without materializing it: only its planned events say so
            entry.last_run_id == run_ids[-1])
    return {"runs": runs, "asset_entries": entries, "status": {k: {p: str(s) for p, s in v.items()} for k, v in status.items()},
            "events": events, "check_runs": len(checks)}


@pytest.fixture
def postgres_databases():
    """Two scratch databases on the real server: Dagster's storage and ours."""
    with (scratch_database(f"platform_events_default_{os.getpid()}") as default,
          scratch_database(f"platform_events_batched_{os.getpid()}") as batched):
        yield postgres_url(default), postgres_url(batched)


def _compare(tmp_path, default_overrides: dict, batched_overrides: dict, batched_type: type) -> None:
    with dg.instance_for_test(temp_dir=_home(tmp_path / "default"), overrides=default_overrides) as instance:
        expected = _history(instance)

    BATCHES.clear()
    with dg.instance_for_test(temp_dir=_home(tmp_path / "batched"), overrides=batched_overrides) as instance:
        assert isinstance(instance.event_log_storage, batched_type)
        got = _history(instance)

    assert expected["runs"] == [True, False]
    assert set(expected["status"]["downstream"].values()) == {"AssetPartitionStatus.FAILED"}
    assert expected["asset_entries"]["downstream"][-1]
    assert got == expected
    # planned events of both runs and the first run's reported partitions arrived as batches
    assert sum(BATCHES) >= 2 * 24 + 24
    assert max(BATCHES) > 1


def test_sqlite_batches_record_what_dagsters_sqlite_storage_records(tmp_path):
    batched = {"event_log_storage": {"module": __name__, "class": "CountingSqlite",
                                     "config": {"base_dir": str(tmp_path / "batched" / "history" / "runs")}}}
    _compare(tmp_path, {}, batched, CountingSqlite)


def test_postgres_batches_record_what_dagster_postgres_records(tmp_path, postgres_databases, monkeypatch):
    default_url, batched_url = postgres_databases
    # Dagster's own storage with batching on too: its materialization batches are the reference
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    default = {"storage": {"postgres": {"postgres_url": default_url}}}
    batched = {"run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage",
                               "config": {"postgres_url": batched_url}},
               "event_log_storage": {"module": __name__, "class": "CountingPostgres",
                                     "config": {"postgres_url": batched_url}},
               "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage",
                                    "config": {"postgres_url": batched_url}}}
    _compare(tmp_path, default, batched, CountingPostgres)


def test_instance_yaml_loads_the_batched_storage_and_keeps_a_users_own(tmp_path):
    home = tmp_path / "home"
    path = ensure_instance_yaml(home)
    config = yaml.safe_load(path.read_text())
    assert Path(config["event_log_storage"]["config"]["base_dir"]) == home.resolve() / "history" / "runs"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage) is BatchedSqliteEventLogStorage
        assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == "1000"

    path.write_text("telemetry:\n  enabled: false\n")
    ensure_instance_yaml(home)
    assert path.read_text() == "telemetry:\n  enabled: false\n"


@pytest.fixture(autouse=True)
def _restore_batch_size(monkeypatch):
    # the batched storage turns batching on for its process; keep that out of other tests
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
