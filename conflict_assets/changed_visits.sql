-- The visits of a batch that changed since VISIT_STATE was written, by watermark: CF_TOUCH (PREFIX, VISIT_ID,
-- PRESENT = in the window now, WAS = in the state, D_* = what the visit adds to the prefix's sums).
-- Candidates: visits stamped (LAST_UPDATED_DATE) after the prefix's watermark less the lookback and no later
-- than the probe's latest stamp (in microseconds; what is stamped after the probe is left to the next run,
-- so the state still adds up to the probe's sums), unless the
-- state already holds the VisitID with that stamp or a later one (so the lookback re-reads nothing a recent
-- run has seen), visits in the part of today's window the state's window did not cover, and state rows now
-- outside the window. Only the candidates are read (CF_CAND_ROWS, which incremental.sql narrows to the
-- changed ones). {batch_candidates} is that test with the batch's widest bounds, on the visit's own columns,
-- so the scan drops all other visits before any join. What a watermark cannot see (a deletion, an SSN moved
-- to another prefix, an edit that kept its old stamp, a late commit stamped before the lookback) shows in the
-- sums: the state's (kept in PREFIX_STATE) plus CF_TOUCH's deltas must add up to the sums the fingerprint
-- query measured (the run's own, or the sensor tick's that requested it); incremental.py rescans the
-- prefixes where they do not.

-- CF_CAND: each candidate's key (CAND_*) and what the state holds of it, if anything (the one read of the
-- state for the changed visits, by its lookup key VKEY; incremental.sql's CF_OLD comes from here)
CREATE OR REPLACE TEMPORARY TABLE CF_CAND AS
SELECT k.PREFIX AS CAND_PREFIX, k.VISIT_ID AS CAND_ID, s.PREFIX, s.VISIT_ID, {stored_columns}
FROM (
  SELECT x.*, {visit_key} AS VKEY FROM (
    SELECT LEFT(c.SSN, 3) AS PREFIX, v.VISIT_ID AS VISIT_ID, DATE_PART(epoch_second, v.LAST_UPDATED_DATE) AS STAMP
    FROM VISITS.VISITS v
    JOIN VISITS.CAREGIVERS c ON c.CAREGIVER_KEY = v.CAREGIVER_KEY
    JOIN {prefix_state_table} m ON m.PREFIX = LEFT(c.SSN, 3)
    JOIN ({probe_latest}) l ON l.PREFIX = m.PREFIX
    WHERE {in_window} AND c.SSN IS NOT NULL AND {visit_prefix_filter} AND ({batch_candidates})
      AND ((v.LAST_UPDATED_DATE >= DATEADD(second, m.WATERMARK - {lookback_seconds}, TO_TIMESTAMP_NTZ('1970-01-01 00:00:00'))
            AND v.LAST_UPDATED_DATE < DATEADD(microsecond, l.LATEST + 1, TO_TIMESTAMP_NTZ('1970-01-01 00:00:00')))
           OR v.VISIT_DATE < DATEADD(year, -2, m.AS_OF) OR v.VISIT_DATE > DATEADD(day, 45, m.AS_OF))
  ) x
) k
LEFT JOIN {visit_state_table} s ON {same_visit:k:s}
WHERE s.VISIT_ID IS NULL OR s.STAMP IS NULL OR k.STAMP IS NULL OR k.STAMP > s.STAMP
UNION
SELECT s.PREFIX, s.VISIT_ID, s.PREFIX, s.VISIT_ID, {stored_columns} FROM {visit_state_table} s
WHERE {fs} AND NOT (s.VISIT_DATE BETWEEN {window});

-- the candidates as they are now: detection fields, and hashes over every copy of the VisitID (one read)
CREATE OR REPLACE TEMPORARY TABLE CF_CAND_ROWS AS
SELECT r.* FROM ({candidate_rows}) r
JOIN CF_CAND k ON k.CAND_PREFIX = r.PREFIX AND k.CAND_ID = r.VISIT_ID;

CREATE OR REPLACE TEMPORARY TABLE CF_TOUCH AS
SELECT x.*, {visit_key} AS VKEY FROM (
  SELECT COALESCE(n.PREFIX, s.PREFIX) AS PREFIX, COALESCE(n.VISIT_ID, s.VISIT_ID) AS VISIT_ID,
    n.VISIT_ID IS NOT NULL AS PRESENT, s.VISIT_ID IS NOT NULL AS WAS,
    NVL(n.COPIES, 0) - NVL(s.COPIES, 0) AS D_ROWS, NVL(n.H1, 0) - NVL(s.H1, 0) AS D_H1, NVL(n.H2, 0) - NVL(s.H2, 0) AS D_H2
  FROM CF_CAND_ROWS n
  FULL OUTER JOIN (SELECT PREFIX, VISIT_ID, COPIES, H1, H2 FROM CF_CAND WHERE VISIT_ID IS NOT NULL) s
    ON s.PREFIX = n.PREFIX AND s.VISIT_ID = n.VISIT_ID
  WHERE n.VISIT_ID IS NULL OR s.VISIT_ID IS NULL OR n.H1 <> s.H1 OR n.H2 <> s.H2
) x;

