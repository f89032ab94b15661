"""Warehouse conflict detection equals a brute-force Python reference (emulator, tiny data)."""

from __future__ import annotations

import datetime as dt
import hashlib
import math

import numpy as np
import pandas as pd
import pytest

from conflict_assets.detection import RESULT_TABLE, DetectionParams, detect
from conflict_assets.source_schema import create_source_tables
from resources.warehouse import bulk_load

AS_OF = dt.date(2026, 6, 1)
BASE = dt.datetime(2026, 5, 10)
KM_PER_DEG_LAT = 6371.0 * math.pi / 180  # Snowflake's HAVERSINE uses a 6371 km radius


def _visit(vid, cg, prov, s_start, s_end, a_start=None, a_end=None, lat=None, lon=None, missed=False):
    return {"VISIT_ID": vid, "CAREGIVER_KEY": cg, "PROVIDER_KEY": prov, "SCH_START": s_start, "SCH_END": s_end,
            "VISIT_START": a_start, "VISIT_END": a_end, "CALL_IN_LAT": lat, "CALL_IN_LON": lon, "IS_MISSED": missed}


def _edge_cases() -> list[dict]:
    h = lambda x: BASE + dt.timedelta(hours=x)  # noqa: E731
    lat10_1, lat9_9 = 40 + 10.1 / KM_PER_DEG_LAT, 40 + 9.9 / KM_PER_DEG_LAT
    return [
        # caregiver 0: touching intervals (no overlap), 1-minute overlap (conflict)
        _visit("e0a", 0, 0, h(8), h(10)), _visit("e0b", 1, 1, h(10), h(12)),
        _visit("e0c", 1, 1, h(20), h(22)), _visit("e0d", 0, 0, h(21.99), h(23)),
        # caregiver 2/3 (same SSN): overnight 22:00-06:00 against 05:00-07:00 the next day
        _visit("e1a", 2, 0, h(46), h(54)), _visit("e1b", 3, 2, h(53), h(55)),
        # scheduled apart but actual times overlap (actual counts), and the reverse
        _visit("e2a", 2, 0, h(80), h(82), h(80), h(83.5)), _visit("e2b", 3, 2, h(83), h(85), h(83.6), h(85)),
        # travel: gap 10 min (10 km allowed at 60 km/h): 10.1 km -> conflict, 9.9 km -> none
        _visit("e3a", 4, 0, h(100), h(101), lat=40.0, lon=-74.0), _visit("e3b", 5, 1, h(101 + 1 / 6), h(102),
                                                                         lat=lat10_1, lon=-74.0),
        _visit("e3c", 4, 0, h(110), h(111), lat=40.0, lon=-74.0), _visit("e3d", 5, 1, h(111 + 1 / 6), h(112),
                                                                         lat=lat9_9, lon=-74.0),
        # back-to-back with distance: conflict; missing GPS: never a travel conflict
        _visit("e3e", 4, 0, h(120), h(121), lat=40.0, lon=-74.0), _visit("e3f", 5, 1, h(121), h(122),
                                                                         lat=40.5, lon=-74.0),
        _visit("e3g", 4, 0, h(130), h(131), lat=None, lon=None), _visit("e3h", 5, 1, h(131), h(132),
                                                                       lat=41.0, lon=-74.0),
        # same provider never conflicts; missed visits never conflict; inverted times are unusable
        _visit("e4a", 0, 0, h(140), h(142)), _visit("e4b", 0, 0, h(141), h(143)),
        _visit("e4c", 0, 0, h(150), h(152)), _visit("e4d", 1, 1, h(151), h(153), missed=True),
        _visit("e4e", 0, 0, h(160), h(158)), _visit("e4f", 1, 1, h(159), h(161)),
    ]


