-- Conflict detection for the run's changed prefixes. Statements run in order on one session; placeholders
-- in braces are filled by detection.py. Every comparison spells out its NULL handling, because GREATEST and
-- LEAST ignore NULLs on DuckDB (the emulator) but return NULL on Snowflake.

-- 1. The prefixes' visits in the window, one row per (VisitID, prefix), with their hashes; then the per-visit
--    detection fields (visit_state.sql) and each usable visit's successor in its caregiver's sequence
--    (by effective start, then VisitID). CF_SEQ is what VISIT_STATE keeps for the incremental path.
CREATE OR REPLACE TEMPORARY TABLE CF_RAW AS
{visit_rows};

{visit_state};

CREATE OR REPLACE TEMPORARY TABLE CF_SEQ AS
SELECT v.*,
  {successor_columns}
FROM CF_VISITS v;

-- 3. Time overlaps. Candidate pairs come from an equi-join on (SSN, day bucket): each visit's span lasts at
--    most 2 days, so with the 1-day halo a partner's span start is within 3 days; the exact halo test and
--    the overlap test follow. Scheduled and actual intervals of both visits are compared crosswise.
CREATE OR REPLACE TEMPORARY TABLE CF_BUCKETED AS
SELECT VISIT_ID, SSN, PREFIX, PROVIDER_KEY, BUCKET, S0, S1, A0, A1, SP0, SP1 FROM CF_SEQ WHERE OVERLAP_OK;

CREATE OR REPLACE TEMPORARY TABLE CF_OVERLAPS AS
SELECT PREFIX, A_ID, B_ID, OVERLAP_SECONDS
FROM (
  SELECT a.PREFIX, a.VISIT_ID AS A_ID, b.VISIT_ID AS B_ID, {overlap_seconds} AS OVERLAP_SECONDS
  FROM CF_BUCKETED a
  JOIN (SELECT column1 AS K FROM VALUES (-3), (-2), (-1), (0), (1), (2), (3)) d ON TRUE
  JOIN CF_BUCKETED b
    ON b.SSN = a.SSN AND b.BUCKET = a.BUCKET + d.K AND a.VISIT_ID < b.VISIT_ID AND a.PROVIDER_KEY <> b.PROVIDER_KEY
  WHERE a.SP0 < b.SP1 + 86400 AND b.SP0 < a.SP1 + 86400
) o
WHERE OVERLAP_SECONDS > {tolerance_seconds};

-- 4. Travel time: consecutive visits of a caregiver at different providers that do not overlap, both with
--    GPS, farther apart than the gap allows at the given speed.
CREATE OR REPLACE TEMPORARY TABLE CF_TRAVEL AS
{travel_pairs};

-- 5. One row per (conflict, visit): both visits of a pair, each pointing at the other.
CREATE OR REPLACE TEMPORARY TABLE CF_RESULT AS
{result_rows};

-- 6. Per prefix: bad-input counts (warnings, never silent drops) and what its state rows add up to
--    (detection.py, AGGREGATES).
SELECT PREFIX, {bad_input_counts}, SUM(COPIES) AS SUM_COPIES, SUM(H1) AS SUM_H1, SUM(H2) AS SUM_H2
FROM CF_VISITS GROUP BY PREFIX
