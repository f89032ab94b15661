-- The changed visits of prefixes the watermark could not account for: hash every visit of their window and
-- diff against VISIT_STATE (added, removed, changed, with what each adds to the sums), then read the
-- present ones and the stored rows of those the state holds (incremental.py has removed these prefixes' rows
-- from CF_TOUCH, CF_CAND_ROWS and CF_CAND).
INSERT INTO CF_TOUCH
SELECT x.*, {visit_key} FROM (
  SELECT COALESCE(n.PREFIX, s.PREFIX) AS PREFIX, COALESCE(n.VISIT_ID, s.VISIT_ID) AS VISIT_ID,
    n.VISIT_ID IS NOT NULL AS PRESENT, s.VISIT_ID IS NOT NULL AS WAS,
    NVL(n.COPIES, 0) - NVL(s.COPIES, 0) AS D_ROWS, NVL(n.H1, 0) - NVL(s.H1, 0) AS D_H1, NVL(n.H2, 0) - NVL(s.H2, 0) AS D_H2
  FROM (
    SELECT LEFT(c.SSN, 3) AS PREFIX, v.VISIT_ID AS VISIT_ID, COUNT(*) AS COPIES, CAST(SUM({h1}) AS BIGINT) AS H1,
      CAST(SUM({h2}) AS BIGINT) AS H2
    FROM VISITS.VISITS v
    JOIN VISITS.CAREGIVERS c ON c.CAREGIVER_KEY = v.CAREGIVER_KEY
    WHERE {in_window} AND c.SSN IS NOT NULL AND {visit_prefix_filter}
    GROUP BY 1, 2
  ) n
  FULL OUTER JOIN (SELECT PREFIX, VISIT_ID, COPIES, H1, H2 FROM {visit_state_table} WHERE {f}) s
    ON s.PREFIX = n.PREFIX AND s.VISIT_ID = n.VISIT_ID
  WHERE n.VISIT_ID IS NULL OR s.VISIT_ID IS NULL OR n.H1 <> s.H1 OR n.H2 <> s.H2
) x;

INSERT INTO CF_CAND_ROWS
SELECT r.* FROM ({touched_rows}) r
JOIN CF_TOUCH t ON t.PREFIX = r.PREFIX AND t.VISIT_ID = r.VISIT_ID AND t.PRESENT;

INSERT INTO CF_CAND
SELECT s.PREFIX, s.VISIT_ID, s.PREFIX, s.VISIT_ID, {stored_columns} FROM {visit_state_table} s
JOIN CF_TOUCH t ON {same_visit:t:s} AND t.WAS
WHERE {fs}