def _random_visits(rng: np.random.Generator, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        start = BASE + dt.timedelta(minutes=15 * int(rng.integers(0, 4 * 24 * 6)))
        dur = dt.timedelta(minutes=15 * int(rng.integers(1, 48)))
        a_start = a_end = None
        if rng.random() < 0.6:
            a_start = start + dt.timedelta(minutes=15 * int(rng.integers(-4, 5)))
            a_end = a_start + dt.timedelta(minutes=15 * int(rng.integers(-2, 48)))
        gps = rng.random() < 0.85
        rows.append(_visit(f"r{i:04d}", int(rng.integers(6, 12)), None, start,
                           None if rng.random() < 0.03 else start + dur, a_start, a_end,
                           40 + rng.uniform(0, 0.5) if gps else None, -74 + rng.uniform(0, 0.5) if gps else None,
                           bool(rng.random() < 0.05)))
    return rows


CAREGIVERS = pd.DataFrame({
    # keys 0-5: three SSNs at two providers each (prefix 111); 6-11: two SSNs at three providers (prefix 222)
    "CAREGIVER_KEY": list(range(12)),
    "SSN": ["111000001"] * 2 + ["111000002"] * 2 + ["111000003"] * 2 + ["222000001"] * 3 + ["222000002"] * 3,
    "PROVIDER_KEY": [0, 1, 0, 2, 0, 1, 0, 1, 2, 0, 1, 2],
})


def _frames(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    cg_provider = CAREGIVERS.set_index("CAREGIVER_KEY")["PROVIDER_KEY"]
    frame["PROVIDER_KEY"] = frame["CAREGIVER_KEY"].map(cg_provider)
    frame["VISIT_DATE"] = pd.to_datetime(frame["SCH_START"]).dt.date
    frame["APP_VISIT_ID"] = range(len(frame))
    for col in ("SCH_START", "SCH_END", "VISIT_START", "VISIT_END"):
        frame[col] = pd.to_datetime(frame[col])
    frame["CALL_IN_LAT"] = frame["CALL_IN_LAT"].astype(float)
    frame["CALL_IN_LON"] = frame["CALL_IN_LON"].astype(float)
    return frame


def _haversine(lat1, lon1, lat2, lon2) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def reference(frame: pd.DataFrame, params: DetectionParams) -> set[tuple]:
    """The rules, written the slow obvious way."""
    ssn = CAREGIVERS.set_index("CAREGIVER_KEY")["SSN"]

    def usable(s, e, sched=None):
        if pd.isna(s) or pd.isna(e) or e <= s or (e - s).total_seconds() > 86400:
            return None
        if sched is not None and abs((s - sched).total_seconds()) > 86400:
            return None
        return (s, e)

    visits = []
    for r in frame.itertuples():
        if r.IS_MISSED:
            continue
        sched = usable(r.SCH_START, r.SCH_END)
        actual = usable(r.VISIT_START, r.VISIT_END, r.SCH_START if sched else None)
        if not sched and not actual:
            continue
        lat = None if pd.isna(r.CALL_IN_LAT) else r.CALL_IN_LAT
        visits.append({"id": r.VISIT_ID, "ssn": ssn[r.CAREGIVER_KEY], "prov": r.PROVIDER_KEY, "ivs": [sched, actual],
                       "eff": actual or sched, "lat": lat, "lon": None if lat is None else r.CALL_IN_LON})
    out = set()

    def add(kind, a, b):
        lo, hi = sorted((a, b))
        cid = hashlib.md5(f"{kind}|{lo}|{hi}".encode()).hexdigest()
        out.add((cid, kind, lo, hi))
        out.add((cid, kind, hi, lo))

    for i, a in enumerate(visits):
        for b in visits[i + 1:]:
            if a["ssn"] != b["ssn"] or a["prov"] == b["prov"]:
                continue
            best = max(((min(x[1], y[1]) - max(x[0], y[0])).total_seconds()
                        for x in a["ivs"] if x for y in b["ivs"] if y), default=-1)
            if best > params.tolerance_minutes * 60:
                add("TIME_OVERLAP", a["id"], b["id"])
    for key in {v["ssn"] for v in visits}:
        seq = sorted((v for v in visits if v["ssn"] == key), key=lambda v: (v["eff"][0], v["id"]))
        for a, b in zip(seq, seq[1:]):
            if a["prov"] == b["prov"] or None in (a["lat"], b["lat"]):
                continue
            gap = (b["eff"][0] - a["eff"][1]).total_seconds()
            dist = _haversine(a["lat"], a["lon"], b["lat"], b["lon"])
            if gap >= 0 and dist > params.min_travel_km and dist > gap * params.speed_kmh / 3600:
                add("TRAVEL_TIME", a["id"], b["id"])
    return out


def _load_and_detect(warehouse, frame, params) -> set[tuple]:
    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        create_source_tables(cur)
        bulk_load(cur, "VISITS.CAREGIVERS", CAREGIVERS)
        bulk_load(cur, "VISITS.VISITS", frame)
        summary = detect(cur, ["111", "222"], AS_OF, params, force=True)
        cur.execute(f"SELECT CONFLICTID, CONFLICT_TYPE, VISIT_ID, OTHER_VISIT_ID FROM {RESULT_TABLE} "
                    "WHERE PREFIX IN ('111', '222')")
        found = set(cur.fetchall())
    assert summary["conflict_rows"] == len(found)
    return found


def test_edge_cases_match_the_reference_and_the_intended_answers(warehouse):
    frame = _frames(_edge_cases())
    params = DetectionParams()
    found = _load_and_detect(warehouse, frame, params)
    assert found == reference(frame, params)
    pairs = {(kind, a) for _, kind, a, b in found if a < b}
    assert pairs == {("TIME_OVERLAP", "e0c"), ("TIME_OVERLAP", "e1a"), ("TIME_OVERLAP", "e2a"),
                     ("TRAVEL_TIME", "e3a"), ("TRAVEL_TIME", "e3e")}


@pytest.mark.parametrize("seed,tolerance", [(1, 0.0), (2, 15.0)])
def test_random_data_matches_the_reference(warehouse, seed, tolerance):
    frame = _frames(_random_visits(np.random.default_rng(seed), 220))
    params = DetectionParams(tolerance_minutes=tolerance, speed_kmh=40.0)
    found = _load_and_detect(warehouse, frame, params)
    expected = reference(frame, params)
    assert found == expected
    assert {k for _, k, _, _ in expected} == {"TIME_OVERLAP", "TRAVEL_TIME"}  # the data exercises both rules


@pytest.mark.parametrize("keys", [["001", "002", "004"], [f"{k:03d}" for k in range(0, 1000) if k != 500], ["123"]])
def test_prefix_filter_on_the_source_selects_exactly_the_asked_prefixes(warehouse, keys):
    """The source's SSN is any text: a range filter must not let in text that sorts inside the range."""
    from conflict_assets.source_schema import prefix_filter

    ssns = ["001234567", "002000000", "003999999", "004", "00", "0", "", "0A1234567", "1-2345678", "123456789",
            "12", "500123456", "999999999", "99A", "9999", " 01234567", None]
    values = ", ".join("(NULL)" if s is None else f"('{s}')" for s in ssns)
    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT x.column1 FROM (SELECT column1 FROM VALUES {values}) x "
                    f"JOIN (SELECT column1 AS SSN FROM VALUES {values}) c ON c.SSN = x.column1 "
                    f"WHERE {prefix_filter(keys)}")
        got = sorted(r[0] for r in cur.fetchall())
    wanted = set(keys)
    assert got == sorted(s for s in ssns if s and len(s) >= 3 and s[:3].isdigit() and s[:3] in wanted)
