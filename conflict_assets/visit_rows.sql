-- Visits of the run's prefixes inside the window, joined to every dimension the 98 columns need.
-- Placeholders: the column list, the as-of date and the prefix filter on LEFT(c.SSN, 3).
-- Duplicate VisitIDs in the source collapse to their latest version (QUALIFY), so nothing is written twice;
-- per prefix, so a partition's result never depends on which other prefixes share its run.
SELECT {select}
FROM VISITS.VISITS v
JOIN VISITS.CAREGIVERS c ON c.CAREGIVER_KEY = v.CAREGIVER_KEY
LEFT JOIN VISITS.PROVIDERS p ON p.PROVIDER_KEY = v.PROVIDER_KEY
LEFT JOIN VISITS.OFFICES o ON o.OFFICE_KEY = v.OFFICE_KEY
LEFT JOIN VISITS.PAYERS pa ON pa.PAYER_KEY = v.PAYER_KEY
LEFT JOIN VISITS.SERVICE_CODES s ON s.SERVICE_CODE_KEY = v.SERVICE_CODE_KEY
LEFT JOIN VISITS.PATIENTS pt ON pt.PATIENT_KEY = v.PATIENT_KEY
LEFT JOIN VISITS.PROVIDER_PATIENTS pp ON pp.PROVIDER_PATIENT_KEY = v.PROVIDER_PATIENT_KEY
LEFT JOIN VISITS.PAYER_PATIENTS pap ON pap.PAYER_PATIENT_KEY = v.PAYER_PATIENT_KEY
WHERE v.VISIT_DATE BETWEEN DATEADD(year, -2, TO_DATE('{as_of}')) AND DATEADD(day, 45, TO_DATE('{as_of}'))
  AND c.SSN IS NOT NULL AND {prefix_filter}
QUALIFY ROW_NUMBER() OVER (PARTITION BY v.VISIT_ID, LEFT(c.SSN, 3) ORDER BY v.LAST_UPDATED_DATE DESC NULLS LAST, v.APP_VISIT_ID DESC) = 1
