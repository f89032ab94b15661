-- Incremental detection for changed prefixes whose per-visit state (VISIT_STATE) is valid: from the visits
-- that changed (CF_TOUCH, changed_visits.sql), re-pair only those, and stage exactly the result, state and
-- change-log rows that differ.
-- Nothing here writes a permanent table; incremental.py applies the staged rows in one transaction.
-- Row sets are matched by equi-joins on (PREFIX, VISIT_ID) (semi/anti-joins written as joins: the same plan on
-- both engines, and no per-row key building over a prefix set's million state rows; the few result rows of
-- a prefix set are matched by key strings).

-- 1. The touched visits' detection fields now (read with the candidates) and as stored.
CREATE OR REPLACE TEMPORARY TABLE CF_RAW AS
SELECT r.* FROM CF_CAND_ROWS r
JOIN CF_TOUCH t ON t.PREFIX = r.PREFIX AND t.VISIT_ID = r.VISIT_ID AND t.PRESENT;

{visit_state};

CREATE OR REPLACE TEMPORARY TABLE CF_OLD AS
SELECT s.* FROM {visit_state_table} s
JOIN CF_TOUCH t ON t.PREFIX = s.PREFIX AND t.VISIT_ID = s.VISIT_ID AND t.WAS
WHERE {fs};

-- 3. Visits whose detection fields changed, came or went: only pairs with one of them can change. A change
--    in other columns (billing, names ...) reaches PostgreSQL through the change log without re-pairing.
CREATE OR REPLACE TEMPORARY TABLE CF_DET AS
SELECT COALESCE(n.PREFIX, o.PREFIX) AS PREFIX, COALESCE(n.VISIT_ID, o.VISIT_ID) AS VISIT_ID,
  o.SSN AS OLD_SSN, n.SSN AS NEW_SSN
FROM CF_VISITS n
FULL OUTER JOIN CF_OLD o ON o.PREFIX = n.PREFIX AND o.VISIT_ID = n.VISIT_ID
WHERE n.VISIT_ID IS NULL OR o.VISIT_ID IS NULL OR NOT ({same_detection_fields});

CREATE OR REPLACE TEMPORARY TABLE CF_SSNS AS
SELECT DISTINCT SSN FROM (SELECT OLD_SSN AS SSN FROM CF_DET UNION ALL SELECT NEW_SSN FROM CF_DET) x
WHERE SSN IS NOT NULL;

-- 4. The affected caregivers' visits as they are now, each with its successor now (NEXT_ID) and as stored
--    (OLD_NEXT). Only these caregivers' sequences can have changed.
CREATE OR REPLACE TEMPORARY TABLE CF_AFTER AS
SELECT x.*,
  {successor_columns}
FROM (
  SELECT {s_fields}, s.NEXT_ID AS OLD_NEXT, FALSE AS TOUCHED FROM {visit_state_table} s
  JOIN CF_SSNS g ON g.SSN = s.SSN
  LEFT JOIN CF_TOUCH t ON t.PREFIX = s.PREFIX AND t.VISIT_ID = s.VISIT_ID
  WHERE {fs} AND t.VISIT_ID IS NULL
  UNION ALL
  SELECT {n_fields}, o.NEXT_ID, TRUE FROM CF_VISITS n
  JOIN CF_SSNS g ON g.SSN = n.SSN
  LEFT JOIN CF_OLD o ON o.PREFIX = n.PREFIX AND o.VISIT_ID = n.VISIT_ID
) x;

-- visits whose successor changed, and the changed visits: a travel pair can only differ if one is in here
CREATE OR REPLACE TEMPORARY TABLE CF_CHG AS
SELECT PREFIX, VISIT_ID FROM CF_DET
UNION
SELECT PREFIX, VISIT_ID FROM CF_AFTER WHERE NEXT_ID IS DISTINCT FROM OLD_NEXT;

-- 5. Time overlaps of the changed visits (new positions) with every visit of their caregiver nearby: the same
--    bucket join, halo and overlap test as the full path, from the changed side.
CREATE OR REPLACE TEMPORARY TABLE CF_OVERLAPS AS
SELECT DISTINCT PREFIX, IFF(X < Y, X, Y) AS A_ID, IFF(X < Y, Y, X) AS B_ID, OVERLAP_SECONDS
FROM (
  SELECT a.PREFIX, a.VISIT_ID AS X, b.VISIT_ID AS Y, {overlap_seconds} AS OVERLAP_SECONDS
  FROM CF_AFTER a
  JOIN CF_DET c ON c.PREFIX = a.PREFIX AND c.VISIT_ID = a.VISIT_ID
  JOIN (SELECT column1 AS K FROM VALUES (-3), (-2), (-1), (0), (1), (2), (3)) d ON TRUE
  JOIN CF_AFTER b
    ON b.SSN = a.SSN AND b.BUCKET = a.BUCKET + d.K AND a.VISIT_ID <> b.VISIT_ID AND a.PROVIDER_KEY <> b.PROVIDER_KEY
  WHERE a.OVERLAP_OK AND b.OVERLAP_OK
    AND a.SP0 < b.SP1 + 86400 AND b.SP0 < a.SP1 + 86400
) o
WHERE OVERLAP_SECONDS > {tolerance_seconds};

