"""FMP JSON records -> typed frames for the FMP_RAW tables, with warnings for bad input.

Nothing is dropped silently: a record that cannot be keyed goes to REJECTED_ROWS with a reason;
missing or non-numeric fields become NULL (the full record stays in PAYLOAD); every oddity is
counted in ``Notes`` and reported once per run as a warning and as metadata.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import date, datetime

import pandas as pd

from financial_assets.raw.schema import (
    COMPANY_PROFILES,
    DAILY_PRICES,
    HEADER_ALIASES,
    LEGACY_ALIASES,
    StatementKind,
    column_name,
)

PERIODS = {"FY", "Q1", "Q2", "Q3", "Q4"}


class Notes:
    """Warnings gathered while normalising: category -> symbols (and a sample message)."""

    def __init__(self) -> None:
        self.by_category: dict[str, set[str]] = defaultdict(set)
        self.samples: dict[str, str] = {}

    def add(self, category: str, symbol: str, message: str) -> None:
        self.by_category[category].add(symbol)
        self.samples.setdefault(category, message)

    def merge(self, other: Notes) -> None:
        for category, symbols in other.by_category.items():
            self.by_category[category] |= symbols
            self.samples.setdefault(category, other.samples[category])

    def lines(self) -> list[str]:
        out = []
        for category in sorted(self.by_category):
            symbols = sorted(self.by_category[category])
            shown = ", ".join(symbols[:12]) + (" ..." if len(symbols) > 12 else "")
            out.append(f"{category}: {len(symbols)} symbol(s) [{shown}] e.g. {self.samples[category]}")
        return out

    def counts(self) -> dict[str, int]:
        return {category: len(symbols) for category, symbols in sorted(self.by_category.items())}


def to_fmp_symbol(symbol: str) -> str:
    return symbol.replace(".", "-")


def to_index_symbol(symbol: str) -> str:
    return symbol.strip().upper().replace("-", ".")


def number(value) -> float | None:
    """A float from a JSON number or numeric string; None for null, '', NaN, booleans, garbage."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        result = float(value)
    else:
        try:
            result = float(str(value).replace(",", "").strip())
        except ValueError:
            return None
    return result if math.isfinite(result) else None


def day(value) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def timestamp(value) -> datetime | None:
    if value in (None, ""):
        return None
    text_value = str(value).strip().replace("T", " ")
    try:
        return datetime.fromisoformat(text_value[:19])
    except ValueError:
        only_day = day(text_value)
        return datetime(only_day.year, only_day.month, only_day.day) if only_day else None


