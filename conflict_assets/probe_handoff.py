"""The source sensor's probe, handed to the runs it requests: a run then does not scan the source again.

A tick that requests runs saves its probe (fingerprints, sums, watermarks, per prefix) under the requested
state's digest, and tags each run with it. A run with the tag loads it instead of probing. What changed after
the tick is left to the next tick: the run reads only visits stamped up to the probe's latest stamp
(incremental.py; to the microsecond), so its state adds up to the probe's sums; an edit it cannot place (a
visit edited before and again after the tick, a late commit) makes them disagree, and its prefix is
rescanned as always.
A probe older than PROBE_MAX_AGE_SECONDS, of another as-of date or other parameters, or missing a prefix
(a retried run after the rows were pruned) is not used: the run probes itself.
"""

from __future__ import annotations

import datetime as dt
import re

from conflict_assets.detection import PROBE_TABLE, DetectionParams, Probe, literal_rows
from conflict_assets.source_schema import prefix_filter

PROBE_TAG = "conflicts/probe"
PROBE_MAX_AGE_SECONDS = 3600
_ID = re.compile(r"[0-9a-f]{32}")  # a tag is editable in the UI: only a digest reaches SQL


def save_probe(cursor, found: Probe, probe_id: str, as_of: dt.date, params: DetectionParams) -> None:
    """Replace the probe saved under ``probe_id``, and drop every probe too old to be used."""
    if not _ID.fullmatch(probe_id):
        raise ValueError("a probe id is an MD5 hex digest")
    columns = [("PROBE_ID", "VARCHAR"), ("PREFIX", "VARCHAR"), ("FINGERPRINT", "VARCHAR"), ("VISITS", "BIGINT"),
               ("H1", "BIGINT"), ("H2", "BIGINT"), ("WATERMARK", "BIGINT"), ("LATEST", "BIGINT")]
    rows = [(probe_id, p, fp, *found.sums[p], found.watermarks[p], found.latest[p])
            for p, (fp, _) in found.current.items()]
    cursor.execute(f"DELETE FROM {PROBE_TABLE} WHERE PROBE_ID = '{probe_id}' OR PROBED_AT < "
                   f"DATEADD(second, -{PROBE_MAX_AGE_SECONDS}, CURRENT_TIMESTAMP()::TIMESTAMP_NTZ)")
    cursor.execute(f"INSERT INTO {PROBE_TABLE} SELECT *, '{found.basis}', TO_DATE('{as_of.isoformat()}'), "
                   f"'{params.tag()}', CURRENT_TIMESTAMP()::TIMESTAMP_NTZ FROM ({literal_rows(rows, columns)})")


def load_probe(cursor, probe_id: str | None, prefixes: list[str], as_of: dt.date,
               params: DetectionParams) -> Probe | None:
    """The saved probe of ``prefixes``, if it is usable for this run; else None (the caller has ensured the
    tables: detection.plan)."""
    if not probe_id or not _ID.fullmatch(probe_id):
        return None
    cursor.execute(f"SELECT PREFIX, FINGERPRINT, VISITS, H1, H2, WATERMARK, LATEST, BASIS FROM {PROBE_TABLE} "
                   f"WHERE PROBE_ID = '{probe_id}' AND AS_OF = TO_DATE('{as_of.isoformat()}') "
                   f"AND PARAMS = '{params.tag()}' AND PROBED_AT >= DATEADD(second, -{PROBE_MAX_AGE_SECONDS}, "
                   f"CURRENT_TIMESTAMP()::TIMESTAMP_NTZ) AND {prefix_filter(prefixes, 'PREFIX')}")
    rows = cursor.fetchall()
    if len(rows) != len(prefixes):
        return None
    n = {r[0]: int(r[2]) for r in rows}
    return Probe(current={r[0]: (r[1], n[r[0]]) for r in rows},
                 sums={r[0]: (n[r[0]], int(r[3]), int(r[4])) for r in rows},
                 watermarks={r[0]: None if r[5] is None else int(r[5]) for r in rows},
                 latest={r[0]: None if r[6] is None else int(r[6]) for r in rows},
                 basis=rows[0][7])
