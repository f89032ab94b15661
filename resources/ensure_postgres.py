"""Make sure a PostgreSQL server answers before a run or the tests.

Order: ``POSTGRES_URL`` (must answer, never replaced), the machine's cluster on 127.0.0.1:5432
(started with pg_ctlcluster when it is down), and last an embedded server under the data folder
(``pgserver``). The URL chosen is written to the data folder for every process to read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from resources.postgres import DEFAULT_URL, url_file
from resources.settings import data_dir


def answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def start_cluster() -> bool:
    if not shutil.which("pg_ctlcluster") or not Path("/etc/postgresql").is_dir():
        return False
    for version in sorted(os.listdir("/etc/postgresql")):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            check=False, capture_output=True,
        )
    for _ in range(30):
        if answers(DEFAULT_URL):
            return True
        time.sleep(1)
    return False


def start_embedded(pgdata: Path):
    """An embedded PostgreSQL (pgserver's bundled binaries) that outlives this process."""
    import pgserver

    return pgserver.get_server(pgdata, cleanup_mode=None)


def main() -> int:
    if url := os.environ.get("POSTGRES_URL"):
        if not answers(url):
            print("POSTGRES_URL is set but the server does not answer", file=sys.stderr)
            return 1
        print("postgres: using POSTGRES_URL")
        return 0
    if answers(DEFAULT_URL) or start_cluster():
        url_file().unlink(missing_ok=True)
        print("postgres: using the local server on 127.0.0.1:5432")
        return 0
    uri = start_embedded(data_dir() / "postgres" / "pgdata").get_uri()
    url_file().parent.mkdir(parents=True, exist_ok=True)
    url_file().write_text(uri)
    print("postgres: started the embedded server under the data folder")
    return 0


if __name__ == "__main__":
    sys.exit(main())
