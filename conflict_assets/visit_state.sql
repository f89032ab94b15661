-- Per-visit detection fields from CF_RAW (deduplicated visit rows with their hashes), shared by the full and
-- the incremental path so both compute exactly the same values. An interval is usable when both ends are
-- present, end > start and it lasts at most a day; an actual interval must also start within a day of the
-- schedule. The rest is bad input: counted, and left out of detection. Times are integer epoch seconds.
-- VKEY and DKEY: the state's lookup keys (detection.py, lookup_keys).
CREATE OR REPLACE TEMPORARY TABLE CF_VISITS AS
SELECT w.*, {visit_key} AS VKEY, {day_key} AS DKEY FROM (
SELECT PREFIX, VISIT_ID, H1, H2, SSN, PROVIDER_KEY, IS_MISSED, LAT, LON, COPIES, SKEWED, A_PRESENT, S_OK, A_OK,
  S0, S1, A0, A1, E0, E1, SP0, SP1, CAST(FLOOR(SP0 / 86400) AS BIGINT) AS BUCKET, TRAVEL_OK,
  TRAVEL_OK AND SP1 - SP0 <= 172800 AS OVERLAP_OK, VISIT_DATE, STAMP, CAST(FLOOR(E0 / 86400) AS BIGINT) AS DAY
FROM (
  SELECT y.*,
    IFF(A_OK, A0, S0) AS E0, IFF(A_OK, A1, S1) AS E1,
    -- the span both intervals cover; given the rules above it lasts at most 2 days (the bucket join relies on it)
    IFF(S_OK AND A_OK, IFF(S0 < A0, S0, A0), IFF(A_OK, A0, S0)) AS SP0,
    IFF(S_OK AND A_OK, IFF(S1 > A1, S1, A1), IFF(A_OK, A1, S1)) AS SP1,
    NOT NVL(IS_MISSED, FALSE) AND (S_OK OR A_OK) AS TRAVEL_OK
  FROM (
    SELECT x.*,
      IFF(S_OK, DATE_PART(epoch_second, S_START), NULL) AS S0, IFF(S_OK, DATE_PART(epoch_second, S_END), NULL) AS S1,
      IFF(A_OK, DATE_PART(epoch_second, A_START), NULL) AS A0, IFF(A_OK, DATE_PART(epoch_second, A_END), NULL) AS A1
    FROM (
      SELECT r.*,
        NVL(S_START IS NOT NULL AND S_END IS NOT NULL AND S_END > S_START
            AND DATEDIFF(second, S_START, S_END) <= 86400, FALSE) AS S_OK,
        NVL(A_START IS NOT NULL AND A_END IS NOT NULL AND A_END > A_START
            AND DATEDIFF(second, A_START, A_END) <= 86400
            AND (S_START IS NULL OR ABS(DATEDIFF(second, S_START, A_START)) <= 86400), FALSE) AS A_OK,
        (A_START IS NOT NULL OR A_END IS NOT NULL) AS A_PRESENT
      FROM CF_RAW r
    ) x
  ) y
) z
) w
