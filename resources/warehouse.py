"""The warehouse resource: dagster-snowflake's SnowflakeResource, on the embedded emulator by default.

With ``SNOWFLAKE_ACCOUNT`` set it is plain Snowflake. Without it, the same resource points the real
Snowflake connector at the embedded emulator (started on first use, never at definition time).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

import pandas as pd
import snowflake.connector
from dagster import EnvVar
from dagster_snowflake import SnowflakeResource
from pydantic import Field

from resources.snowflake_emulator import connection_args, ensure_emulator

DEFAULT_DATABASE = "PLATFORM"
_STAGE = "BULK_LOAD_STAGE"


class Warehouse(SnowflakeResource):
    """SnowflakeResource whose connections are always released, and that can run on the emulator."""

    emulated: bool = Field(default=False, description="Serve from the embedded Snowflake emulator.")

    @contextmanager
    def get_connection(self, raw_conn: bool = True) -> Iterator[snowflake.connector.SnowflakeConnection]:
        # Upstream neither rolls back nor closes when the body raises; this always does both.
        args = dict(self._connection_args)
        if self.emulated:
            args.update(connection_args(ensure_emulator()))
        conn = snowflake.connector.connect(**args)
        try:
            yield conn
            if not self.autocommit:
                conn.commit()
        except BaseException:
            if not self.autocommit and not conn.is_closed():
                conn.rollback()
            raise
        finally:
            conn.close()


def warehouse_from_env() -> Warehouse:
    """Real Snowflake when SNOWFLAKE_ACCOUNT is set, else the embedded emulator."""
    database = os.environ.get("SNOWFLAKE_DATABASE", DEFAULT_DATABASE)
    schema = os.environ.get("SNOWFLAKE_SCHEMA", "PUBLIC")
    if os.environ.get("SNOWFLAKE_ACCOUNT"):
        auth = (
            {"private_key": EnvVar("SNOWFLAKE_PRIVATE_KEY")}
            if os.environ.get("SNOWFLAKE_PRIVATE_KEY")
            else {"password": EnvVar("SNOWFLAKE_PASSWORD")}
        )
        return Warehouse(
            account=EnvVar("SNOWFLAKE_ACCOUNT"),
            user=EnvVar("SNOWFLAKE_USER"),
            role=os.environ.get("SNOWFLAKE_ROLE"),
            warehouse=os.environ.get("SNOWFLAKE_WAREHOUSE"),
            database=database,
            schema=schema,
            **auth,
        )
    return Warehouse(account="emulator", user="emulator", password="emulator", database=database, schema=schema,
                     emulated=True)


@contextmanager
def transaction(cursor) -> Iterator[None]:
    """BEGIN ... COMMIT around the body; ROLLBACK when it raises, keeping the body's error even if the
    rollback itself fails (the connection's close rolls back too)."""
    cursor.execute("BEGIN")
    try:
        yield
        cursor.execute("COMMIT")
    except BaseException:
        try:
            cursor.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - the original error is the one worth raising
            pass
        raise


def bulk_load(cursor, table: str, frame: pd.DataFrame, columns: dict[str, str] | None = None) -> int:
    """Load ``frame`` into ``table`` with PUT of a Parquet file and one COPY INTO.

    This is Snowflake's bulk path and the emulator's; it never goes row by row. ``columns`` maps a
    target column to the SELECT expression over ``$1`` (default: ``$1:COL`` for every column);
    ``PARSE_JSON($1:PAYLOAD)`` keeps a JSON string as VARIANT. Returns the rows loaded.
    """
    if frame.empty:
        return 0
    columns = columns or {col: f"$1:{col}" for col in frame.columns}
    # A temporary stage lives as long as the session, so no cleanup statement is needed (and it is
    # created once per connection: every statement is a round trip).
    if not getattr(cursor.connection, "_bulk_load_stage", False):
        cursor.execute(f"CREATE TEMPORARY STAGE IF NOT EXISTS {_STAGE}")
        cursor.connection._bulk_load_stage = True
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{uuid.uuid4().hex}.parquet"
        frame.to_parquet(path, index=False)
        cursor.execute(f"PUT file://{path} @{_STAGE} AUTO_COMPRESS=FALSE OVERWRITE=TRUE")
    cursor.execute(
        f"COPY INTO {table} ({', '.join(columns)}) "
        f"FROM (SELECT {', '.join(columns.values())} FROM @{_STAGE}/{path.name}) FILE_FORMAT = (TYPE = PARQUET)"
    )
    return sum(int(row[2]) for row in cursor.fetchall() if str(row[1]).upper() == "LOADED")
