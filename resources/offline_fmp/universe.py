"""The offline server's company universe: the real S&P 500 list from pytickersymbols.

Everything synthetic about a company (CIK, fiscal-year end, exchange, ...) is derived from a
stable hash of its issuer key, so it never changes between processes or Python versions.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

GICS_SECTORS = (
    "Communication Services",
    "Consumer Discretionary",
    "Consumer Staples",
    "Energy",
    "Financials",
    "Health Care",
    "Industrials",
    "Information Technology",
    "Materials",
    "Real Estate",
    "Utilities",
)

# pytickersymbols lists two GICS sectors for 16 companies (FMP_SPEC §10). This precedence picks
# each one's actual GICS sector: STE health care, utilities over energy (AES, ATO, CMS, ED, CEG,
# DUK), REITs over financials (EQIX, EQR, FRT, DOC, PSA), MCO/MSCI financials, GRMN consumer
# discretionary, GEV industrials.
SECTOR_PRECEDENCE = (
    "Health Care",
    "Utilities",
    "Real Estate",
    "Financials",
    "Consumer Discretionary",
    "Industrials",
    "Energy",
    "Information Technology",
    "Communication Services",
    "Consumer Staples",
    "Materials",
)

# second share class -> the class whose issuer record (CIK, statements) it shares
SHARE_CLASS_ISSUER = {"GOOG": "GOOGL", "FOX": "FOXA", "NWS": "NWSA"}

FISCAL_YEAR_END_MONTH = {
    "AAPL": 9, "MSFT": 6, "NVDA": 1, "WMT": 1, "ORCL": 5, "CSCO": 7, "NKE": 5, "FDX": 5,
    "ADBE": 11, "COST": 8, "HD": 1, "LOW": 1, "TGT": 1, "CRM": 1, "DIS": 9, "V": 9, "PG": 6,
    "INTU": 7, "ADP": 6, "QCOM": 9, "MU": 8, "AVGO": 10, "SBUX": 9, "EL": 6, "CL": 12,
}


def stable_int(*parts: object) -> int:
    """A process-independent 64-bit integer from ``parts`` (unlike ``hash()``)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def unit(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1)."""
    return stable_int(*parts) / 2**64


def to_fmp_symbol(symbol: str) -> str:
    return symbol.replace(".", "-")


@dataclass(frozen=True)
class Company:
    symbol: str  # index (dot) form, e.g. BRK.B
    fmp_symbol: str  # FMP (dash) form, e.g. BRK-B
    issuer: str  # symbol of the class that owns the statements (itself for single-class issuers)
    name: str
    sector: str
    sub_sector: str
    headquarters: str
    founded: str
    cik: str
    fiscal_year_end_month: int
    exchange: str
    isin: str
    website: str
    ceo: str
    employees: int
    revenue_hint: float | None  # latest annual revenue from Wikipedia, USD
    revenue_hint_year: int | None
    date_first_added: str


def _sector(industries: list[str], symbol: str) -> str:
    found = [s for s in SECTOR_PRECEDENCE if s in industries]
    if found:
        return found[0]
    return GICS_SECTORS[stable_int("sector", symbol) % len(GICS_SECTORS)]


def _sub_sector(industries: list[str], sector: str) -> str:
    labels = [i.strip() for i in industries if i not in GICS_SECTORS and i.strip()]
    short = [label for label in labels if len(label) <= 40]
    if short:
        return max(short, key=len)
    return min(labels, key=len) if labels else sector


def _founded(text: str | None, symbol: str) -> str:
    match = re.search(r"\(\s*(\d{4}(?:-\d{2}(?:-\d{2})?)?)\s*\)", text or "")
    if match:
        return match.group(1)
    match = re.search(r"\b(1[6-9]\d{2}|20[0-2]\d)\b", text or "")
    return match.group(1) if match else str(1850 + stable_int("founded", symbol) % 160)


def _revenue(text: str | None) -> tuple[float | None, int | None]:
    match = re.search(r"([\d.,]+)\s*(trillion|billion|million)", text or "", re.I)
    if not match:
        return None, None
    try:
        amount = float(match.group(1).replace(",", ""))
    except ValueError:
        return None, None
    scale = {"trillion": 1e12, "billion": 1e9, "million": 1e6}[match.group(2).lower()]
    year = re.search(r"\((?:\w+ )?(\d{4})\)", text or "")
    return amount * scale, int(year.group(1)) if year else None


def _employees(text: str | None, symbol: str) -> int:
    match = re.search(r"(\d[\d,]*)", text or "")
    if match:
        return int(match.group(1).replace(",", ""))
    return 2_000 + stable_int("employees", symbol) % 100_000


def _exchange(record: dict, nasdaq_100: set[str]) -> str:
    if record["symbol"] in nasdaq_100:
        return "NASDAQ"
    for listing in record.get("symbols") or []:
        prefix = (listing.get("google") or "").split(":")[0]
        if listing.get("currency") == "USD" and prefix in ("NYSE", "NASDAQ"):
            return prefix
    return "NYSE" if unit("exchange", record["symbol"]) < 0.6 else "NASDAQ"


def _ceo(text: str | None) -> str:
    return (text or "").split("(")[0].strip()


def _date_first_added(symbol: str) -> str:
    start = date(1957, 3, 4)
    return (start + timedelta(days=stable_int("added", symbol) % (date(2025, 6, 30) - start).days)).isoformat()


def _assign_ciks(issuers: list[str]) -> dict[str, str]:
    ciks: dict[str, str] = {}
    used: set[int] = set()
    for issuer in sorted(issuers):
        value = 1_000 + stable_int("cik", issuer) % 1_999_000
        while value in used:  # resolve the rare hash collision deterministically
            value += 1
        used.add(value)
        ciks[issuer] = f"{value:010d}"
    return ciks


@lru_cache(maxsize=1)
def companies() -> dict[str, Company]:
    """All 503 constituents keyed by FMP (dash-form) symbol, in index order."""
    from pytickersymbols import PyTickerSymbols

    tickers = PyTickerSymbols()
    records = list(tickers.get_stocks_by_index("S&P 500"))
    nasdaq_100 = {r["symbol"] for r in tickers.get_stocks_by_index("NASDAQ 100")}
    issuer_of = {r["symbol"]: SHARE_CLASS_ISSUER.get(r["symbol"], r["symbol"]) for r in records}
    ciks = _assign_ciks(sorted(set(issuer_of.values())))
    by_symbol = {r["symbol"]: r for r in records}
    result: dict[str, Company] = {}
    for record in records:
        symbol = record["symbol"]
        issuer = issuer_of[symbol]
        source = by_symbol.get(issuer, record)  # dual classes share the issuer's descriptive data
        meta = {k: str(v) for k, v in (source.get("metadata") or {}).items() if v is not None}
        industries = source.get("industries") or []
        sector = _sector(industries, issuer)
        revenue, revenue_year = _revenue(meta.get("revenue"))
        website = meta.get("website") or ""
        result[to_fmp_symbol(symbol)] = Company(
            symbol=symbol,
            fmp_symbol=to_fmp_symbol(symbol),
            issuer=issuer,
            name=source["name"],
            sector=sector,
            sub_sector=_sub_sector(industries, sector),
            headquarters=source.get("country") or "",
            founded=_founded(meta.get("founded"), issuer),
            cik=ciks[issuer],
            fiscal_year_end_month=FISCAL_YEAR_END_MONTH.get(issuer, 12),
            exchange=_exchange(record, nasdaq_100),
            isin=((record.get("isins") or [""])[0]) or "",
            website=f"https://{website.removeprefix('https://').removeprefix('http://')}" if website else "",
            ceo=_ceo(meta.get("key_people")),
            employees=_employees(meta.get("employees"), issuer),
            revenue_hint=revenue,
            revenue_hint_year=revenue_year,
            date_first_added=_date_first_added(symbol),
        )
    return result


def find(fmp_symbol: str) -> Company | None:
    return companies().get(fmp_symbol.strip().upper())
