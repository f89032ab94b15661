"""Asset checks: every active conflict row has an active partner row; visits no partition can hold are counted."""

from dagster import AssetCheckResult, AssetCheckSeverity, asset_check

from conflict_assets.assets import conflictvisitmaps, visit_conflicts
from conflict_assets.source_schema import as_of_date
from conflict_assets.sync import sanitized
from resources.postgres import PostgresResource
from resources.warehouse import Warehouse


@asset_check(asset=conflictvisitmaps, description="Each active (conflict, visit) row has its partner visit's row.")
def conflict_pairs_complete(postgres: PostgresResource) -> AssetCheckResult:
    with sanitized("pair check"), postgres.connection() as conn:
        orphans, active = conn.execute(
            """SELECT COUNT(*) FILTER (WHERE p."VisitID" IS NULL), COUNT(*)
               FROM public.conflictvisitmaps t
               LEFT JOIN public.conflictvisitmaps p
                 ON p."CONFLICTID" = t."CONFLICTID" AND p."VisitID" = t."ConflictVisitID"
                AND p."ConflictStatus" = 'active'
               WHERE t."ConflictStatus" = 'active'"""
        ).fetchone()
    return AssetCheckResult(passed=orphans == 0, severity=AssetCheckSeverity.WARN,
                            metadata={"orphan_rows": orphans, "active_rows": active})


@asset_check(asset=visit_conflicts, description="Visits in the window without an SSN: no prefix partition can hold "
                                                 "them, so they are counted here instead of silently dropped.")
def visits_without_ssn(warehouse: Warehouse) -> AssetCheckResult:
    as_of = as_of_date().isoformat()
    with sanitized("SSN coverage check"), warehouse.get_connection() as conn:
        missing, total = conn.cursor().execute(
            "SELECT COUNT_IF(c.SSN IS NULL OR LENGTH(c.SSN) <> 9), COUNT(*) FROM VISITS.VISITS v "
            "LEFT JOIN VISITS.CAREGIVERS c ON c.CAREGIVER_KEY = v.CAREGIVER_KEY "
            f"WHERE v.VISIT_DATE BETWEEN DATEADD(year, -2, TO_DATE('{as_of}')) "
            f"AND DATEADD(day, 45, TO_DATE('{as_of}'))"
        ).fetchone()
    return AssetCheckResult(passed=missing == 0, severity=AssetCheckSeverity.WARN,
                            metadata={"visits_without_ssn": int(missing), "visits_in_window": int(total)})
