"""SQL fragments shared by the full and the incremental detection, so both evaluate pairs identically."""

from __future__ import annotations


def overlap_seconds() -> str:
    """Largest overlap over the 4 interval pairs (scheduled/actual x scheduled/actual), in integer epoch
    seconds; -1 when an interval is unusable. Written with IFF, never GREATEST/LEAST over NULLs. Symmetric
    in a and b, which the incremental path relies on."""
    parts = []
    for x0, x1 in (("S0", "S1"), ("A0", "A1")):
        for y0, y1 in (("S0", "S1"), ("A0", "A1")):
            parts.append(
                f"IFF(a.{x0} IS NULL OR b.{y0} IS NULL, -1, "
                f"IFF(a.{x1} < b.{y1}, a.{x1}, b.{y1}) - IFF(a.{x0} > b.{y0}, a.{x0}, b.{y0}))"
            )
    return "GREATEST(" + ", ".join(parts) + ")"


def successor_columns() -> str:
    """Each visit's successor in its caregiver's sequence of travel-usable visits (by effective start, then
    VisitID): NEXT_ID (NULL for an unusable visit), NEXT_E0, NEXT_LAT, NEXT_LON, NEXT_PROVIDER."""
    window = "OVER (PARTITION BY SSN, TRAVEL_OK ORDER BY E0, VISIT_ID)"
    nexts = [f"LEAD({column}) {window} AS NEXT_{name}"
             for column, name in (("E0", "E0"), ("LAT", "LAT"), ("LON", "LON"), ("PROVIDER_KEY", "PROVIDER"))]
    return ",\n  ".join([f"IFF(TRAVEL_OK, LEAD(VISIT_ID) {window}, NULL) AS NEXT_ID", *nexts])


BAD_INPUT_RULES = [
    ("DUPLICATE_VISIT_IDS", "COPIES > 1"),
    ("BAD_SCHEDULED_TIMES", "NOT S_OK"),
    ("BAD_ACTUAL_TIMES", "NOT A_OK AND A_PRESENT"),
    ("UNUSABLE_VISITS", "NOT S_OK AND NOT A_OK AND NOT NVL(IS_MISSED, FALSE)"),
    ("WITHOUT_GPS", "LAT IS NULL OR LON IS NULL"),
    ("CLOCK_SKEW", "SKEWED"),
]


def bad_input_counts(weight: str = "1") -> str:
    """Bad-input counts over rows carrying the per-visit detection fields (warnings, never silent drops), as
    N_<rule>. ``weight`` is a column of +1/-1 when the incremental path adds new and subtracts old rows."""
    return ",\n  ".join(f"SUM(IFF({rule}, {weight}, 0)) AS N_{name}" for name, rule in BAD_INPUT_RULES)


def travel_pairs(seq_table: str, condition: str = "TRUE") -> str:
    """Travel conflicts over a table of usable visits carrying their successor (NEXT_ID, NEXT_E0, NEXT_LAT,
    NEXT_LON, NEXT_PROVIDER): different providers, both with GPS, gap >= 0, farther than the gap allows."""
    return f"""SELECT PREFIX, IFF(VISIT_ID < NEXT_ID, VISIT_ID, NEXT_ID) AS A_ID,
  IFF(VISIT_ID < NEXT_ID, NEXT_ID, VISIT_ID) AS B_ID, GAP_SECONDS, DISTANCE_KM
FROM (
  SELECT PREFIX, VISIT_ID, NEXT_ID, NEXT_E0 - E1 AS GAP_SECONDS, HAVERSINE(LAT, LON, NEXT_LAT, NEXT_LON) AS DISTANCE_KM
  FROM {seq_table}
  WHERE NEXT_ID IS NOT NULL AND PROVIDER_KEY <> NEXT_PROVIDER
    AND LAT IS NOT NULL AND LON IS NOT NULL AND NEXT_LAT IS NOT NULL AND NEXT_LON IS NOT NULL AND ({condition})
) g
WHERE GAP_SECONDS >= 0 AND DISTANCE_KM > {{min_travel_km}} AND DISTANCE_KM > GAP_SECONDS * {{speed_kmh}} / 3600.0"""


def result_rows(overlaps: str, travel: str) -> str:
    """One row per (conflict, visit): both visits of a pair, each pointing at the other.
    CONFLICTID = MD5(type|lower VisitID|higher VisitID): deterministic across runs and paths."""
    return f"""WITH pairs AS (
  SELECT PREFIX, 'TIME_OVERLAP' AS CONFLICT_TYPE, A_ID, B_ID, OVERLAP_SECONDS, NULL AS GAP_SECONDS,
    NULL AS DISTANCE_KM FROM {overlaps}
  UNION ALL
  SELECT PREFIX, 'TRAVEL_TIME', A_ID, B_ID, NULL, GAP_SECONDS, DISTANCE_KM FROM {travel}
)
SELECT PREFIX, MD5(CONFLICT_TYPE || '|' || A_ID || '|' || B_ID) AS CONFLICTID, CONFLICT_TYPE,
  A_ID AS VISIT_ID, B_ID AS OTHER_VISIT_ID, OVERLAP_SECONDS, GAP_SECONDS, DISTANCE_KM FROM pairs
UNION ALL
SELECT PREFIX, MD5(CONFLICT_TYPE || '|' || A_ID || '|' || B_ID), CONFLICT_TYPE,
  B_ID, A_ID, OVERLAP_SECONDS, GAP_SECONDS, DISTANCE_KM FROM pairs"""
