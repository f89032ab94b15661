"""Dagster event storages that write Dagster's event batches at once (local SQLite and production PostgreSQL).

A range run over the S&P 500 plans and reports one event per asset and partition: ~2,500 planned events
for the raw layer alone. Dagster groups exactly these events (planned materializations, and the
materializations of a range output) and hands them to ``store_event_batch`` when
``DAGSTER_EVENT_BATCH_SIZE`` is set. Its SQLite storage then still stores them one by one, each with a
new engine and two commits; its PostgreSQL storage writes materialization batches in one INSERT but
planned events one connection each. These storages write every batch in one INSERT (per shard) and one
transaction for the cross-run index; what they record equals what ``store_event`` records
(tests/test_event_storage.py compares them with Dagster's own storages on the same runs).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence

from dagster import DagsterEventType
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster_postgres.event_log.event_log import PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

# events per batch; Dagster reads the variable at every event and sends no batch at all while it is unset
EVENT_BATCH_SIZE = "1000"


def _enable_batches() -> None:
    # batching pays off only with these storages, so the process that loads one turns it on
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)


def _asset_events(events: Sequence[EventLogEntry]) -> list[int]:
    """Indexes of the events store_event mirrors into the asset index."""
    return [i for i, e in enumerate(events)
            if e.is_dagster_event and e.dagster_event_type in ASSET_EVENTS and e.get_dagster_event().asset_key]


def _check_events(events: Sequence[EventLogEntry]) -> list[int]:
    return [i for i, e in enumerate(events) if e.is_dagster_event and e.dagster_event_type in ASSET_CHECK_EVENTS]


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """The local instance's event log (SQLite under DAGSTER_HOME)."""

    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data=inst_data)
        _enable_batches()

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        by_run: dict[str, list[EventLogEntry]] = defaultdict(list)
        for event in events:
            by_run[event.run_id].append(event)
        for run_id, run_events in by_run.items():
            self._store_run_batch(run_id, run_events)

    def _store_run_batch(self, run_id: str, events: list[EventLogEntry]) -> None:
        with self.run_connection(run_id) as conn:
            conn.execute(self.prepare_insert_event_batch(events))
        asset_events = [events[i] for i in _asset_events(events)]
        if asset_events:
            # mirrored in the cross-run index shard, as store_event does, in one transaction
            with self.index_transaction() as conn:
                ids = [conn.execute(self.prepare_insert_event(e)).inserted_primary_key[0] for e in asset_events]
                self._store_asset_event_tags(conn, asset_events, ids)
                for event, event_id in zip(asset_events, ids):
                    self._store_asset_event(conn, event, event_id)
        for i in _check_events(events):
            with self.index_connection() as conn:
                event_id = conn.execute(self.prepare_insert_event(events[i])).inserted_primary_key[0]
            self.store_asset_check_event(events[i], event_id)


class BatchedPostgresEventLogStorage(PostgresEventLogStorage):
    """The production event log (dagster-postgres); deploy/dagster.yaml names it."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True, inst_data=None, token_provider=None):
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        _enable_batches()

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(pg_url_from_config(config_value), config_value.get("should_autocreate_tables", True), inst_data,
                   get_token_provider_from_config(config_value))

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        kinds = {e.get_dagster_event().event_type for e in events}
        if kinds in ({DagsterEventType.ASSET_MATERIALIZATION}, {DagsterEventType.ASSET_OBSERVATION}):
            return super().store_event_batch(events)  # Dagster's own one-INSERT path
        with self._connect() as conn:
            rows = conn.execute(self.prepare_insert_event_batch(events).returning(SqlEventLogStorageTable.c.id))
            ids = [row[0] for row in rows.fetchall()]
        indexed = _asset_events(events)
        if indexed:
            with self.index_transaction() as conn:
                self._store_asset_event_tags(conn, [events[i] for i in indexed], [ids[i] for i in indexed])
                for i in indexed:
                    self._store_asset_event(conn, events[i], ids[i])
        for i in _check_events(events):
            self.store_asset_check_event(events[i], ids[i])
