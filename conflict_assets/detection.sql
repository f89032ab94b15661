-- Conflict detection for the run's changed prefixes. Statements run in order on one session; placeholders
-- in braces are filled by detection.py. Every comparison spells out its NULL handling, because GREATEST and
-- LEAST ignore NULLs on DuckDB (the emulator) but return NULL on Snowflake.

-- 1. The prefixes' visits in the window, one row per VisitID, with their usable intervals. An interval is
--    usable when both ends are present, end > start and it lasts at most a day; an actual interval must also
--    start within a day of the schedule. The rest is bad input: counted, and left out of detection.
CREATE OR REPLACE TEMPORARY TABLE CF_RAW AS
{visit_rows};

CREATE OR REPLACE TEMPORARY TABLE CF_VISITS AS
SELECT VISIT_ID, SSN, PREFIX, PROVIDER_KEY, IS_MISSED, LAT, LON, COPIES, SKEWED, A_PRESENT,
  IFF(S_OK, S_START, NULL) AS S_START, IFF(S_OK, S_END, NULL) AS S_END,
  IFF(A_OK, A_START, NULL) AS A_START, IFF(A_OK, A_END, NULL) AS A_END,
  S_OK, A_OK
FROM (
  SELECT r.*,
    NVL(S_START IS NOT NULL AND S_END IS NOT NULL AND S_END > S_START
        AND DATEDIFF(second, S_START, S_END) <= 86400, FALSE) AS S_OK,
    NVL(A_START IS NOT NULL AND A_END IS NOT NULL AND A_END > A_START
        AND DATEDIFF(second, A_START, A_END) <= 86400
        AND (S_START IS NULL OR ABS(DATEDIFF(second, S_START, A_START)) <= 86400), FALSE) AS A_OK,
    (A_START IS NOT NULL OR A_END IS NOT NULL) AS A_PRESENT
  FROM CF_RAW r
) x;

-- 2. Effective interval (actual if usable, else scheduled) and the span both intervals cover. Given the rules
--    above a span lasts at most 2 days, which the bucket join below relies on.
CREATE OR REPLACE TEMPORARY TABLE CF_USABLE AS
SELECT VISIT_ID, SSN, PREFIX, PROVIDER_KEY, LAT, LON, S_START, S_END, A_START, A_END,
  IFF(A_OK, A_START, S_START) AS E_START, IFF(A_OK, A_END, S_END) AS E_END,
  IFF(S_OK AND A_OK, IFF(S_START < A_START, S_START, A_START), IFF(A_OK, A_START, S_START)) AS SPAN_START,
  IFF(S_OK AND A_OK, IFF(S_END > A_END, S_END, A_END), IFF(A_OK, A_END, S_END)) AS SPAN_END
FROM CF_VISITS
WHERE NOT NVL(IS_MISSED, FALSE) AND (S_OK OR A_OK);

-- 3. Time overlaps. Candidate pairs come from an equi-join on (SSN, day bucket): each visit's span lasts at
--    most 2 days, so with the 1-day halo a partner's span start is within 3 days; the exact halo test and
--    the overlap test follow. Scheduled and actual intervals of both visits are compared crosswise.
CREATE OR REPLACE TEMPORARY TABLE CF_BUCKETED AS
SELECT VISIT_ID, SSN, PREFIX, PROVIDER_KEY, FLOOR(SP0 / 86400) AS BUCKET, S0, S1, A0, A1, SP0, SP1
FROM (
  -- integer epoch seconds: the pair test below is plain integer arithmetic, much cheaper than timestamps
  SELECT VISIT_ID, SSN, PREFIX, PROVIDER_KEY,
    DATE_PART(epoch_second, S_START) AS S0, DATE_PART(epoch_second, S_END) AS S1,
    DATE_PART(epoch_second, A_START) AS A0, DATE_PART(epoch_second, A_END) AS A1,
    DATE_PART(epoch_second, SPAN_START) AS SP0, DATE_PART(epoch_second, SPAN_END) AS SP1
  FROM CF_USABLE
) e
WHERE SP1 - SP0 <= 172800;

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

