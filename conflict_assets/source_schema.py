"""Warehouse source tables (schema VISITS) and the shared visit-row query over them."""

from __future__ import annotations

import datetime as dt
import os
import re
from functools import cache
from pathlib import Path

from conflict_assets.columns import select_list

_HERE = Path(__file__).parent


@cache
def sql_file(name: str) -> str:
    return (_HERE / name).read_text()


def statements(name: str) -> list[str]:
    """A .sql file split into statements (the connector runs one statement per execute)."""
    body = "\n".join(line for line in sql_file(name).splitlines() if not line.lstrip().startswith("--"))
    return [stmt.strip() for stmt in body.split(";") if stmt.strip()]


def table_columns() -> dict[str, list[str]]:
    """Columns of every source table, read off source_schema.sql (one place defines them)."""
    out = {}
    for stmt in statements("source_schema.sql"):
        match = re.match(r"CREATE OR REPLACE TABLE (\S+) \((.*)\)$", stmt, re.S)
        if match:
            out[match.group(1)] = [part.split()[0] for part in re.split(r",\s*(?![^()]*\))", match.group(2))]
    return out


def create_source_tables(cursor) -> None:
    for stmt in statements("source_schema.sql"):
        cursor.execute(stmt)


def as_of_date() -> dt.date:
    """The run date the window hangs off: CONFLICT_AS_OF (YYYY-MM-DD) for reproducible runs, else today."""
    raw = os.environ.get("CONFLICT_AS_OF")
    return dt.date.fromisoformat(raw) if raw else dt.datetime.now(dt.timezone.utc).date()


def prefix_filter(prefixes: list[str], column: str = "c.SSN") -> str:
    """Prefixes are validated 3-digit strings, so inlining them is safe and keeps one statement.

    A set that is mostly one range of keys is written as a BETWEEN less the few keys of the range that are
    not asked for: the emulator spends ~40 ms compiling a 250-value list, once per statement. A PREFIX
    column of the project's own tables only ever holds such keys; on the source (``c.SSN``, any text) the
    range also requires three digits, so no other text falls in it."""
    for prefix in prefixes:
        if len(prefix) != 3 or not prefix.isdigit():
            raise ValueError(f"bad SSN prefix partition key {prefix!r}")
    keys = sorted(set(prefixes))
    on_source = column == "c.SSN"
    key = f"LEFT({column}, 3)" if on_source else column
    if len(keys) > 1:
        wanted = set(keys)
        gaps = [f"{k:03d}" for k in range(int(keys[0]), int(keys[-1]) + 1) if f"{k:03d}" not in wanted]
        if len(gaps) * 4 < len(keys):
            digits = "".join(f" AND SUBSTR({column}, {i}, 1) BETWEEN '0' AND '9'" for i in (1, 2, 3) if on_source)
            skip = f" AND {key} NOT IN ({', '.join(repr(g) for g in gaps)})" if gaps else ""
            return f"{key} BETWEEN '{keys[0]}' AND '{keys[-1]}'{digits}{skip}"
    return f"{key} IN ({', '.join(repr(p) for p in prefixes)})"


def visit_rows_sql(prefixes: list[str], as_of: dt.date, select: str | None = None, extra: str = "",
                   dimensions: bool = True) -> str:
    """The visit-row query for ``prefixes``; ``extra`` is an additional AND condition (e.g. a semi-join).
    ``dimensions=False`` drops the dimension joins: detection reads only visit and caregiver columns, and then
    sees exactly the rows the per-visit hashes cover."""
    condition = prefix_filter(prefixes) + (f" AND {extra}" if extra else "")
    sql = sql_file("visit_rows.sql")
    if not dimensions:
        sql = "\n".join(line for line in sql.splitlines() if not line.startswith("LEFT JOIN VISITS."))
    return sql.format(select=select or select_list(), as_of=as_of.isoformat(), prefix_filter=condition)