def boolean(value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def integer(value) -> int | None:
    num = number(value)
    return int(round(num)) if num is not None else None


def text(value) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def payload(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"), default=str)


def _frame(rows: list[dict], columns: list[str], dates=(), timestamps=(), floats=(), ints=(), bools=()) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    for col in timestamps:
        frame[col] = pd.to_datetime(frame[col])
    for col in floats:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    for col in ints:
        frame[col] = pd.array(frame[col].tolist(), dtype="Int64")
    for col in bools:
        frame[col] = pd.array(frame[col].tolist(), dtype="boolean")
    return frame


def rejected(dataset: str, symbol: str, reason: str, record, fetched_at: datetime) -> dict:
    return {"DATASET": dataset, "SYMBOL": symbol, "REASON": reason,
            "PAYLOAD": payload(record if isinstance(record, dict) else {"value": record}), "FETCHED_AT": fetched_at}


def rejected_frame(rows: list[dict]) -> pd.DataFrame:
    return _frame(rows, ["DATASET", "SYMBOL", "REASON", "PAYLOAD", "FETCHED_AT"], timestamps=["FETCHED_AT"])


# ---------------------------------------------------------------- profiles

PROFILE_NUMERIC = {"BETA": "beta", "PRICE": "price", "MARKET_CAP": "marketCap", "LAST_DIVIDEND": "lastDividend",
                   "AVERAGE_VOLUME": "averageVolume"}
PROFILE_TEXT = {"COMPANY_NAME": "companyName", "CIK": "cik", "SECTOR": "sector", "INDUSTRY": "industry",
                "EXCHANGE": "exchange", "CURRENCY": "currency", "COUNTRY": "country"}
# v3 names (FMP_SPEC §3.1) accepted when the stable one is missing
PROFILE_ALIASES = {"lastDividend": "lastDiv", "marketCap": "mktCap", "averageVolume": "volAvg",
                   "exchange": "exchangeShortName"}


def profile_row(symbol: str, record: dict, fetched_at: datetime, notes: Notes) -> dict:
    def get(field):
        if field in record:
            return record[field]
        return record.get(PROFILE_ALIASES.get(field, ""), None)

    missing = [f for f in (*PROFILE_NUMERIC.values(), *PROFILE_TEXT.values()) if get(f) is None]
    if missing:
        notes.add("profile fields missing or null (stored as NULL)", symbol, f"{symbol}: {', '.join(missing[:6])}")
    row = {"SYMBOL": symbol, "PAYLOAD": payload(record), "FETCHED_AT": fetched_at,
           "IPO_DATE": day(get("ipoDate")), "IS_ACTIVELY_TRADING": boolean(get("isActivelyTrading"))}
    row.update({col: number(get(f)) for col, f in PROFILE_NUMERIC.items()})
    row.update({col: text(get(f)) for col, f in PROFILE_TEXT.items()})
    returned = to_index_symbol(str(record.get("symbol") or symbol))
    if returned != symbol:
        notes.add("profile symbol differs from the requested one", symbol, f"asked {symbol}, got {returned}")
    return row


def profile_frame(rows: list[dict]) -> pd.DataFrame:
    return _frame(rows, COMPANY_PROFILES.column_names, timestamps=["FETCHED_AT"],
                  floats=list(PROFILE_NUMERIC), bools=["IS_ACTIVELY_TRADING"])


# ---------------------------------------------------------------- prices

PRICE_NUMERIC = {"OPEN": "open", "HIGH": "high", "LOW": "low", "CLOSE": "close", "CHANGE": "change",
                 "CHANGE_PERCENT": "changePercent", "VWAP": "vwap"}


def price_rows(symbol: str, records: list, loaded_at: datetime, notes: Notes, rejects: list[dict]) -> list[dict]:
    rows = []
    for record in records:
        if not isinstance(record, dict):
            rejects.append(rejected("prices", symbol, "not a JSON object", record, loaded_at))
            continue
        trade_day = day(record.get("date"))
        if trade_day is None:
            rejects.append(rejected("prices", symbol, "no valid date", record, loaded_at))
            notes.add("price rows without a date (kept in REJECTED_ROWS)", symbol, f"{symbol}: {record}")
            continue
        row = {"SYMBOL": symbol, "DATE": trade_day, "VOLUME": integer(record.get("volume")),
               "PAYLOAD": payload(record), "LOADED_AT": loaded_at}
        row.update({col: number(record.get(f)) for col, f in PRICE_NUMERIC.items()})
        if row["CLOSE"] is None:
            notes.add("price rows with a null close (stored as NULL)", symbol, f"{symbol} {trade_day}")
        rows.append(row)
    seen = [r["DATE"] for r in rows]
    if len(seen) != len(set(seen)):
        notes.add("duplicate price dates in one response (latest kept)", symbol, f"{symbol}")
    return rows


def price_frame(rows: list[dict]) -> pd.DataFrame:
    return _frame(rows, DAILY_PRICES.column_names, timestamps=["LOADED_AT"], floats=list(PRICE_NUMERIC),
                  ints=["VOLUME"])


# ---------------------------------------------------------------- statements


def statement_rows(kind: StatementKind, symbol: str, records: list, fetched_at: datetime, notes: Notes,
                   rejects: list[dict]) -> list[dict]:
    """Typed rows for ``symbol`` (the statement symbol). Unknown numeric fields stay in PAYLOAD."""
    rows = []
    known = set(kind.fields) | {"date", "symbol", "reportedCurrency", "cik", "filingDate", "acceptedDate",
                                "fiscalYear", "period", "link", "finalLink"}
    aliases = {**HEADER_ALIASES, **LEGACY_ALIASES.get(kind.kind, {})}
    for record in records:
        if not isinstance(record, dict):
            rejects.append(rejected(kind.kind, symbol, "not a JSON object", record, fetched_at))
            continue
        rec = dict(record)
        for old, new in aliases.items():
            if old in rec and new not in rec:
                rec[new] = rec[old]
        end = day(rec.get("date"))
        period = text(rec.get("period"))
        period = period.upper() if period else None
        if end is None or period not in PERIODS:
            rejects.append(rejected(kind.kind, symbol, f"unusable date/period ({rec.get('date')!r}, "
                                                       f"{rec.get('period')!r})", record, fetched_at))
            notes.add(f"{kind.kind} rows without a usable date/period (kept in REJECTED_ROWS)", symbol,
                      f"{symbol}: date={rec.get('date')!r} period={rec.get('period')!r}")
            continue
        fiscal_year = integer(rec.get("fiscalYear"))
        if fiscal_year is not None and abs(fiscal_year - end.year) > 1:
            notes.add("fiscal year label far from the period end (kept as reported)", symbol,
                      f"{symbol} {period} ends {end} labelled {fiscal_year}")
        row = {
            "SYMBOL": symbol, "PERIOD_END_DATE": end, "PERIOD": period, "FISCAL_YEAR": fiscal_year,
            "REPORTED_CURRENCY": text(rec.get("reportedCurrency")), "CIK": text(rec.get("cik")),
            "FILING_DATE": day(rec.get("filingDate")), "ACCEPTED_DATE": timestamp(rec.get("acceptedDate")),
            "PAYLOAD": payload(record), "FETCHED_AT": fetched_at,
        }
        missing, garbage = [], []
        for field in kind.fields:
            value = rec.get(field)
            if field not in rec:
                missing.append(field)
            elif value is not None and number(value) is None:
                garbage.append(field)
            row[column_name(field)] = number(value)
        if missing:
            notes.add(f"{kind.kind} fields missing (NULL; record kept in PAYLOAD)", symbol,
                      f"{symbol} {end} {period}: {', '.join(missing[:5])}")
        if garbage:
            notes.add(f"{kind.kind} non-numeric values (NULL; kept in PAYLOAD)", symbol,
                      f"{symbol} {end} {period}: {', '.join(garbage[:5])}")
        extra = [f for f, v in rec.items() if f not in known and f not in aliases
                 and isinstance(v, (int, float)) and not isinstance(v, bool)]
        if extra:
            notes.add(f"{kind.kind} new fields not in the schema (kept in PAYLOAD)", symbol,
                      f"{symbol}: {', '.join(extra[:5])}")
        if row["ACCEPTED_DATE"] is None:
            notes.add(f"{kind.kind} rows without acceptedDate", symbol, f"{symbol} {end} {period}")
        rows.append(row)
    keys = [(r["PERIOD_END_DATE"], r["PERIOD"]) for r in rows]
    if len(keys) != len(set(keys)):
        notes.add(f"{kind.kind} duplicate periods in one response (latest acceptedDate kept)", symbol, symbol)
    labels = defaultdict(set)
    for r in rows:
        labels[(r["FISCAL_YEAR"], r["PERIOD"])].add(r["PERIOD_END_DATE"])
    overlapping = [k for k, ends in labels.items() if len(ends) > 1 and k[0] is not None]
    if overlapping:
        notes.add(f"{kind.kind} one fiscal period with several end dates (all kept)", symbol,
                  f"{symbol} FY{overlapping[0][0]} {overlapping[0][1]}")
    return rows


def statement_frame(kind: StatementKind, rows: list[dict]) -> pd.DataFrame:
    numeric = [column_name(f) for f in kind.fields]
    return _frame(rows, kind.table.column_names, timestamps=["ACCEPTED_DATE", "FETCHED_AT"], floats=numeric,
                  ints=["FISCAL_YEAR"])
