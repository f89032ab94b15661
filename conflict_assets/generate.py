"""Synthetic visit data for the warehouse: real shapes, synthetic values, fixed seed.

``python -m conflict_assets.generate --scale 10000 --seed 7`` fills schema VISITS (reference scale: 10,000
caregivers, ~5.2M visits in the window) and sets up PostgreSQL. ``--scale`` is the number of distinct
caregivers (SSNs); tests use a few hundred. Loading is Parquet + COPY INTO (``bulk_load``), chunked so memory
stays flat. Bad input is injected at small rates on purpose: NULL SSNs, missing or inverted times, visits
without GPS, duplicate VisitIDs, EVV clock skew.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time

import numpy as np
import pandas as pd

from conflict_assets.source_schema import as_of_date, create_source_tables
from resources.warehouse import bulk_load

log = logging.getLogger(__name__)

METROS = np.array([[40.71, -74.00], [42.65, -73.75], [42.89, -78.87], [43.05, -76.15]])
FIRST = np.array(["Ana", "Ben", "Carla", "Dev", "Eve", "Femi", "Gus", "Hana", "Ivan", "Jo", "Kai", "Lena"])
LAST = np.array(["Diaz", "Smith", "Ng", "Okafor", "Rossi", "Khan", "Lee", "Brown", "Cohen", "Silva"])
HISTORY_DAYS = 60  # visits older than the window, so the window filter has something to exclude
MINUTE = np.timedelta64(1, "m")


def _uuids(rng: np.random.Generator, n: int) -> list[str]:
    raw = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexes = raw.tobytes().hex()
    return [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in
            (hexes[i * 32:(i + 1) * 32] for i in range(n))]


def _names(rng, n):
    return FIRST[rng.integers(0, len(FIRST), n)], LAST[rng.integers(0, len(LAST), n)]


def _dimensions(rng: np.random.Generator, scale: int) -> dict[str, pd.DataFrame]:
    n_prov = max(4, scale // 100)
    providers = pd.DataFrame({
        "PROVIDER_KEY": np.arange(n_prov), "PROVIDER_ID": _uuids(rng, n_prov),
        "APP_PROVIDER_ID": 1000 + np.arange(n_prov), "PROVIDER_NAME": [f"Agency {i}" for i in range(n_prov)],
        "FEDERAL_TAX_NUMBER": [f"{rng.integers(10, 99)}-{rng.integers(10**6, 10**7)}" for _ in range(n_prov)],
        "CONTACT_FIRST_NAME": _names(rng, n_prov)[0], "CONTACT_LAST_NAME": _names(rng, n_prov)[1],
        "PHONE_NUMBER_1": [f"518-555-{i % 10000:04d}" for i in range(n_prov)],
    })
    offices = pd.DataFrame({
        "OFFICE_KEY": np.arange(2 * n_prov), "OFFICE_ID": _uuids(rng, 2 * n_prov),
        "APP_OFFICE_ID": 5000 + np.arange(2 * n_prov), "OFFICE_NAME": [f"Office {i}" for i in range(2 * n_prov)],
        "PROVIDER_KEY": np.arange(2 * n_prov) // 2,
    })
    payers = pd.DataFrame({
        "PAYER_KEY": np.arange(8), "PAYER_ID": _uuids(rng, 8), "APP_PAYER_ID": 700 + np.arange(8),
        "PAYER_NAME": [f"Payer {i}" for i in range(8)],
        "CONTRACT_NAME": [None if i == 7 else f"Contract {i}" for i in range(8)],
        "PAYER_STATE": ["NY"] * 7 + ["NJ"], "CONTRACT_TYPE": ["Medicaid", "MLTC", "Private"] * 2 + ["VA", "LTC"],
    })
    services = pd.DataFrame({
        "SERVICE_CODE_KEY": np.arange(12), "SERVICE_CODE_ID": _uuids(rng, 12), "APP_SERVICE_CODE_ID": 300 + np.arange(12),
        "SERVICE_CODE": [f"T10{i:02d}" for i in range(12)], "BILL_TYPE": ["Hourly", "Visit", "Daily"] * 4,
    })
    return {"PROVIDERS": providers, "OFFICES": offices, "PAYERS": payers, "SERVICE_CODES": services}


def _caregivers(rng, scale: int, n_prov: int):
    ssn = np.unique(rng.integers(0, 10**9, scale * 2))
    rng.shuffle(ssn)  # np.unique sorts: shuffle before cutting, or the low prefixes get everything
    ssn = ssn[:scale]
    # most caregivers work for one agency; the 2-3 agency ones are where conflicts come from
    k = rng.choice([1, 2, 3], scale, p=[0.78, 0.18, 0.04])
    ssn_idx = np.repeat(np.arange(scale), k)
    provs = np.concatenate([rng.choice(n_prov, kk, replace=False) for kk in k])
    n = len(ssn_idx)
    ssn_txt = np.array([f"{s:09d}" for s in ssn], dtype=object)[ssn_idx]
    null_ssn = rng.random(n) < 0.003
    null_ssn[rng.integers(0, n)] = True  # at least one, even at tiny scale
    ssn_txt[null_ssn] = None
    first, last = _names(rng, n)
    frame = pd.DataFrame({
        "CAREGIVER_KEY": np.arange(n), "CAREGIVER_ID": _uuids(rng, n), "APP_CAREGIVER_ID": 10**6 + np.arange(n),
        "SSN": ssn_txt, "CAREGIVER_CODE": [f"CG{i:07d}" for i in range(n)], "FIRST_NAME": first, "LAST_NAME": last,
        "STATUS": rng.choice(["Active", "Active", "Active", "Inactive"], n), "PROVIDER_KEY": provs,
    })
    metro = rng.integers(0, len(METROS), scale)[ssn_idx]
    away = rng.random(n) < 0.15  # some agency jobs are in another metro: travel-time conflicts
    metro[away] = rng.integers(0, len(METROS), away.sum())
    return frame, metro, k[ssn_idx]


def _patients(rng, scale: int, n_prov: int):
    n = scale * 3
    metro = rng.integers(0, len(METROS), n)
    home = METROS[metro] + rng.normal(0, 0.12, (n, 2))
    patients = pd.DataFrame({"PATIENT_KEY": np.arange(n), "PATIENT_ID": _uuids(rng, n),
                             "APP_PATIENT_ID": 2 * 10**6 + np.arange(n), "HOME_LAT": home[:, 0],
                             "HOME_LON": home[:, 1]})
    return patients, metro


def _patient_view(rng, keys, owner_col, owners, id_col, app_col) -> pd.DataFrame:
    n = len(keys)
    first, last = _names(rng, n)
    return pd.DataFrame({
        f"{owner_col.split('_')[0]}_PATIENT_KEY": np.arange(n), "PATIENT_KEY": keys, owner_col: owners,
        id_col: _uuids(rng, n), app_col: 3 * 10**6 + np.arange(n), "ADMISSION_ID": [f"ADM{i:08d}" for i in range(n)],
        "FIRST_NAME": first, "LAST_NAME": last, "MEDICAID_NUMBER": [f"MC{i:08d}" for i in range(n)],
        "STATUS": rng.choice(["Active", "Discharged", "Hold"], n), "ADDRESS_ID": _uuids(rng, n),
        "APP_ADDRESS_ID": 4 * 10**6 + np.arange(n), "ADDRESS_LINE_1": [f"{i % 900 + 1} Main St" for i in range(n)],
        "ADDRESS_LINE_2": np.where(rng.random(n) < 0.3, "Apt 2", None), "CITY": rng.choice(["Albany", "Troy", "NYC"], n),
        "ADDRESS_STATE": "NY", "ZIP_CODE": [f"{12000 + i % 900}" for i in range(n)], "COUNTY": "Albany",
    })


def _visits(rng, cg: pd.DataFrame, cg_k, slot_patients, home, n_offices_per_prov: int, as_of: dt.date,
            visits_per_caregiver: float, next_app_id: int) -> pd.DataFrame:
    start_day = np.datetime64(as_of - dt.timedelta(days=730 + HISTORY_DAYS), "D")
    days = 730 + HISTORY_DAYS + 46
    per_record = rng.poisson(visits_per_caregiver / cg_k)
    rec = np.repeat(np.arange(len(cg)), per_record)
    n = len(rec)
    slot = rng.integers(0, 3, n)
    patient = slot_patients[rec, slot]
    overnight = rng.random(n) < 0.06
    start_min = np.where(overnight, rng.integers(20 * 4, 24 * 4, n), rng.integers(6 * 4, 21 * 4, n)) * 15
    duration = np.where(overnight, rng.integers(8, 13, n) * 60, rng.choice([60, 120, 180, 240, 360, 480], n))
    day = start_day + rng.integers(0, days, n).astype("timedelta64[D]")
    sch_start = day.astype("datetime64[m]") + start_min * MINUTE
    sch_end = sch_start + duration * MINUTE
    now = np.datetime64(as_of, "m")
    past = sch_end < now
    missed = past & (rng.random(n) < 0.03)
    done = past & ~missed
    jitter = lambda: np.round(rng.normal(0, 8, n)).astype(int) * MINUTE  # noqa: E731
    visit_start = np.where(done, sch_start + jitter(), np.datetime64("NaT"))
    visit_end = np.where(done, sch_end + jitter(), np.datetime64("NaT"))
    # malformed times: clock-out before clock-in, or no scheduled end
    inverted = done & (rng.random(n) < 0.003)
    visit_end[inverted] = visit_start[inverted] - rng.integers(30, 300, inverted.sum()) * MINUTE
    sch_end[rng.random(n) < 0.002] = np.datetime64("NaT")
    evv_start = visit_start + rng.integers(-3, 4, n) * MINUTE
    evv_end = visit_end + rng.integers(-3, 4, n) * MINUTE
    skew = done & (rng.random(n) < 0.005)  # device clock off by hours
    offset = rng.choice([-1, 1], skew.sum()) * rng.integers(3, 10, skew.sum()) * 60 * MINUTE
    evv_start[skew] += offset
    evv_end[skew] += offset
    home = home[patient]
    gps_in = home + rng.normal(0, 0.0005, (n, 2))
    gps_out = home + rng.normal(0, 0.0005, (n, 2))
    no_gps = ~done | (rng.random(n) < 0.02)
    gps_in[no_gps | (rng.random(n) < 0.01)] = np.nan
    gps_out[no_gps] = np.nan
    billed = done & (rng.random(n) < 0.7)
    hours = duration / 60.0
    rate = np.round(rng.uniform(18, 35, n), 2)
    prov = cg["PROVIDER_KEY"].to_numpy()[rec]
    last_upd = np.minimum(np.where(past, sch_end, now - rng.integers(1, 30, n) * 1440 * MINUTE)
                          + rng.integers(0, 72 * 60, n) * MINUTE, now)
    frame = pd.DataFrame({
        "VISIT_ID": _uuids(rng, n), "APP_VISIT_ID": next_app_id + np.arange(n),
        "VISIT_DATE": sch_start.astype("datetime64[D]"), "CAREGIVER_KEY": cg["CAREGIVER_KEY"].to_numpy()[rec],
        "PATIENT_KEY": patient, "PROVIDER_PATIENT_KEY": cg["CAREGIVER_KEY"].to_numpy()[rec] * 3 + slot,
        "PAYER_PATIENT_KEY": patient, "PROVIDER_KEY": prov,
        "OFFICE_KEY": prov * n_offices_per_prov + rng.integers(0, n_offices_per_prov, n),
        "PAYER_KEY": patient % 8, "SERVICE_CODE_KEY": rng.integers(0, 12, n),
        "SCH_START": sch_start, "SCH_END": sch_end, "VISIT_START": visit_start, "VISIT_END": visit_end,
        "EVV_START": evv_start, "EVV_END": evv_end,
        "EVV_TYPE": np.where(done, rng.choice(["GPS", "Telephony", "FOB", "Mobile"], n), None),
        "IS_MISSED": missed, "MISSED_REASON": np.where(missed, rng.choice(["Patient hospitalized", "Aide sick",
                                                                          "Patient refused"], n), None),
        "BILLED": np.where(billed, "Yes", "No"),
        "INVOICE_DATE": np.where(billed, np.minimum(sch_end + rng.integers(7, 30, n) * 1440 * MINUTE, now),
                                 np.datetime64("NaT")),
        "BILLED_HOURS": np.where(billed, hours, np.nan), "BILLED_RATE": np.where(billed, rate, np.nan),
        "TOTAL_BILLED_AMOUNT": np.where(billed, np.round(hours * rate, 2), np.nan),
        "BILL_RATE_NON_BILLED": np.where(billed, np.nan, rate),
        "CALL_IN_LAT": gps_in[:, 0], "CALL_IN_LON": gps_in[:, 1], "CALL_OUT_LAT": gps_out[:, 0],
        "CALL_OUT_LON": gps_out[:, 1], "LAST_UPDATED_DATE": last_upd,
        "LAST_UPDATED_BY": np.array([f"{f} {l}" for f, l in zip(*_names(rng, 16))], dtype=object)[
            rng.integers(0, 16, n)],
    })
    # duplicate VisitIDs: a later re-export of the same visit with a moved clock-out
    dup = frame[rng.random(n) < 0.001].copy()
    dup["LAST_UPDATED_DATE"] = dup["LAST_UPDATED_DATE"] + pd.Timedelta(hours=1)
    dup["VISIT_END"] = dup["VISIT_END"] + pd.Timedelta(minutes=15)
    return pd.concat([frame, dup], ignore_index=True)


def generate(cursor, scale: int, seed: int = 7, as_of: dt.date | None = None,
             visits_per_caregiver: float = 560.0, chunk_records: int = 2500) -> dict[str, int]:
    """Replace schema VISITS with fresh synthetic data; return row counts per table."""
    as_of = as_of or as_of_date()
    rng = np.random.default_rng(seed)
    create_source_tables(cursor)
    counts: dict[str, int] = {}
    dims = _dimensions(rng, scale)
    n_prov = len(dims["PROVIDERS"])
    caregivers, cg_metro, cg_k = _caregivers(rng, scale, n_prov)
    patients, pat_metro = _patients(rng, scale, n_prov)
    home = patients[["HOME_LAT", "HOME_LON"]].to_numpy()
    # each caregiver record serves 3 patients of its metro
    pat_by_metro = [np.flatnonzero(pat_metro == m) for m in range(len(METROS))]
    slot_patients = np.empty((len(caregivers), 3), dtype=np.int64)
    for m, pool in enumerate(pat_by_metro):
        rows = np.flatnonzero(cg_metro == m)
        slot_patients[rows] = pool[rng.integers(0, len(pool), (len(rows), 3))]
    dims["CAREGIVERS"] = caregivers
    dims["PATIENTS"] = patients
    # provider-patient records: one per caregiver record and patient slot (keys match _visits)
    dims["PROVIDER_PATIENTS"] = _patient_view(rng, slot_patients.reshape(-1), "PROVIDER_KEY",
                                              np.repeat(caregivers["PROVIDER_KEY"].to_numpy(), 3),
                                              "PROVIDER_PATIENT_ID", "APP_PROVIDER_PATIENT_ID")
    dims["PAYER_PATIENTS"] = _patient_view(rng, patients["PATIENT_KEY"].to_numpy(), "PAYER_KEY",
                                           patients["PATIENT_KEY"].to_numpy() % 8, "PAYER_PATIENT_ID",
                                           "APP_PAYER_PATIENT_ID")
    for table, frame in dims.items():
        counts[table] = bulk_load(cursor, f"VISITS.{table}", frame)
    counts["VISITS"] = 0
    app_id = 10**8
    for lo in range(0, len(caregivers), chunk_records):
        part = caregivers.iloc[lo:lo + chunk_records]
        frame = _visits(rng, part, cg_k[lo:lo + chunk_records], slot_patients[lo:lo + chunk_records], home,
                        2, as_of, visits_per_caregiver, app_id)
        app_id += len(frame)
        counts["VISITS"] += bulk_load(cursor, "VISITS.VISITS", frame)
        log.info("loaded %d visits so far", counts["VISITS"])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10_000, help="distinct caregivers (SSNs)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None)
    parser.add_argument("--visits-per-caregiver", type=float, default=560.0)
    opts = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from conflict_assets.postgres_schema import setup_postgres
    from resources.postgres import postgres_from_env
    from resources.warehouse import warehouse_from_env

    started = time.monotonic()
    with warehouse_from_env().get_connection() as conn:
        counts = generate(conn.cursor(), opts.scale, opts.seed, opts.as_of, opts.visits_per_caregiver)
    setup_postgres(postgres_from_env())
    print({**counts, "seconds": round(time.monotonic() - started, 1)})


if __name__ == "__main__":
    main()
