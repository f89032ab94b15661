"""The 98 columns of a conflict row: PostgreSQL name and type, and the warehouse expression behind it.

One list drives the warehouse SELECT, the PostgreSQL DDL, the binary COPY types and the
IS DISTINCT FROM comparison, so they can never drift apart. Table aliases refer to ``visit_rows.sql``.
Timestamps leave the warehouse as epoch seconds: the emulator returns NULL TIMESTAMP_NTZ values as
1970-01-01 (real Snowflake does not), and an integer crosses both faithfully.
"""

from __future__ import annotations

_NULL = "NULL"

# (PostgreSQL column, PostgreSQL type, warehouse expression)
COLUMNS: list[tuple[str, str, str]] = [
    ("VisitID", "uuid", "v.VISIT_ID"),
    ("AppVisitID", "int8", "v.APP_VISIT_ID"),
    ("VisitDate", "date", "v.VISIT_DATE"),
    ("ContractType", "varchar(30)", "pa.CONTRACT_TYPE"),
    ("SchStartTime", "timestamp", "v.SCH_START"),
    ("SchEndTime", "timestamp", "v.SCH_END"),
    ("VisitStartTime", "timestamp", "v.VISIT_START"),
    ("VisitEndTime", "timestamp", "v.VISIT_END"),
    ("EVVStartTime", "timestamp", "v.EVV_START"),
    ("EVVEndTime", "timestamp", "v.EVV_END"),
    ("EVVType", "varchar(20)", "v.EVV_TYPE"),
    ("IsMissed", "bool", "v.IS_MISSED"),
    ("MissedVisitReason", "varchar(500)", "v.MISSED_REASON"),
    ("SSN", "varchar(20)", "c.SSN"),
    ("AideSSN", "varchar(50)", "c.SSN"),
    ("CaregiverID", "uuid", "c.CAREGIVER_ID"),
    ("AppCaregiverID", "int8", "c.APP_CAREGIVER_ID"),
    ("AideCode", "varchar(50)", "c.CAREGIVER_CODE"),
    ("AideName", "varchar(101)", "c.FIRST_NAME || ' ' || c.LAST_NAME"),
    ("AideFName", "varchar(50)", "c.FIRST_NAME"),
    ("AideLName", "varchar(50)", "c.LAST_NAME"),
    ("AideStatus", "varchar(20)", "c.STATUS"),
    ("ProviderID", "uuid", "p.PROVIDER_ID"),
    ("AppProviderID", "int8", "p.APP_PROVIDER_ID"),
    ("ProviderName", "varchar(100)", "p.PROVIDER_NAME"),
    ("FederalTaxNumber", "varchar(100)", "p.FEDERAL_TAX_NUMBER"),
    ("AgencyContact", "varchar(100)", "p.CONTACT_FIRST_NAME || ' ' || p.CONTACT_LAST_NAME"),
    ("AgencyPhone", "varchar(30)", "p.PHONE_NUMBER_1"),
    ("OfficeID", "uuid", "o.OFFICE_ID"),
    ("AppOfficeID", "int8", "o.APP_OFFICE_ID"),
    ("Office", "varchar(100)", "o.OFFICE_NAME"),
    ("PayerID", "uuid", "pa.PAYER_ID"),
    ("AppPayerID", "int8", "pa.APP_PAYER_ID"),
    ("Contract", "varchar(50)", "COALESCE(pa.CONTRACT_NAME, pa.PAYER_NAME)"),
    ("PayerState", "varchar(10)", "pa.PAYER_STATE"),
    ("ServiceCodeID", "uuid", "s.SERVICE_CODE_ID"),
    ("AppServiceCodeID", "int8", "s.APP_SERVICE_CODE_ID"),
    ("ServiceCode", "varchar(50)", "s.SERVICE_CODE"),
    ("RateType", "varchar(10)", "s.BILL_TYPE"),
    ("Billed", "varchar(3)", "v.BILLED"),
    ("BilledDate", "timestamp", "v.INVOICE_DATE"),
    ("BilledHours", "real", "v.BILLED_HOURS"),
    ("BilledRate", "real", "v.BILLED_RATE"),
    ("TotalBilledAmount", "real", "v.TOTAL_BILLED_AMOUNT"),
    ("BillRateNonBilled", "real", "v.BILL_RATE_NON_BILLED"),
    ("BillRateBoth", "real", "COALESCE(v.BILLED_RATE, v.BILL_RATE_NON_BILLED)"),
    ("PLatitude", "real", "COALESCE(v.CALL_IN_LAT, v.CALL_OUT_LAT)"),
    ("PLongitude", "real", "COALESCE(v.CALL_IN_LON, v.CALL_OUT_LON)"),
    ("PatientID", "uuid", "pt.PATIENT_ID"),
    ("AppPatientID", "int8", "pt.APP_PATIENT_ID"),
    ("P_PatientID", "uuid", "pp.PROVIDER_PATIENT_ID"),
    ("P_AppPatientID", "int8", "pp.APP_PROVIDER_PATIENT_ID"),
    ("PA_PatientID", "uuid", "pap.PAYER_PATIENT_ID"),
    ("PA_AppPatientID", "int8", "pap.APP_PAYER_PATIENT_ID"),
]

