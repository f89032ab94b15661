"""The local Dagster instance (SQLite under DAGSTER_HOME) and its event storage that writes batches.

Dagster's SQLite event storage opens a new engine and commits twice for every event. A range run over
the S&P 500 plans and reports one event per asset and partition (~2,500 for the raw layer alone), so
on the default storage the bookkeeping costs more than the work. Dagster already groups exactly these
events (planned materializations and a range output's materializations) and hands them to
``store_event_batch`` when ``DAGSTER_EVENT_BATCH_SIZE`` is set, but the SQLite storage then stores them
one by one. This storage writes each batch in one transaction per shard; what it writes is what
``store_event`` would (tests/test_local_instance.py compares both). Production runs on dagster-postgres
(deploy/dagster.yaml) and does not use this class.

    python -m resources.local_instance     # write $DAGSTER_HOME/dagster.yaml unless it exists
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

# events per batch; Dagster reads this at every event, and sends no batch at all while it is unset
EVENT_BATCH_SIZE = "1000"


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data=inst_data)
        # batching pays off only with this storage, so the process that loads it turns it on
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)

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
        asset_events = [e for e in events if e.is_dagster_event and e.dagster_event_type in ASSET_EVENTS
                        and e.get_dagster_event().asset_key]
        if asset_events:
            # mirrored in the cross-run index shard, as store_event does, in one transaction
            with self.index_transaction() as conn:
                ids = [conn.execute(self.prepare_insert_event(e)).inserted_primary_key[0] for e in asset_events]
                self._store_asset_event_tags(conn, asset_events, ids)
                for event, event_id in zip(asset_events, ids):
                    self._store_asset_event(conn, event, event_id)
        for event in events:
            if event.is_dagster_event and event.dagster_event_type in ASSET_CHECK_EVENTS:
                with self.index_connection() as conn:
                    event_id = conn.execute(self.prepare_insert_event(event)).inserted_primary_key[0]
                self.store_asset_check_event(event, event_id)


def instance_yaml(home: Path) -> str:
    return (
        "# local instance: SQLite under DAGSTER_HOME; the event log writes Dagster's event batches at once\n"
        "event_log_storage:\n"
        "  module: resources.local_instance\n"
        "  class: BatchedSqliteEventLogStorage\n"
        "  config:\n"
        f"    base_dir: {home.resolve() / 'history' / 'runs'}\n"
        "telemetry:\n"
        "  enabled: false\n"
    )


def ensure_instance_yaml(home: Path) -> Path:
    """Write ``home``/dagster.yaml for the local instance unless one is there (a user's own wins)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    if not path.exists():
        path.write_text(instance_yaml(home))
    return path


if __name__ == "__main__":
    print(ensure_instance_yaml(Path(os.environ["DAGSTER_HOME"])))
