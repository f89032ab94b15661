-- Per-prefix change probe for the run's prefixes, and a digest of every dimension table, in ONE query.
-- Every column of the visit and its caregiver goes into the row hash (detection.py, row_hash: the visit's
-- hash and its caregiver's, each modulo a prime, added); it is summed modulo two primes (order-independent,
-- exact on both engines; HASH_AGG does not exist on the emulator). The visits are summed per caregiver
-- first (an integer key), then each caregiver's hash is added once per visit: the same sums as row by row,
-- without joining and hashing the caregiver for every visit. A change in any dimension row changes the
-- digest and so every prefix's fingerprint: conservative, never a missed change, and the sync's IS DISTINCT
-- FROM still writes only the rows that really differ.
-- W, the latest LAST_UPDATED_DATE (epoch seconds), is the prefix's watermark for the next incremental run;
-- U, the same in microseconds, is the horizon of that run's reads by stamp (exact on both engines, where
-- DATE_PART(epoch_second) rounds on the emulator and truncates on Snowflake).
-- Placeholders: the two column hashes, the primes, the as-of date, the prefix filter and the dimension
-- digest SELECTs.
SELECT LEFT(c.SSN, 3) AS K, SUM(x.N) AS N,
  SUM(x.H1 + x.N * ({caregiver_hash} % {p1})) AS H1, SUM(x.H2 + x.N * ({caregiver_hash} % {p2})) AS H2,
  DATE_PART(epoch_second, MAX(x.W)) AS W,
  DATEDIFF(microsecond, TO_TIMESTAMP_NTZ('1970-01-01 00:00:00'), MAX(x.W)) AS U
FROM (
  SELECT v.CAREGIVER_KEY, COUNT(*) AS N, SUM({visit_hash} % {p1}) AS H1, SUM({visit_hash} % {p2}) AS H2,
    MAX(v.LAST_UPDATED_DATE) AS W
  FROM VISITS.VISITS v
  WHERE v.VISIT_DATE BETWEEN DATEADD(year, -2, TO_DATE('{as_of}')) AND DATEADD(day, 45, TO_DATE('{as_of}'))
    AND v.CAREGIVER_KEY IN (SELECT c.CAREGIVER_KEY FROM VISITS.CAREGIVERS c WHERE c.SSN IS NOT NULL AND {prefix_filter})
  GROUP BY v.CAREGIVER_KEY
) x
JOIN VISITS.CAREGIVERS c ON c.CAREGIVER_KEY = x.CAREGIVER_KEY
WHERE c.SSN IS NOT NULL AND {prefix_filter}
GROUP BY LEFT(c.SSN, 3)
{dimension_digests}
