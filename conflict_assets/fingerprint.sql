-- Per-prefix change probe for the run's prefixes, and a digest of every dimension table, in ONE query.
-- Every column of the visit and its caregiver goes into a row hash; it is summed modulo two primes
-- (order-independent, exact on both engines; HASH_AGG does not exist on the emulator). A change in any
-- dimension row changes the digest and so every prefix's fingerprint: conservative, never a missed change,
-- and the sync's IS DISTINCT FROM still writes only the rows that really differ.
-- W, the latest LAST_UPDATED_DATE (epoch seconds), is the prefix's watermark for the next incremental run.
-- Placeholders: the visit row hash, the as-of date, the prefix filter and the dimension digest SELECTs.
SELECT LEFT(c.SSN, 3) AS K, COUNT(*) AS N,
  SUM({visit_hash} % {p1}) AS H1, SUM({visit_hash} % {p2}) AS H2,
  DATE_PART(epoch_second, MAX(v.LAST_UPDATED_DATE)) AS W
FROM VISITS.VISITS v
JOIN VISITS.CAREGIVERS c ON c.CAREGIVER_KEY = v.CAREGIVER_KEY
WHERE v.VISIT_DATE BETWEEN DATEADD(year, -2, TO_DATE('{as_of}')) AND DATEADD(day, 45, TO_DATE('{as_of}'))
  AND c.SSN IS NOT NULL AND {prefix_filter}
GROUP BY LEFT(c.SSN, 3)
{dimension_digests}
