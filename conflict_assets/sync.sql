-- The per-run PostgreSQL apply: staging tables live for one transaction; placeholders are filled by sync.py.
-- Every statement is set-based, and only rows whose values differ are written (IS DISTINCT FROM).

CREATE TEMP TABLE cf_stage_visits ({stage_columns}) ON COMMIT DROP;
CREATE TEMP TABLE cf_stage_links (
  "CONFLICTID" varchar(32), "VisitID" uuid, "ConflictType" varchar(20), "ConflictVisitID" uuid, "SSNPrefix" char(3)
) ON COMMIT DROP;
-- incremental prefixes: the visits whose rows can differ since the last sync (the warehouse change log)
CREATE TEMP TABLE cf_stage_touched ("VisitID" uuid, "SSNPrefix" char(3)) ON COMMIT DROP;

-- after COPY: temp tables have no statistics; the key columns are all the joins need
ANALYZE cf_stage_visits ("VisitID");
ANALYZE cf_stage_links ("CONFLICTID", "VisitID");
ANALYZE cf_stage_touched ("VisitID");

-- name: resolve
-- conflicts of the fully compared prefixes that detection no longer reports: kept, marked resolved
UPDATE public.conflictvisitmaps t
SET "ConflictStatus" = 'resolved', "ResolvedAt" = now(), "UpdateFlag" = 1, "LastSyncedAt" = now()
WHERE t."SSNPrefix" = ANY(%(prefixes)s) AND t."ConflictStatus" = 'active'
  AND NOT EXISTS (SELECT 1 FROM cf_stage_links l WHERE l."CONFLICTID" = t."CONFLICTID" AND l."VisitID" = t."VisitID");

-- name: resolve touched
-- the same for incremental prefixes, over the touched visits only (every other row is unchanged)
UPDATE public.conflictvisitmaps t
SET "ConflictStatus" = 'resolved', "ResolvedAt" = now(), "UpdateFlag" = 1, "LastSyncedAt" = now()
FROM cf_stage_touched x
WHERE t."VisitID" = x."VisitID" AND t."SSNPrefix" = x."SSNPrefix" AND t."ConflictStatus" = 'active'
  AND NOT EXISTS (SELECT 1 FROM cf_stage_links l WHERE l."CONFLICTID" = t."CONFLICTID" AND l."VisitID" = t."VisitID");

-- name: update
UPDATE public.conflictvisitmaps t
SET ({target_columns}, "ConflictType", "ConflictVisitID", "SSNPrefix", "ConflictStatus", "ResolvedAt",
     "UpdateFlag", "LastSyncedAt")
  = ({source_columns}, l."ConflictType", l."ConflictVisitID", l."SSNPrefix", 'active', NULL, 1, now())
FROM cf_stage_links l JOIN cf_stage_visits s ON s."VisitID" = l."VisitID" AND left(s."SSN", 3) = l."SSNPrefix"
WHERE t."CONFLICTID" = l."CONFLICTID" AND t."VisitID" = l."VisitID"
  AND ({compare_target}, t."ConflictType", t."ConflictVisitID", t."SSNPrefix", t."ConflictStatus")
      IS DISTINCT FROM ({compare_source}, l."ConflictType", l."ConflictVisitID", l."SSNPrefix", 'active');

-- name: insert
-- rows already there were handled by the UPDATE; ON CONFLICT probes the primary key row by row instead of
-- planning an anti-join against the whole table
INSERT INTO public.conflictvisitmaps ({insert_columns}, "CONFLICTID", "ConflictType", "ConflictVisitID", "SSNPrefix")
SELECT {source_columns}, l."CONFLICTID", l."ConflictType", l."ConflictVisitID", l."SSNPrefix"
FROM cf_stage_links l JOIN cf_stage_visits s ON s."VisitID" = l."VisitID" AND left(s."SSN", 3) = l."SSNPrefix"
ON CONFLICT ("CONFLICTID", "VisitID") DO NOTHING;

-- name: analyze
-- the next run plans against fresh statistics (right after a large first load they would say "empty",
-- and the anti-join above would become a nested loop); key columns only, as for the staging tables; run
-- when the rows inserted and resolved exceed a tenth of the rows the statistics know (autovacuum's own
-- default), so a first load is analyzed at once and a small change does not pay for it
ANALYZE public.conflictvisitmaps ("CONFLICTID", "VisitID", "SSNPrefix", "ConflictStatus");

-- name: state
INSERT INTO public.conflict_sync_state (prefix, fingerprint, source_visits, conflict_rows, seq, synced_at)
SELECT * FROM unnest(%(prefixes)s::text[], %(fingerprints)s::text[], %(visits)s::int8[], %(rows)s::int8[],
  %(seqs)s::int8[]), LATERAL (SELECT now()) n
ON CONFLICT (prefix) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, source_visits = EXCLUDED.source_visits,
  conflict_rows = EXCLUDED.conflict_rows, seq = EXCLUDED.seq, synced_at = EXCLUDED.synced_at
