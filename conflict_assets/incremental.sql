-- Incremental detection for changed prefixes whose per-visit state (VISIT_STATE) is valid: from the visits
-- that changed (CF_TOUCH, changed_visits.sql), re-pair only those, and stage exactly the result, state and
-- change-log rows that differ.
-- Nothing here writes a permanent table; incremental.py applies the staged rows in one transaction.
-- Row sets are matched by equi-joins on (PREFIX, VISIT_ID) (semi/anti-joins written as joins: the same plan on
-- both engines, and no per-row key building over a prefix set's million state rows; the few result rows of
-- a prefix set are matched by key strings). The state is looked up by its integer keys, VKEY and DKEY
-- ({same_visit:..}, {same_day:..}; detection.py, lookup_keys).

-- 1. The touched visits' detection fields now (read with the candidates) and as stored.
CREATE OR REPLACE TEMPORARY TABLE CF_RAW AS
SELECT r.* FROM CF_CAND_ROWS r
JOIN CF_TOUCH t ON t.PREFIX = r.PREFIX AND t.VISIT_ID = r.VISIT_ID AND t.PRESENT;

{visit_state};

-- as stored (read with the candidates, changed_visits.sql)
CREATE OR REPLACE TEMPORARY TABLE CF_OLD AS
SELECT s.PREFIX, s.VISIT_ID, {stored_columns} FROM CF_CAND s
JOIN CF_TOUCH t ON t.PREFIX = s.PREFIX AND t.VISIT_ID = s.VISIT_ID AND t.WAS;

-- 3. Visits whose detection fields changed, came or went: only pairs with one of them can change. A change
--    in other columns (billing, names ...) reaches PostgreSQL through the change log without re-pairing.
CREATE OR REPLACE TEMPORARY TABLE CF_DET AS
SELECT COALESCE(n.PREFIX, o.PREFIX) AS PREFIX, COALESCE(n.VISIT_ID, o.VISIT_ID) AS VISIT_ID,
  o.SSN AS OLD_SSN, n.SSN AS NEW_SSN
FROM CF_VISITS n
FULL OUTER JOIN CF_OLD o ON o.PREFIX = n.PREFIX AND o.VISIT_ID = n.VISIT_ID
WHERE n.VISIT_ID IS NULL OR o.VISIT_ID IS NULL OR NOT ({same_detection_fields});

