"""The local Dagster instance: SQLite under DAGSTER_HOME, with the event log of resources/event_storage.py.

    python -m resources.local_instance     # write $DAGSTER_HOME/dagster.yaml unless it exists
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def instance_yaml(home: Path) -> str:
    return (
        "# local instance: SQLite under DAGSTER_HOME; the event log writes Dagster's event batches at once\n"
        "event_log_storage:\n"
        "  module: resources.event_storage\n"
        "  class: BatchedSqliteEventLogStorage\n"
        "  config:\n"
        f"    base_dir: {json.dumps(str(home.resolve() / 'history' / 'runs'))}\n"
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