# The reference query leaves these 14 patient placeholders NULL.
for _name, _type in [
    ("PStatus", "varchar(20)"), ("PAdmissionID", "varchar(100)"), ("PName", "varchar(201)"),
    ("PFName", "varchar(100)"), ("PLName", "varchar(100)"), ("PMedicaidNumber", "varchar(100)"),
    ("PAddressID", "uuid"), ("PAppAddressID", "int8"), ("PAddressL1", "varchar(500)"),
    ("PAddressL2", "varchar(100)"), ("PCity", "varchar(255)"), ("PAddressState", "varchar(100)"),
    ("PZipCode", "varchar(100)"), ("PCounty", "varchar(100)"),
]:
    COLUMNS.append((_name, _type, _NULL))

# Patient as seen by the provider (P_) and by the payer (PA_): same attributes, two source tables.
for _prefix, _alias, _status_type in (("P_", "pp", "varchar(50)"), ("PA_", "pap", "varchar(20)")):
    COLUMNS += [
        (f"{_prefix}PAdmissionID", "varchar(100)", f"{_alias}.ADMISSION_ID"),
        (f"{_prefix}PName", "varchar(201)", f"{_alias}.FIRST_NAME || ' ' || {_alias}.LAST_NAME"),
        (f"{_prefix}PFName", "varchar(100)", f"{_alias}.FIRST_NAME"),
        (f"{_prefix}PLName", "varchar(100)", f"{_alias}.LAST_NAME"),
        (f"{_prefix}PMedicaidNumber", "varchar(100)", f"{_alias}.MEDICAID_NUMBER"),
        (f"{_prefix}PStatus", _status_type, f"{_alias}.STATUS"),
        (f"{_prefix}PAddressID", "uuid", f"{_alias}.ADDRESS_ID"),
        (f"{_prefix}PAppAddressID", "int8", f"{_alias}.APP_ADDRESS_ID"),
        (f"{_prefix}PAddressL1", "varchar(500)", f"{_alias}.ADDRESS_LINE_1"),
        (f"{_prefix}PAddressL2", "varchar(100)", f"{_alias}.ADDRESS_LINE_2"),
        (f"{_prefix}PCity", "varchar(255)", f"{_alias}.CITY"),
        (f"{_prefix}PAddressState", "varchar(100)", f"{_alias}.ADDRESS_STATE"),
        (f"{_prefix}PZipCode", "varchar(100)", f"{_alias}.ZIP_CODE"),
        (f"{_prefix}PCounty", "varchar(100)", f"{_alias}.COUNTY"),
    ]

COLUMNS += [
    ("LastUpdatedDate", "timestamp", "v.LAST_UPDATED_DATE"),
    ("LastUpdatedBy", "varchar(100)", "v.LAST_UPDATED_BY"),
]

assert len(COLUMNS) == 98, len(COLUMNS)

NAMES = [name for name, _, _ in COLUMNS]
PG_TYPES = {name: pg_type for name, pg_type, _ in COLUMNS}


def _select_expr(pg_type: str, expr: str) -> str:
    if expr == _NULL:
        return _NULL
    if pg_type == "timestamp":
        return f"DATE_PART(epoch_second, {expr})"
    return expr


def select_list() -> str:
    """The 98 output columns, quoted so their case survives on both engines."""
    return ",\n  ".join(f'{_select_expr(t, e)} AS "{n}"' for n, t, e in COLUMNS)