-- 4. The affected caregivers' visits as they are now, each with its successor now (NEXT_ID) and as stored
--    (OLD_NEXT). A caregiver's travel sequence (usable visits by effective start) changes only around the
--    changed visits' old and new positions, so only the visits within {island_days} days of them are read:
--    "islands". Within an island the successor is exact for all but its last visit. An island is self-contained
--    when its first and last visits are unchanged ones: then nothing outside it sees a different successor,
--    and its last visit keeps the successor it had. A caregiver with an island that is not (a gap of more
--    than {island_days} days next to a change, a change at the start or end of the sequence) is read whole,
--    as before. When the changes are dense (islands would cover most sequences), every affected caregiver is
--    read whole at once: {islands} is FALSE (also on CF_NEAR's own filters, so the engine drops its scan).
-- the changed visits' positions: new ones, and old ones (GHOST: in the state, no longer in the sequence there)
CREATE OR REPLACE TEMPORARY TABLE CF_PTS AS
SELECT n.SSN, n.E0, n.VISIT_ID, FALSE AS GHOST FROM CF_VISITS n
JOIN CF_DET d ON d.PREFIX = n.PREFIX AND d.VISIT_ID = n.VISIT_ID WHERE n.TRAVEL_OK
UNION ALL
SELECT o.SSN, o.E0, o.VISIT_ID, TRUE FROM CF_OLD o
JOIN CF_DET d ON d.PREFIX = o.PREFIX AND d.VISIT_ID = o.VISIT_ID WHERE o.TRAVEL_OK;

-- @successors: incremental.py runs the rest once it knows how many visits changed (it fills {islands})
-- the days within {island_days} of a position, each with its island (windows merged where they touch)
CREATE OR REPLACE TEMPORARY TABLE CF_DAYS AS
SELECT d.*, {day_key} AS DKEY FROM (
SELECT DISTINCT p.SSN, p.DAY + k.K AS DAY, p.ISLAND
FROM (
  SELECT SSN, DAY, SUM(IFF(DAY - PREV > 2 * {island_days} + 1, 1, 0))
    OVER (PARTITION BY SSN ORDER BY DAY ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS ISLAND
  FROM (
    SELECT SSN, DAY, LAG(DAY) OVER (PARTITION BY SSN ORDER BY DAY) AS PREV
    FROM (SELECT DISTINCT SSN, CAST(FLOOR(E0 / 86400) AS BIGINT) AS DAY FROM CF_PTS WHERE {islands}) d
  ) q
) p
JOIN (SELECT column1 AS K FROM VALUES {island_offsets}) k ON TRUE
) d;

-- the travel-usable visits in the islands, as they are now (KIND: U unchanged, T touched, D changed; X: the
-- stored row of a touched visit, which readers skip: filtered out here, the engine would turn the join into
-- an anti-join below the island join and build its hash table on the whole state)
CREATE OR REPLACE TEMPORARY TABLE CF_NEAR AS
SELECT {s_fields}, s.NEXT_ID AS OLD_NEXT, FALSE AS TOUCHED, i.ISLAND, IFF(t.VISIT_ID IS NULL, 'U', 'X') AS KIND
FROM {visit_state_table} s
JOIN CF_DAYS i ON {same_day:i:s}
LEFT JOIN CF_TOUCH t ON {same_visit:t:s}
WHERE {fs} AND s.TRAVEL_OK AND {islands}
UNION ALL
SELECT {n_fields}, o.NEXT_ID, TRUE, i.ISLAND, IFF(d.VISIT_ID IS NULL, 'T', 'D') FROM CF_VISITS n
JOIN CF_DAYS i ON i.SSN = n.SSN AND i.DAY = CAST(FLOOR(n.E0 / 86400) AS BIGINT)
LEFT JOIN CF_OLD o ON o.PREFIX = n.PREFIX AND o.VISIT_ID = n.VISIT_ID
LEFT JOIN CF_DET d ON d.PREFIX = n.PREFIX AND d.VISIT_ID = n.VISIT_ID
WHERE n.TRAVEL_OK AND {islands};

-- caregivers with an island that is not self-contained (old positions, G, count for the ends too); islands
-- are disjoint day spans, so a visit is at an island's end where its neighbour in time is in another or none
CREATE OR REPLACE TEMPORARY TABLE CF_WHOLE AS
SELECT DISTINCT SSN FROM (
  SELECT SSN, KIND, ISLAND,
    LAG(ISLAND) OVER (PARTITION BY SSN ORDER BY E0, VISIT_ID, KIND) AS PREV_ISLAND,
    LEAD(ISLAND) OVER (PARTITION BY SSN ORDER BY E0, VISIT_ID, KIND) AS NEXT_ISLAND
  FROM (
    SELECT SSN, ISLAND, E0, VISIT_ID, KIND FROM CF_NEAR WHERE KIND <> 'X'
    UNION ALL
    SELECT p.SSN, i.ISLAND, p.E0, p.VISIT_ID, 'G' FROM CF_PTS p
    JOIN CF_DAYS i ON i.SSN = p.SSN AND i.DAY = CAST(FLOOR(p.E0 / 86400) AS BIGINT)
    WHERE p.GHOST
  ) x
) y
WHERE KIND IN ('D', 'G') AND NOT (NVL(PREV_ISLAND = ISLAND, FALSE) AND NVL(NEXT_ISLAND = ISLAND, FALSE))
UNION
SELECT SSN FROM CF_PTS WHERE NOT {islands};

-- CERTAIN: NEXT_ID is exact (every visit but an island's last, whose successor did not change). Islands are
-- disjoint spans of travel-usable visits, so an island's last visit is the one the next island (or nothing)
-- follows, in the same window as the successor: one sort.
CREATE OR REPLACE TEMPORARY TABLE CF_AFTER AS
SELECT {fields}, OLD_NEXT, TOUCHED, CERTAIN, IFF(CERTAIN, NEXT_ID, OLD_NEXT) AS NEXT_ID,
  NEXT_E0, NEXT_LAT, NEXT_LON, NEXT_PROVIDER
FROM (
  SELECT x.*,
    {successor_columns},
    ISLAND IS NULL OR NVL(LEAD(ISLAND) OVER (PARTITION BY SSN, TRAVEL_OK ORDER BY E0, VISIT_ID) = ISLAND, FALSE)
      AS CERTAIN
  FROM (
    SELECT {s_fields}, s.NEXT_ID AS OLD_NEXT, FALSE AS TOUCHED, NULL AS ISLAND FROM {visit_state_table} s
    JOIN CF_WHOLE g ON g.SSN = s.SSN
    LEFT JOIN CF_TOUCH t ON {same_visit:t:s}
    WHERE {fs} AND t.VISIT_ID IS NULL
    UNION ALL
    SELECT {n_fields}, o.NEXT_ID, TRUE, NULL FROM CF_VISITS n
    JOIN CF_WHOLE g ON g.SSN = n.SSN
    LEFT JOIN CF_OLD o ON o.PREFIX = n.PREFIX AND o.VISIT_ID = n.VISIT_ID
    UNION ALL
    SELECT {n_fields}, n.OLD_NEXT, n.TOUCHED, n.ISLAND FROM CF_NEAR n
    LEFT JOIN CF_WHOLE g ON g.SSN = n.SSN
    WHERE g.SSN IS NULL AND n.KIND <> 'X'
  ) x
) z;

-- visits whose successor changed, with the successor they had: their old travel pair is re-evaluated
CREATE OR REPLACE TEMPORARY TABLE CF_NCHG AS
SELECT PREFIX, VISIT_ID, OLD_NEXT FROM CF_AFTER WHERE NEXT_ID IS DISTINCT FROM OLD_NEXT;

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

-- 6. Travel time over the consecutive pairs that can differ: those starting at a changed visit, at a visit
--    whose successor changed or is a changed visit.
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
  OR (CONFLICT_TYPE = 'TRAVEL_TIME' AND (PREFIX || VISIT_ID IN (SELECT PREFIX || VISIT_ID FROM CF_DET)
                                        OR PREFIX || OTHER_VISIT_ID IN (SELECT PREFIX || VISIT_ID FROM CF_DET)
                                        OR PREFIX || VISIT_ID || OTHER_VISIT_ID IN (
                                          SELECT PREFIX || VISIT_ID || OLD_NEXT FROM CF_NCHG
                                          UNION ALL SELECT PREFIX || OLD_NEXT || VISIT_ID FROM CF_NCHG))));

CREATE OR REPLACE TEMPORARY TABLE CF_DEL AS SELECT * FROM CF_OLDRES EXCEPT SELECT * FROM CF_NEW;

CREATE OR REPLACE TEMPORARY TABLE CF_ADD AS SELECT * FROM CF_NEW EXCEPT SELECT * FROM CF_OLDRES;

-- 8. The change log: visits whose PostgreSQL rows can differ (in a changed conflict row, or changed while
--    in a conflict). The sync reads only these.
CREATE OR REPLACE TEMPORARY TABLE CF_LOG AS
SELECT PREFIX, VISIT_ID FROM CF_DEL
UNION SELECT PREFIX, VISIT_ID FROM CF_ADD
UNION SELECT PREFIX, VISIT_ID FROM CF_TOUCH
  WHERE PREFIX || VISIT_ID IN (SELECT PREFIX || VISIT_ID FROM {result_table} WHERE {f});

-- 9. New state rows: touched visits, and visits whose successor changed; the keys they replace. A touched
--    visit outside the islands keeps its successor (none if it is not travel-usable).
CREATE OR REPLACE TEMPORARY TABLE CF_STATE_NEW AS
SELECT {fields}, NEXT_ID FROM CF_AFTER WHERE TOUCHED OR NEXT_ID IS DISTINCT FROM OLD_NEXT
UNION ALL
SELECT {n_fields}, IFF(n.TRAVEL_OK, o.NEXT_ID, NULL) FROM CF_VISITS n
LEFT JOIN CF_OLD o ON o.PREFIX = n.PREFIX AND o.VISIT_ID = n.VISIT_ID
LEFT JOIN CF_AFTER a ON a.PREFIX = n.PREFIX AND a.VISIT_ID = n.VISIT_ID
WHERE a.VISIT_ID IS NULL;

CREATE OR REPLACE TEMPORARY TABLE CF_STATE_KEYS AS
SELECT PREFIX, VISIT_ID, VKEY FROM CF_TOUCH UNION SELECT PREFIX, VISIT_ID, VKEY FROM CF_STATE_NEW;

-- 10. What the update changes in each prefix's conflict rows, per type (incremental.py adds these to the
--     counts PREFIX_STATE keeps).
CREATE OR REPLACE TEMPORARY TABLE CF_COUNTS AS
SELECT PREFIX, SUM(IFF(CONFLICT_TYPE = 'TIME_OVERLAP', W, 0)) AS N_OVERLAP_ROWS,
  SUM(IFF(CONFLICT_TYPE = 'TRAVEL_TIME', W, 0)) AS N_TRAVEL_ROWS
FROM (
  SELECT PREFIX, CONFLICT_TYPE, -1 AS W FROM CF_DEL
  UNION ALL
  SELECT PREFIX, CONFLICT_TYPE, 1 FROM CF_ADD
) x GROUP BY PREFIX;

-- 11. What the update changes in each prefix's bad-input counts: the touched visits' old rows out, their new
--     ones in (incremental.py adds these to the counts PREFIX_STATE keeps).
SELECT PREFIX, {bad_input_deltas}
FROM (
  SELECT PREFIX, -1 AS W, COPIES, S_OK, A_OK, A_PRESENT, IS_MISSED, LAT, LON, SKEWED FROM CF_OLD
  UNION ALL
  SELECT PREFIX, 1, COPIES, S_OK, A_OK, A_PRESENT, IS_MISSED, LAT, LON, SKEWED FROM CF_VISITS
) x GROUP BY PREFIX
