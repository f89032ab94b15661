"""Synthetic daily OHLCV bars on the NYSE calendar, deterministic per symbol.

A bar never changes when the as-of date moves forward: advancing as-of only appends bars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np

from resources.offline_fmp.universe import Company, stable_int, unit

FIRST_YEAR = 2010


@lru_cache(maxsize=4)
def _sessions_through(year: int) -> np.ndarray:
    import exchange_calendars

    calendar = exchange_calendars.get_calendar("XNYS", start=f"{FIRST_YEAR}-01-01", end=f"{year}-12-31")
    return calendar.sessions.values.astype("datetime64[D]")


def sessions_between(start: date, end: date) -> np.ndarray:
    """NYSE trading days in [start, end] (both inclusive) as datetime64[D]."""
    days = _sessions_through(max(end.year, FIRST_YEAR))
    lo = np.searchsorted(days, np.datetime64(start), side="left")
    hi = np.searchsorted(days, np.datetime64(end), side="right")
    return days[lo:hi]


@dataclass(frozen=True)
class PriceParams:
    start_price: float
    annual_drift: float
    daily_vol: float
    reversion: float  # AR(1) coefficient of the log deviation from trend
    class_offset: float  # log premium of a second share class over its issuer's line
    turnover: float  # average daily volume as a fraction of shares outstanding
    shares: float


def price_params(company: Company, shares: float) -> PriceParams:
    issuer = company.issuer
    return PriceParams(
        start_price=math.exp(math.log(12) + unit("p0", issuer) * math.log(250 / 12)),
        annual_drift=0.03 + 0.09 * unit("drift", issuer),
        daily_vol=0.011 + 0.014 * unit("vol", issuer),
        reversion=0.995,
        class_offset=0.0 if company.symbol == issuer else (unit("class", company.symbol) - 0.5) * 0.1,
        turnover=0.004 + 0.01 * unit("turnover", issuer),
        shares=shares,
    )


@dataclass(frozen=True)
class Bars:
    dates: np.ndarray  # datetime64[D], ascending
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.dates)

    def through(self, as_of: date) -> "Bars":
        end = int(np.searchsorted(self.dates, np.datetime64(as_of), side="right"))
        return self.window(0, end)

    def window(self, start: int, end: int) -> "Bars":
        return Bars(*(getattr(self, f)[start:end] for f in ("dates", "open", "high", "low", "close", "volume")))

    def between(self, start: date, end: date) -> "Bars":
        lo = int(np.searchsorted(self.dates, np.datetime64(start), side="left"))
        hi = int(np.searchsorted(self.dates, np.datetime64(end), side="right"))
        return self.window(lo, max(lo, hi))


@lru_cache(maxsize=128)
def bars_through_year(company: Company, shares: float, year: int) -> Bars:
    """All bars from 2010 to the end of ``year``.

    Shocks come from one generator per issuer (shared by its share classes) drawn row by row, so
    the bars of earlier years are identical whatever ``year`` is.
    """
    p = price_params(company, shares)
    days = sessions_between(date(FIRST_YEAR, 1, 1), date(year, 12, 31))
    z = np.random.default_rng(stable_int("bars", company.issuer)).standard_normal((len(days), 5))

    deviation = np.empty(len(days))
    level = 0.0
    for i, shock in enumerate((p.daily_vol * z[:, 0]).tolist()):
        level = p.reversion * level + shock
        deviation[i] = level
    trend = np.log(p.start_price) + p.annual_drift * np.arange(len(days)) / 252
    log_close = trend + deviation
    if p.class_offset:
        class_noise = np.random.default_rng(stable_int("bars-class", company.symbol)).standard_normal(len(days))
        log_close = log_close + p.class_offset + 0.002 * class_noise
    close = np.exp(log_close)
    prev_close = np.concatenate(([close[0]], close[:-1]))
    open_ = prev_close * np.exp(0.3 * p.daily_vol * z[:, 1])
    high = np.maximum(open_, close) * np.exp(np.abs(0.5 * p.daily_vol * z[:, 2]))
    low = np.minimum(open_, close) * np.exp(-np.abs(0.5 * p.daily_vol * z[:, 3]))

    open_, high, low, close = (np.round(a, 2) for a in (open_, high, low, close))
    high = np.maximum.reduce([high, open_, close])
    low = np.maximum(np.minimum.reduce([low, open_, close]), 0.01)
    volume = np.maximum(1, np.round(p.shares * p.turnover * np.exp(0.35 * z[:, 4]))).astype(np.int64)
    return Bars(days, open_, high, low, close, volume)


def bars(company: Company, shares: float, as_of: date) -> Bars:
    if as_of.year < FIRST_YEAR:
        return bars_through_year(company, shares, FIRST_YEAR).window(0, 0)
    return bars_through_year(company, shares, as_of.year).through(as_of)
