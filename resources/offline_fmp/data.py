"""Response rows of the stable endpoints, in FMP's wire field order (see fields.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from resources import fmp_fields as fields
from resources.offline_fmp.fundamentals import Statements, issuer_profile, statements
from resources.offline_fmp.prices import Bars, bars
from resources.offline_fmp.universe import Company, companies, find, stable_int, unit

MAX_LIMIT = 1000
DEFAULT_LIMIT = 5
EOD_ROW_CAP = 5000  # FMP caps one price response at a fixed row count (FMP_SPEC §1.5)
DEFAULT_EOD_YEARS = 5  # FMP truncates history to about five years when `from` is omitted
STATEMENT_ENDPOINTS = {
    "income-statement": "income",
    "balance-sheet-statement": "balance",
    "cash-flow-statement": "cashflow",
}
QUARTER_PERIODS = {"Q1", "Q2", "Q3", "Q4"}
EXCHANGE_NAMES = {"NASDAQ": "NASDAQ Global Select", "NYSE": "New York Stock Exchange"}
NEW_YORK = ZoneInfo("America/New_York")


class BadRequest(ValueError):
    """A parameter FMP would reject with HTTP 400."""


def restatement_version(company: Company, restated: Mapping[str, int]) -> int:
    """Share classes are one company: restating either class restates the issuer."""
    versions = [v for s, v in restated.items() if (c := find(s)) is not None and c.issuer == company.issuer]
    return max(versions, default=0)


def company_statements(company: Company, as_of: date, restated: Mapping[str, int]) -> Statements:
    return statements(company, as_of, restatement_version(company, restated))


def company_bars(company: Company, as_of: date) -> Bars:
    return bars(company, issuer_profile(company).shares0, as_of)


def _price(value: float) -> float:
    return round(float(value), 2)


def _range_text(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


@lru_cache(maxsize=1024)
def _market(company: Company, as_of: date, restatement: int) -> dict | None:
    series = company_bars(company, as_of)
    if len(series) < 2:
        return None
    last, prev = len(series) - 1, len(series) - 2
    price = _price(series.close[last])
    previous_close = _price(series.close[prev])
    change = round(price - previous_close, 2)
    year = series.window(max(0, len(series) - 252), len(series))
    fundamentals = statements(company, as_of, restatement)
    dividends = sum(-row["commonDividendsPaid"] for row in fundamentals.quarter["cashflow"][:4])
    day = series.dates[last].astype(object)
    close_ts = datetime(day.year, day.month, day.day, 16, tzinfo=NEW_YORK)
    return {
        "price": price,
        "previousClose": previous_close,
        "change": change,
        "changePercentage": round(100 * change / previous_close, 5),
        "open": _price(series.open[last]),
        "dayHigh": _price(series.high[last]),
        "dayLow": _price(series.low[last]),
        "volume": int(series.volume[last]),
        "yearHigh": _price(year.high.max()),
        "yearLow": _price(year.low.min()),
        "priceAvg50": round(float(np.mean(series.close[-50:])), 4),
        "priceAvg200": round(float(np.mean(series.close[-200:])), 4),
        "averageVolume": int(np.mean(series.volume[-63:])),
        "marketCap": int(round(price * fundamentals.latest_shares)),
        "lastDividend": round(dividends / fundamentals.latest_shares, 2),
        "timestamp": int(close_ts.timestamp()),
    }


def _ipo_date(company: Company) -> str:
    start = date(1962, 1, 2)
    return (start + timedelta(days=stable_int("ipo", company.symbol) % (date(2009, 12, 31) - start).days)).isoformat()


def profile_rows(symbol: str, as_of: date, restated: Mapping[str, int]) -> list[dict]:
    company = find(symbol)
    if company is None:
        return []
    market = _market(company, as_of, restatement_version(company, restated))
    if market is None:
        return []
    city, _, state = company.headquarters.partition(",")
    values = {
        **market,
        "symbol": company.fmp_symbol,
        "beta": round(0.4 + 1.4 * unit("beta", company.issuer), 3),
        "range": f"{_range_text(market['yearLow'])}-{_range_text(market['yearHigh'])}",
        "companyName": company.name,
        "currency": "USD",
        "cik": company.cik,
        "isin": company.isin,
        "cusip": company.isin[2:11] if company.isin.startswith("US") else "",
        "exchangeFullName": EXCHANGE_NAMES[company.exchange],
        "exchange": company.exchange,
        "industry": company.sub_sector,
        "website": company.website,
        "description": (
            f"{company.name} is a {company.sub_sector} company in the {company.sector} sector, "
            f"headquartered in {company.headquarters}. Synthetic data from the offline FMP server."
        ),
        "ceo": company.ceo,
        "sector": company.sector,
        "country": "US",
        "fullTimeEmployees": str(company.employees),
        "phone": "",
        "address": "",
        "city": city.strip(),
        "state": state.strip(),
        "zip": "",
        "image": f"https://images.financialmodelingprep.com/symbol/{company.fmp_symbol}.png",
        "ipoDate": _ipo_date(company),
        "defaultImage": False,
        "isEtf": False,
        "isActivelyTrading": True,
        "isAdr": False,
        "isFund": False,
    }
    return [{name: values[name] for name in fields.PROFILE}]


def quote_rows(symbols: list[str], as_of: date, restated: Mapping[str, int]) -> list[dict]:
    rows = []
    for symbol in symbols:
        company = find(symbol)
        market = company and _market(company, as_of, restatement_version(company, restated))
        if market:
            values = {**market, "symbol": company.fmp_symbol, "name": company.name, "exchange": company.exchange}
            rows.append({name: values[name] for name in fields.QUOTE})
    return rows


def parse_day(text: str | None, name: str) -> date | None:
    if text in (None, ""):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"Invalid {name} date '{text}', expected YYYY-MM-DD") from None


def eod_rows(symbol: str, as_of: date, start: date | None, end: date | None) -> list[dict]:
    company = find(symbol)
    if company is None:
        return []
    end = min(end or as_of, as_of)
    start = start or end - timedelta(days=round(365.25 * DEFAULT_EOD_YEARS))
    window = company_bars(company, as_of).between(start, end)
    window = window.window(max(0, len(window) - EOD_ROW_CAP), len(window))
    rows = []
    for day, o, h, low, c, v in zip(
        window.dates.astype(str).tolist(), window.open.tolist(), window.high.tolist(), window.low.tolist(),
        window.close.tolist(), window.volume.tolist(),
    ):
        change = round(c - o, 2)
        rows.append({
            "symbol": company.fmp_symbol, "date": day, "open": o, "high": h, "low": low, "close": c, "volume": v,
            "change": change, "changePercent": round(100 * (c - o) / o, 5), "vwap": round((o + h + low + c) / 4, 4),
        })
    rows.reverse()
    return rows


def parse_limit(text: str | None) -> int:
    if text in (None, ""):
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise BadRequest(f"Invalid limit '{text}'") from None
    if limit < 0:
        raise BadRequest(f"Invalid limit '{text}'")
    return min(limit, MAX_LIMIT)


def statement_rows(
    kind: str,
    symbol: str,
    period: str | None,
    limit: int,
    as_of: date,
    restated: Mapping[str, int],
    duplicated: bool = False,
) -> list[dict]:
    period = period or "annual"
    if period not in {"annual", "FY", "quarter"} | QUARTER_PERIODS:
        raise BadRequest(f"Invalid period '{period}', expected annual, quarter, FY, Q1, Q2, Q3 or Q4")
    company = find(symbol)
    if company is None:
        return []
    data = company_statements(company, as_of, restated)
    if period in ("annual", "FY"):
        rows = list(data.annual[kind])
    else:
        rows = [r for r in data.quarter[kind] if period == "quarter" or r["period"] == period]
    if duplicated and rows:
        rows.insert(1, dict(rows[0]))
    return rows[:limit]


EARNINGS_MAX_DAYS = 90  # FMP serves at most a 90-day window per earnings-calendar call


def earnings_rows(start: date | None, end: date | None, as_of: date, restated: Mapping[str, int]) -> list[dict]:
    """Earnings reported in [start, end], newest first. Offline, a company reports on the day it
    files its 10-Q/10-K, so the calendar tells exactly which companies have new statements."""
    end = min(end or as_of, as_of)
    start = start or end - timedelta(days=7)
    if (end - start).days > EARNINGS_MAX_DAYS:
        raise BadRequest(f"The date range may span at most {EARNINGS_MAX_DAYS} days")
    rows = []
    for company in companies().values():
        for quarter in company_statements(company, as_of, restated).quarter["income"]:
            filed = date.fromisoformat(quarter["filingDate"])
            if start <= filed <= end:
                eps = quarter["eps"]
                surprise = 1 + (stable_int("surprise", company.issuer, quarter["date"]) % 21 - 10) / 100
                rows.append({
                    "symbol": company.fmp_symbol, "date": quarter["filingDate"],
                    "epsActual": eps, "epsEstimated": round(eps / surprise, 2),
                    "revenueActual": quarter["revenue"],
                    "revenueEstimated": round(quarter["revenue"] / surprise),
                    "lastUpdated": quarter["filingDate"],
                })
    rows.sort(key=lambda r: (r["date"], r["symbol"]), reverse=True)
    return rows


def constituent_rows() -> list[dict]:
    return [
        {
            "symbol": c.fmp_symbol, "name": c.name, "sector": c.sector, "subSector": c.sub_sector,
            "headQuarter": c.headquarters, "dateFirstAdded": c.date_first_added, "cik": c.cik,
            "founded": c.founded,
        }
        for c in companies().values()
    ]