-- 6. Travel time over the consecutive pairs that can differ.
CREATE OR REPLACE TEMPORARY TABLE CF_TRAVEL AS
{travel_pairs};

CREATE OR REPLACE TEMPORARY TABLE CF_NEW AS
{result_rows};

-- 7. The stored rows those pairs stand for; only real differences are written.
CREATE OR REPLACE TEMPORARY TABLE CF_OLDRES AS
SELECT PREFIX, CONFLICTID, CONFLICT_TYPE, VISIT_ID, OTHER_VISIT_ID, OVERLAP_SECONDS, GAP_SECONDS, DISTANCE_KM
FROM {result_table}
WHERE {f} AND (
  (CONFLICT_TYPE = 'TIME_OVERLAP' AND (PREFIX || VISIT_ID IN (SELECT PREFIX || VISIT_ID FROM CF_DET)
                                      OR PREFIX || OTHER_VISIT_ID IN (SELECT PREFIX || VISIT_ID FROM CF_DET)))
  OR (CONFLICT_TYPE = 'TRAVEL_TIME' AND (PREFIX || VISIT_ID IN (SELECT PREFIX || VISIT_ID FROM CF_CHG)
                                        OR PREFIX || OTHER_VISIT_ID IN (SELECT PREFIX || VISIT_ID FROM CF_CHG))));

CREATE OR REPLACE TEMPORARY TABLE CF_DEL AS SELECT * FROM CF_OLDRES EXCEPT SELECT * FROM CF_NEW;

CREATE OR REPLACE TEMPORARY TABLE CF_ADD AS SELECT * FROM CF_NEW EXCEPT SELECT * FROM CF_OLDRES;

-- 8. The change log: visits whose PostgreSQL rows can differ (in a changed conflict row, or changed while
--    in a conflict). The sync reads only these.
CREATE OR REPLACE TEMPORARY TABLE CF_LOG AS
SELECT PREFIX, VISIT_ID FROM CF_DEL
UNION SELECT PREFIX, VISIT_ID FROM CF_ADD
UNION SELECT PREFIX, VISIT_ID FROM CF_TOUCH
  WHERE PREFIX || VISIT_ID IN (SELECT PREFIX || VISIT_ID FROM {result_table} WHERE {f});

-- 9. New state rows: touched visits, and visits whose successor changed; the keys they replace.
CREATE OR REPLACE TEMPORARY TABLE CF_STATE_NEW AS
SELECT {fields}, NEXT_ID FROM CF_AFTER WHERE TOUCHED OR NEXT_ID IS DISTINCT FROM OLD_NEXT
UNION ALL
SELECT {n_fields}, o.NEXT_ID FROM CF_VISITS n
LEFT JOIN CF_OLD o ON o.PREFIX = n.PREFIX AND o.VISIT_ID = n.VISIT_ID
LEFT JOIN CF_SSNS g ON g.SSN = n.SSN
WHERE g.SSN IS NULL;

CREATE OR REPLACE TEMPORARY TABLE CF_STATE_KEYS AS
SELECT PREFIX, VISIT_ID FROM CF_TOUCH UNION SELECT PREFIX, VISIT_ID FROM CF_STATE_NEW;

-- 10. Result rows per prefix and type after the update.
CREATE OR REPLACE TEMPORARY TABLE CF_COUNTS AS
SELECT PREFIX, CONFLICT_TYPE, COUNT(*) AS N FROM (
  SELECT PREFIX, CONFLICT_TYPE FROM {result_table}
  WHERE {f} AND PREFIX || CONFLICTID || VISIT_ID NOT IN (SELECT PREFIX || CONFLICTID || VISIT_ID FROM CF_DEL)
  UNION ALL
  SELECT PREFIX, CONFLICT_TYPE FROM CF_ADD
) x GROUP BY 1, 2;

-- 11. Bad-input counts over the prefixes' visits after the update (the same figures a full recompute gives):
--     the state's, less the touched visits' old rows, plus their new ones.
SELECT PREFIX, {bad_input_deltas}
FROM (
  SELECT PREFIX, 1 AS W, COPIES, S_OK, A_OK, A_PRESENT, IS_MISSED, LAT, LON, SKEWED FROM {visit_state_table} WHERE {f}
  UNION ALL
  SELECT PREFIX, -1, COPIES, S_OK, A_OK, A_PRESENT, IS_MISSED, LAT, LON, SKEWED FROM CF_OLD
  UNION ALL
  SELECT PREFIX, 1, COPIES, S_OK, A_OK, A_PRESENT, IS_MISSED, LAT, LON, SKEWED FROM CF_VISITS
) x GROUP BY PREFIX
