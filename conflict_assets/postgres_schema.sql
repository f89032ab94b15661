-- conflictvisitmaps: one row per (conflict, visit); the 98 visit columns are generated from columns.py.
--
-- "UpdateFlag" semantics: 1 = the row is new, its visit columns changed, or its conflict was resolved in the
-- last sync that touched it, and downstream has not consumed it yet; 0 = consumed (downstream sets 0).
-- The sync writes a row only when something differs, so an unchanged row is never rewritten and its flag stays.
-- vw_conflictvisitmaps_base lists the rows due for downstream update: "CONFLICTID" set and "UpdateFlag" = 1.
CREATE TABLE IF NOT EXISTS public.conflictvisitmaps (
  {columns},
  "CONFLICTID" varchar(32) NOT NULL,
  "UpdateFlag" smallint NOT NULL DEFAULT 1,
  "ConflictType" varchar(20) NOT NULL,
  "ConflictVisitID" uuid NOT NULL,
  "ConflictStatus" varchar(10) NOT NULL DEFAULT 'active',
  "SSNPrefix" char(3) NOT NULL,
  "FirstSeenAt" timestamptz NOT NULL DEFAULT now(),
  "ResolvedAt" timestamptz,
  "LastSyncedAt" timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY ("CONFLICTID", "VisitID")
) WITH (fillfactor = 80);
-- fillfactor 80 leaves room on each page so rewritten rows stay on their page (HOT updates).
ALTER TABLE public.conflictvisitmaps SET (fillfactor = 80);
CREATE INDEX IF NOT EXISTS idx_conflictvisitmaps_ssn ON public.conflictvisitmaps ("SSN");
-- The old plan's partial index. "UpdateFlag" is in it, so a write that flips the flag is not HOT; the sync
-- only writes rows that really changed, which keeps that cost proportional to the change.
CREATE INDEX IF NOT EXISTS idx_conflictvisitmaps_update_flag
  ON public.conflictvisitmaps ("CONFLICTID", "UpdateFlag", "VisitDate") WHERE "CONFLICTID" IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_conflictvisitmaps_visitid ON public.conflictvisitmaps ("VisitID");
-- The per-partition resolve step finds a prefix's rows through this one.
CREATE INDEX IF NOT EXISTS idx_conflictvisitmaps_prefix ON public.conflictvisitmaps ("SSNPrefix");
CREATE OR REPLACE VIEW public.vw_conflictvisitmaps_base AS
  SELECT * FROM public.conflictvisitmaps WHERE "CONFLICTID" IS NOT NULL AND "UpdateFlag" = 1;
-- Authoritative per-prefix sync state: updated in the same transaction as the prefix's rows.
CREATE TABLE IF NOT EXISTS public.conflict_sync_state (
  prefix char(3) PRIMARY KEY,
  fingerprint text NOT NULL,
  source_visits bigint NOT NULL,
  conflict_rows bigint NOT NULL,
  seq bigint,  -- the warehouse change sequence applied (NULL: compare the whole prefix next time)
  synced_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.conflict_sync_state ADD COLUMN IF NOT EXISTS seq bigint;
ANALYZE public.conflictvisitmaps;
ANALYZE public.conflict_sync_state