-- 4. Travel time: consecutive visits of a caregiver (by effective start, then VisitID) at different
--    providers that do not overlap, both with GPS, farther apart than the gap allows at the given speed.
CREATE OR REPLACE TEMPORARY TABLE CF_TRAVEL AS
SELECT PREFIX, IFF(VISIT_ID < NEXT_ID, VISIT_ID, NEXT_ID) AS A_ID, IFF(VISIT_ID < NEXT_ID, NEXT_ID, VISIT_ID) AS B_ID,
  GAP_SECONDS, DISTANCE_KM
FROM (
  SELECT PREFIX, VISIT_ID, NEXT_ID, DATEDIFF(second, E_END, NEXT_START) AS GAP_SECONDS,
    HAVERSINE(LAT, LON, NEXT_LAT, NEXT_LON) AS DISTANCE_KM, PROVIDER_KEY, NEXT_PROVIDER
  FROM (
    SELECT PREFIX, VISIT_ID, E_END, LAT, LON, PROVIDER_KEY,
      LEAD(VISIT_ID) OVER (PARTITION BY SSN ORDER BY E_START, VISIT_ID) AS NEXT_ID,
      LEAD(E_START) OVER (PARTITION BY SSN ORDER BY E_START, VISIT_ID) AS NEXT_START,
      LEAD(LAT) OVER (PARTITION BY SSN ORDER BY E_START, VISIT_ID) AS NEXT_LAT,
      LEAD(LON) OVER (PARTITION BY SSN ORDER BY E_START, VISIT_ID) AS NEXT_LON,
      LEAD(PROVIDER_KEY) OVER (PARTITION BY SSN ORDER BY E_START, VISIT_ID) AS NEXT_PROVIDER
    FROM CF_USABLE
  ) seq
  WHERE NEXT_ID IS NOT NULL AND PROVIDER_KEY <> NEXT_PROVIDER
    AND LAT IS NOT NULL AND LON IS NOT NULL AND NEXT_LAT IS NOT NULL AND NEXT_LON IS NOT NULL
) g
WHERE GAP_SECONDS >= 0 AND DISTANCE_KM > {min_travel_km}
  AND DISTANCE_KM > GAP_SECONDS * {speed_kmh} / 3600.0;

-- 5. One row per (conflict, visit): both visits of a pair, each pointing at the other.
CREATE OR REPLACE TEMPORARY TABLE CF_RESULT AS
WITH pairs AS (
  SELECT PREFIX, 'TIME_OVERLAP' AS CONFLICT_TYPE, A_ID, B_ID, OVERLAP_SECONDS, NULL AS GAP_SECONDS,
    NULL AS DISTANCE_KM FROM CF_OVERLAPS
  UNION ALL
  SELECT PREFIX, 'TRAVEL_TIME', A_ID, B_ID, NULL, GAP_SECONDS, DISTANCE_KM FROM CF_TRAVEL
)
SELECT PREFIX, MD5(CONFLICT_TYPE || '|' || A_ID || '|' || B_ID) AS CONFLICTID, CONFLICT_TYPE,
  A_ID AS VISIT_ID, B_ID AS OTHER_VISIT_ID, OVERLAP_SECONDS, GAP_SECONDS, DISTANCE_KM FROM pairs
UNION ALL
SELECT PREFIX, MD5(CONFLICT_TYPE || '|' || A_ID || '|' || B_ID), CONFLICT_TYPE,
  B_ID, A_ID, OVERLAP_SECONDS, GAP_SECONDS, DISTANCE_KM FROM pairs;

-- 6. Bad-input counts per prefix (warnings, never silent drops).
SELECT PREFIX, COUNT(*) AS VISITS,
  COUNT_IF(COPIES > 1) AS DUPLICATE_VISIT_IDS,
  COUNT_IF(NOT S_OK) AS BAD_SCHEDULED_TIMES,
  COUNT_IF(NOT A_OK AND A_PRESENT) AS BAD_ACTUAL_TIMES,
  COUNT_IF(NOT S_OK AND NOT A_OK AND NOT NVL(IS_MISSED, FALSE)) AS UNUSABLE_VISITS,
  COUNT_IF(LAT IS NULL OR LON IS NULL) AS WITHOUT_GPS,
  COUNT_IF(SKEWED) AS CLOCK_SKEW
FROM CF_VISITS GROUP BY PREFIX
