"""Derived + analytics layers on the emulator, materialized through Dagster from a hand-made raw fixture.

Fixture (FMP_RAW created here via bulk_load, per the raw-table contract):
  * AAA  - December fiscal year, eight calendar quarters 2022Q1..2023Q4 + FY2021..FY2023; one quarter with
           interest expense 0 (interest coverage must be NULL);
  * BBB  - June fiscal year, fiscal FY2023 Q2 (2022-12-31) missing; cost of revenue 0 (bank-like: gross margin
           masked); one loss quarter (ROIC tax rate 0);
  * FOXA / FOX - a dual share class on a 52/53-week September fiscal year (quarter ends such as 2023-04-01);
           statements under FOXA, prices per ticker;
  * ZZZ  - prices only, not an index member (must not enter the equal-weighted market return).
Expected values are computed below in plain Python from the fixture numbers (FinanceToolkit's formulas as in
FMP_SPEC §8 / docs/financial_ratios.md), never by the SQL under test.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from dateutil.relativedelta import relativedelta

from resources.warehouse import bulk_load

UNIVERSE = [  # ticker, statement symbol, member
    ("AAA", "AAA", True),
    ("BBB", "BBB", True),
    ("FOXA", "FOXA", True),
    ("FOX", "FOXA", True),
    ("ZZZ", "ZZZ", False),
]
TICKERS = ["AAA", "BBB", "FOXA", "FOX"]  # the partitions the derived assets run for
PRICE_START, PRICE_END = date(2021, 6, 1), date(2024, 7, 31)

INCOME_COLS = [
    "REVENUE", "COST_OF_REVENUE", "GROSS_PROFIT", "RESEARCH_AND_DEVELOPMENT_EXPENSES",
    "SELLING_GENERAL_AND_ADMINISTRATIVE_EXPENSES", "OPERATING_EXPENSES", "INTEREST_INCOME", "INTEREST_EXPENSE",
    "DEPRECIATION_AND_AMORTIZATION", "EBITDA", "EBIT", "OPERATING_INCOME", "INCOME_BEFORE_TAX",
    "INCOME_TAX_EXPENSE", "NET_INCOME", "BOTTOM_LINE_NET_INCOME", "EPS", "EPS_DILUTED",
    "WEIGHTED_AVERAGE_SHS_OUT", "WEIGHTED_AVERAGE_SHS_OUT_DIL",
]
BALANCE_COLS = [
    "CASH_AND_CASH_EQUIVALENTS", "SHORT_TERM_INVESTMENTS", "ACCOUNTS_RECEIVABLES", "NET_RECEIVABLES", "INVENTORY",
    "TOTAL_CURRENT_ASSETS", "PROPERTY_PLANT_EQUIPMENT_NET", "GOODWILL_AND_INTANGIBLE_ASSETS", "TOTAL_ASSETS",
    "ACCOUNT_PAYABLES", "SHORT_TERM_DEBT", "TOTAL_CURRENT_LIABILITIES", "LONG_TERM_DEBT", "TOTAL_LIABILITIES",
    "PREFERRED_STOCK", "TOTAL_STOCKHOLDERS_EQUITY", "TOTAL_EQUITY", "MINORITY_INTEREST", "TOTAL_DEBT", "NET_DEBT",
]
CASH_COLS = [
    "NET_INCOME", "OPERATING_CASH_FLOW", "CAPITAL_EXPENDITURE", "FREE_CASH_FLOW", "DEPRECIATION_AND_AMORTIZATION",
    "STOCK_BASED_COMPENSATION", "COMMON_DIVIDENDS_PAID", "NET_DIVIDENDS_PAID", "PREFERRED_DIVIDENDS_PAID",
    "COMMON_STOCK_REPURCHASED", "INCOME_TAXES_PAID", "INTEREST_PAID",
]
HEADER_DDL = (
    "SYMBOL VARCHAR, PERIOD_END_DATE DATE, PERIOD VARCHAR, FISCAL_YEAR INT, REPORTED_CURRENCY VARCHAR, "
    "CIK VARCHAR, FILING_DATE DATE, ACCEPTED_DATE TIMESTAMP_NTZ"
)


# ---------------------------------------------------------------- fixture numbers


def _periods() -> dict[str, list[tuple[date, str, int]]]:
    """(period end, period, fiscal year) per statement symbol."""
    aaa = [(date(2021, 12, 31), "FY", 2021), (date(2022, 12, 31), "FY", 2022), (date(2023, 12, 31), "FY", 2023)]
    for year in (2022, 2023):
        for q, (m, d) in enumerate([(3, 31), (6, 30), (9, 30), (12, 31)], start=1):
            aaa.append((date(year, m, d), f"Q{q}", year))
    bbb = [(date(2022, 6, 30), "FY", 2022), (date(2023, 6, 30), "FY", 2023), (date(2024, 6, 30), "FY", 2024)]
    for fy in (2022, 2023, 2024):
        for q, (dy, m, d) in enumerate([(-1, 9, 30), (-1, 12, 31), (0, 3, 31), (0, 6, 30)], start=1):
            if (fy, q) == (2023, 2):  # the missing quarter
                continue
            bbb.append((date(fy + dy, m, d), f"Q{q}", fy))
    foxa = [(date(2022, 10, 1), "FY", 2022), (date(2023, 9, 30), "FY", 2023)]
    foxa += [
        (date(2022, 12, 31), "Q1", 2023), (date(2023, 4, 1), "Q2", 2023), (date(2023, 7, 1), "Q3", 2023),
        (date(2023, 9, 30), "Q4", 2023), (date(2023, 12, 30), "Q1", 2024), (date(2024, 3, 30), "Q2", 2024),
    ]
    return {"AAA": aaa, "BBB": bbb, "FOXA": foxa}


def _values(symbol: str, k: int, period: str, end: date) -> dict[str, float]:
    """Deterministic statement values; annual rows are four times larger (not the sum of the quarters)."""
    m = {"AAA": 1.0, "BBB": 2.5, "FOXA": 0.7}[symbol] * (4 if period == "FY" else 1)
    rev = (1000 + 37 * k) * m
    cogs = 0.0 if symbol == "BBB" else round(0.6 * rev, 2)
    op_inc = 0.2 * rev + k
    if symbol == "BBB" and end == date(2023, 12, 31):
        op_inc = -150.0  # a loss quarter: EBT <= 0 -> ROIC tax rate 0
    interest = 0.0 if (symbol == "AAA" and end == date(2023, 6, 30)) else 10.0 + k
    ebt = op_inc - interest
    tax = round(0.21 * ebt, 4)
    ni = ebt - tax
    shares = 100.0 - 0.5 * k
    shares_dil = shares + 2
    da_is, da_cf = 30.0 + k, 31.0 + k
    cash, sti, ar = 300.0 + 5 * k, 50.0, 80.0 + k
    total_assets = (2000.0 + 20 * k) * (1 + 0.1 * (period == "FY"))
    minority, pref = 25.0, (10.0 if symbol == "AAA" else 0.0)
    total_liab = 1200.0 + 10 * k
    tse = total_assets - total_liab - minority
    total_debt = 550.0 + k
    ocf = ni + 40
    capex = -(50.0 + 2 * k)
    div = -(20.0 + k)
    return {
        "REVENUE": rev, "COST_OF_REVENUE": cogs, "GROSS_PROFIT": rev - cogs, "RESEARCH_AND_DEVELOPMENT_EXPENSES": 7.0,
        "SELLING_GENERAL_AND_ADMINISTRATIVE_EXPENSES": 11.0, "OPERATING_EXPENSES": 18.0, "INTEREST_INCOME": 3.0,
        "INTEREST_EXPENSE": interest, "DEPRECIATION_AND_AMORTIZATION": da_is, "EBITDA": op_inc + da_is,
        "EBIT": op_inc, "OPERATING_INCOME": op_inc, "INCOME_BEFORE_TAX": ebt, "INCOME_TAX_EXPENSE": tax,
        "NET_INCOME": ni, "BOTTOM_LINE_NET_INCOME": ni - 1, "EPS": ni / shares, "EPS_DILUTED": ni / shares_dil,
        "WEIGHTED_AVERAGE_SHS_OUT": shares, "WEIGHTED_AVERAGE_SHS_OUT_DIL": shares_dil,
        "CASH_AND_CASH_EQUIVALENTS": cash, "SHORT_TERM_INVESTMENTS": sti, "ACCOUNTS_RECEIVABLES": ar,
        "NET_RECEIVABLES": ar + 10, "INVENTORY": 60.0, "TOTAL_CURRENT_ASSETS": cash + sti + ar + 70,
        "PROPERTY_PLANT_EQUIPMENT_NET": 700.0, "GOODWILL_AND_INTANGIBLE_ASSETS": 120.0, "TOTAL_ASSETS": total_assets,
        "ACCOUNT_PAYABLES": 90.0, "SHORT_TERM_DEBT": 50.0, "TOTAL_CURRENT_LIABILITIES": 400.0 + 3 * k,
        "LONG_TERM_DEBT": 500.0 + k, "TOTAL_LIABILITIES": total_liab, "PREFERRED_STOCK": pref,
        "TOTAL_STOCKHOLDERS_EQUITY": tse, "TOTAL_EQUITY": tse + minority, "MINORITY_INTEREST": minority,
        "TOTAL_DEBT": total_debt, "NET_DEBT": total_debt - cash,
        "CF_NET_INCOME": ni, "OPERATING_CASH_FLOW": ocf, "CAPITAL_EXPENDITURE": capex, "FREE_CASH_FLOW": ocf + capex,
        "CF_DEPRECIATION_AND_AMORTIZATION": da_cf, "STOCK_BASED_COMPENSATION": 5.0, "COMMON_DIVIDENDS_PAID": div,
        "NET_DIVIDENDS_PAID": div, "PREFERRED_DIVIDENDS_PAID": 0.0, "COMMON_STOCK_REPURCHASED": -12.0,
        "INCOME_TAXES_PAID": 9.0, "INTEREST_PAID": 8.0,
    }


def build_statements() -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for symbol, periods in _periods().items():
        out = []
        for k, (end, period, fy) in enumerate(sorted(periods, key=lambda p: (p[0], p[1]))):
            out.append({"SYMBOL": symbol, "PERIOD_END_DATE": end, "PERIOD": period, "FISCAL_YEAR": fy,
                        **_values(symbol, k, period, end)})
        rows[symbol] = out
    return rows


def build_prices() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    days = pd.bdate_range(PRICE_START, PRICE_END)
    days = days[days != pd.Timestamp("2022-12-30")]  # a holiday: the 2022-12-31 period end uses 2022-12-29
    frames = []
    for i, ticker in enumerate(["AAA", "BBB", "FOXA", "FOX", "ZZZ"]):
        base = {"FOX": 0.97}.get(ticker, 1.0) * (20 + 15 * i)
        drift = rng.normal(0.0003, 0.015, len(days))
        if ticker == "FOX":  # the B class tracks the A class closely but not exactly
            drift = frames[2]["_drift"].to_numpy() + rng.normal(0, 0.002, len(days))
        close = base * np.exp(np.cumsum(drift))
        spread = np.abs(rng.normal(0.01, 0.004, len(days))) * close
        frames.append(pd.DataFrame({
            "SYMBOL": ticker, "DATE": days.date, "OPEN": close * 0.998, "HIGH": close + spread,
            "LOW": close - spread, "CLOSE": close, "VOLUME": rng.integers(1_000, 90_000, len(days)).astype("int64"),
            "_drift": drift,
        }))
    prices = pd.concat(frames, ignore_index=True).drop(columns="_drift")
    prices["CHANGE"] = prices["CLOSE"] - prices["OPEN"]
    prices["CHANGE_PERCENT"] = 100 * prices["CHANGE"] / prices["OPEN"]
    prices["VWAP"] = (prices["OPEN"] + prices["HIGH"] + prices["LOW"] + prices["CLOSE"]) / 4
    return prices


# ---------------------------------------------------------------- raw tables (the contract) + load


def create_raw_tables(cur) -> None:
    cur.execute("CREATE SCHEMA IF NOT EXISTS FMP_RAW")
    cur.execute(
        "CREATE OR REPLACE TABLE FMP_RAW.UNIVERSE (SYMBOL VARCHAR, FMP_SYMBOL VARCHAR, COMPANY_NAME VARCHAR, "
        "SECTOR VARCHAR, SUB_SECTOR VARCHAR, CIK VARCHAR, STATEMENT_SYMBOL VARCHAR, IS_MEMBER BOOLEAN, "
        "SOURCE VARCHAR, UPDATED_AT TIMESTAMP_NTZ)"
    )
    cur.execute(
        "CREATE OR REPLACE TABLE FMP_RAW.COMPANY_PROFILES (SYMBOL VARCHAR, COMPANY_NAME VARCHAR, CIK VARCHAR, "
        "SECTOR VARCHAR, INDUSTRY VARCHAR, EXCHANGE VARCHAR, CURRENCY VARCHAR, COUNTRY VARCHAR, IPO_DATE DATE, "
        "BETA FLOAT, PRICE FLOAT, MARKET_CAP FLOAT, LAST_DIVIDEND FLOAT, AVERAGE_VOLUME FLOAT, "
        "IS_ACTIVELY_TRADING BOOLEAN, PAYLOAD VARIANT, FETCHED_AT TIMESTAMP_NTZ)"
    )
    cur.execute(
        "CREATE OR REPLACE TABLE FMP_RAW.DAILY_PRICES (SYMBOL VARCHAR, DATE DATE, OPEN FLOAT, HIGH FLOAT, "
        "LOW FLOAT, CLOSE FLOAT, VOLUME NUMBER(38,0), CHANGE FLOAT, CHANGE_PERCENT FLOAT, VWAP FLOAT, "
        "PAYLOAD VARIANT, LOADED_AT TIMESTAMP_NTZ)"
    )
    for table, cols in (("INCOME_STATEMENTS", INCOME_COLS), ("BALANCE_SHEETS", BALANCE_COLS),
                        ("CASH_FLOW_STATEMENTS", CASH_COLS)):
        floats = ", ".join(f"{c} FLOAT" for c in cols)
        cur.execute(f"CREATE OR REPLACE TABLE FMP_RAW.{table} ({HEADER_DDL}, {floats}, PAYLOAD VARIANT, "
                    "FETCHED_AT TIMESTAMP_NTZ)")


def _statement_frame(statements, cols, rename=None) -> pd.DataFrame:
    rename = rename or {}
    records = []
    for rows in statements.values():
        for row in rows:
            rec = {k: row[k] for k in ("SYMBOL", "PERIOD_END_DATE", "PERIOD", "FISCAL_YEAR")}
            rec.update({"REPORTED_CURRENCY": "USD", "CIK": "0000000001",
                        "FILING_DATE": row["PERIOD_END_DATE"] + timedelta(days=30),
                        "FETCHED_AT": datetime(2024, 8, 1)})
            rec.update({c: float(row[rename.get(c, c)]) for c in cols})
            records.append(rec)
    return pd.DataFrame(records)


def load_fixture(cur, statements, prices) -> None:
    create_raw_tables(cur)
    universe = pd.DataFrame([
        {"SYMBOL": t, "FMP_SYMBOL": t, "COMPANY_NAME": f"{s} Corp", "SECTOR": "Industrials", "SUB_SECTOR": "Misc",
         "CIK": "0000000001", "STATEMENT_SYMBOL": s, "IS_MEMBER": member, "SOURCE": "fixture",
         "UPDATED_AT": datetime(2024, 8, 1)} for t, s, member in UNIVERSE
    ])
    bulk_load(cur, "FMP_RAW.UNIVERSE", universe)
    profiles = pd.DataFrame([
        {"SYMBOL": t, "COMPANY_NAME": f"{s} Corp", "CIK": "0000000001", "SECTOR": "Industrials",
         "INDUSTRY": "Conglomerates", "EXCHANGE": "NYSE", "CURRENCY": "USD", "COUNTRY": "US",
         "IPO_DATE": date(1999, 1, 4), "BETA": 1.1, "PRICE": 10.0, "MARKET_CAP": 123456.0, "LAST_DIVIDEND": 0.5,
         "AVERAGE_VOLUME": 1000.0, "IS_ACTIVELY_TRADING": True, "FETCHED_AT": datetime(2024, 8, 1)}
        for t, s, _ in UNIVERSE
    ])
    bulk_load(cur, "FMP_RAW.COMPANY_PROFILES", profiles)
    bulk_load(cur, "FMP_RAW.DAILY_PRICES", prices.assign(LOADED_AT=datetime(2024, 8, 1)))
    income = _statement_frame(statements, INCOME_COLS)
    # bad input: an older, mislabelled duplicate of AAA's 2023-06-30 quarter (same period end, label Q3);
    # the latest filing per period end wins, so it must change nothing
    dup = income[(income.SYMBOL == "AAA") & (income.PERIOD_END_DATE == date(2023, 6, 30))].copy()
    dup["PERIOD"], dup["FILING_DATE"], dup["REVENUE"] = "Q3", date(2023, 7, 1), 999999.0
    bulk_load(cur, "FMP_RAW.INCOME_STATEMENTS", pd.concat([income, dup], ignore_index=True))
    bulk_load(cur, "FMP_RAW.BALANCE_SHEETS", _statement_frame(statements, BALANCE_COLS))
    bulk_load(cur, "FMP_RAW.CASH_FLOW_STATEMENTS", _statement_frame(
        statements, CASH_COLS,
        {"NET_INCOME": "CF_NET_INCOME", "DEPRECIATION_AND_AMORTIZATION": "CF_DEPRECIATION_AND_AMORTIZATION"}))


# ---------------------------------------------------------------- expected values, by hand


def div(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def expected_ttm(statements) -> dict[tuple[str, date], dict]:
    """TTM per (statement symbol, quarter end), straight from the rule in the issue."""
    out = {}
    flows = ["REVENUE", "COST_OF_REVENUE", "OPERATING_INCOME", "INCOME_BEFORE_TAX", "INCOME_TAX_EXPENSE",
             "BOTTOM_LINE_NET_INCOME", "NET_INCOME", "INTEREST_EXPENSE", "EPS", "CF_DEPRECIATION_AND_AMORTIZATION",
             "DEPRECIATION_AND_AMORTIZATION", "OPERATING_CASH_FLOW", "FREE_CASH_FLOW", "NET_DIVIDENDS_PAID",
             "CAPITAL_EXPENDITURE"]
    for symbol, rows in statements.items():
        quarters = sorted((r for r in rows if r["PERIOD"] != "FY"), key=lambda r: r["PERIOD_END_DATE"])
        for i, row in enumerate(quarters):
            window = quarters[max(0, i - 3): i + 1]
            end = row["PERIOD_END_DATE"]
            span = (end - (window[0]["PERIOD_END_DATE"] - relativedelta(months=3))).days
            valid = len(window) == 4 and len({w["PERIOD"] for w in window}) == 4 and 330 <= span <= 380
            rec = {"IS_TTM_VALID": valid}
            for f in flows:
                rec[f] = sum(w[f] for w in window) if valid else None
            for f in ("WEIGHTED_AVERAGE_SHS_OUT_DIL", "TOTAL_ASSETS", "TOTAL_EQUITY", "TOTAL_DEBT",
                      "TOTAL_CURRENT_ASSETS", "CASH_AND_CASH_EQUIVALENTS"):
                rec[f] = row[f]
            for f in ("TOTAL_ASSETS", "TOTAL_EQUITY", "TOTAL_DEBT"):
                rec[f"AVG_{f}"] = sum(w[f] for w in window) / 4 if valid else None
            out[(symbol, end)] = rec
    return out


def close_on_or_before(prices: pd.DataFrame, ticker: str, end: date):
    for back in range(0, 11):
        day = end - timedelta(days=back)
        hit = prices[(prices.SYMBOL == ticker) & (prices.DATE == day)]
        if len(hit):
            return float(hit.CLOSE.iloc[0])
    return None


def expected_ratios(statements, prices) -> dict[tuple[str, str, date], dict]:
    ttm = expected_ttm(statements)
    out = {}
    for ticker, symbol, _ in UNIVERSE:
        if ticker not in TICKERS:
            continue
        rows = statements[symbol]
        for basis in ("ANNUAL", "QUARTERLY", "TTM"):
            if basis == "ANNUAL":
                series = sorted((r for r in rows if r["PERIOD"] == "FY"), key=lambda r: r["PERIOD_END_DATE"])
            else:
                series = sorted((r for r in rows if r["PERIOD"] != "FY"), key=lambda r: r["PERIOD_END_DATE"])
            for i, row in enumerate(series):
                end = row["PERIOD_END_DATE"]
                prev = series[i - 1] if i > 0 else None
                if basis == "TTM":
                    t = ttm[(symbol, end)]
                    f = {k: t[k] for k in ("REVENUE", "COST_OF_REVENUE", "OPERATING_INCOME", "INCOME_BEFORE_TAX",
                                           "INCOME_TAX_EXPENSE", "BOTTOM_LINE_NET_INCOME", "INTEREST_EXPENSE",
                                           "CF_DEPRECIATION_AND_AMORTIZATION", "FREE_CASH_FLOW",
                                           "NET_DIVIDENDS_PAID")}
                    den_ta, den_te, den_td = t["AVG_TOTAL_ASSETS"], t["AVG_TOTAL_EQUITY"], t["AVG_TOTAL_DEBT"]
                else:
                    f = dict(row)
                    gap = (end - prev["PERIOD_END_DATE"]).days if prev else None
                    adjacent = gap is not None and ((330 <= gap <= 380) if basis == "ANNUAL" else (70 <= gap <= 110))
                    den_ta = (row["TOTAL_ASSETS"] + prev["TOTAL_ASSETS"]) / 2 if adjacent else None
                    den_te = (row["TOTAL_EQUITY"] + prev["TOTAL_EQUITY"]) / 2 if adjacent else None
                    den_td = (row["TOTAL_DEBT"] + prev["TOTAL_DEBT"]) / 2 if adjacent else None
                # valuation flows: own on ANNUAL/TTM, trailing four quarters on QUARTERLY (FinanceToolkit)
                v = ttm[(symbol, end)] if basis == "QUARTERLY" else f
                v_rev, v_ni = v["REVENUE"], v["BOTTOM_LINE_NET_INCOME"]
                v_ebitda = (None if v["OPERATING_INCOME"] is None
                            else v["OPERATING_INCOME"] + v["CF_DEPRECIATION_AND_AMORTIZATION"])
                v_fcf, v_div = v["FREE_CASH_FLOW"], v["NET_DIVIDENDS_PAID"]
                shares = row["WEIGHTED_AVERAGE_SHS_OUT_DIL"]
                close = close_on_or_before(prices, ticker, end)
                mcap = close * shares if close is not None else None
                ev = (None if mcap is None else mcap + row["TOTAL_DEBT"] + row["MINORITY_INTEREST"]
                      + row["PREFERRED_STOCK"] - (row["CASH_AND_CASH_EQUIVALENTS"] + row["SHORT_TERM_INVESTMENTS"]))
                ni, rev = f["BOTTOM_LINE_NET_INCOME"], f["REVENUE"]
                oi = f["OPERATING_INCOME"]
                ebt, tax = f["INCOME_BEFORE_TAX"], f["INCOME_TAX_EXPENSE"]
                if ebt is None:
                    t_rate = None
                elif ebt <= 0:
                    t_rate = 0.0
                else:
                    t_rate = min(1.0, max(0.0, tax / ebt))
                nopat = None if (oi is None or t_rate is None) else oi * (1 - t_rate)
                eps = div(v_ni, shares)
                bvps = div(row["TOTAL_STOCKHOLDERS_EQUITY"] - row["PREFERRED_STOCK"], shares)
                ebitda = None if oi is None else oi + f["CF_DEPRECIATION_AND_AMORTIZATION"]
                cogs = f["COST_OF_REVENUE"]
                out[(ticker, basis, end)] = {
                    "GROSS_MARGIN": None if (cogs is None or cogs == 0) else div(rev - cogs, rev),
                    "OPERATING_MARGIN": div(oi, rev),
                    "NET_PROFIT_MARGIN": div(ni, rev),
                    "EBITDA_MARGIN": div(ebitda, rev),
                    "RETURN_ON_ASSETS": div(ni, den_ta),
                    "RETURN_ON_EQUITY": div(ni, den_te),
                    "RETURN_ON_INVESTED_CAPITAL": div(nopat, None if den_te is None else den_te + den_td),
                    "CURRENT_RATIO": div(row["TOTAL_CURRENT_ASSETS"], row["TOTAL_CURRENT_LIABILITIES"]),
                    "QUICK_RATIO": div(row["CASH_AND_CASH_EQUIVALENTS"] + row["SHORT_TERM_INVESTMENTS"]
                                       + row["ACCOUNTS_RECEIVABLES"], row["TOTAL_CURRENT_LIABILITIES"]),
                    "DEBT_TO_EQUITY": div(row["TOTAL_DEBT"], row["TOTAL_EQUITY"]),
                    "INTEREST_COVERAGE": div(oi, f["INTEREST_EXPENSE"]),
                    "ASSET_TURNOVER": div(rev, den_ta),
                    "PRICE_TO_EARNINGS": div(close, eps),
                    "PRICE_TO_BOOK": div(close, bvps),
                    "PRICE_TO_SALES": div(mcap, v_rev),
                    "EV_TO_EBITDA": div(ev, v_ebitda),
                    "EV_TO_SALES": div(ev, v_rev),
                    "DIVIDEND_YIELD": div(div(abs(v_div), shares) if v_div is not None else None, close),
                    "FREE_CASH_FLOW_YIELD": div(v_fcf, mcap),
                    "PAYOUT_RATIO": div(abs(f["NET_DIVIDENDS_PAID"]) if f["NET_DIVIDENDS_PAID"] is not None
                                        else None, ni),
                    "CLOSE": close, "MARKET_CAP": mcap, "ENTERPRISE_VALUE": ev,
                }
    return out


def expected_market_metrics(prices: pd.DataFrame) -> dict[str, dict]:
    members = [t for t, _, m in UNIVERSE if m]
    wide = prices.pivot(index="DATE", columns="SYMBOL", values="CLOSE").sort_index()
    rets = wide / wide.shift(1) - 1
    market = rets[members].mean(axis=1, skipna=True)
    out = {}
    for ticker in TICKERS:
        p = prices[prices.SYMBOL == ticker].sort_values("DATE")
        close = p.CLOSE.to_numpy()
        r = close[1:] / close[:-1] - 1
        m = market.loc[p.DATE.to_numpy()[1:]].to_numpy()[-252:]
        rr = r[-252:]
        out[ticker] = {
            "AS_OF_DATE": p.DATE.iloc[-1],
            "CLOSE": close[-1],
            "RETURN_1M": close[-1] / close[-22] - 1,
            "RETURN_3M": close[-1] / close[-64] - 1,
            "RETURN_1Y": close[-1] / close[-253] - 1,
            "VOLATILITY_30D": np.std(r[-30:], ddof=1) * math.sqrt(252),
            "VOLATILITY_1Y": np.std(r[-252:], ddof=1) * math.sqrt(252),
            "HIGH_52W": p.HIGH.to_numpy()[-252:].max(),
            "LOW_52W": p.LOW.to_numpy()[-252:].min(),
            "AVERAGE_VOLUME_30D": p.VOLUME.to_numpy()[-30:].mean(),
            "AVERAGE_VOLUME_3M": p.VOLUME.to_numpy()[-63:].mean(),
            "BETA": np.cov(rr, m, ddof=1)[0, 1] / np.var(m, ddof=1),
        }
    return out


# ---------------------------------------------------------------- the run


def _rows(cur, sql: str) -> list[dict]:
    cur.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _run_all(instance, warehouse, partition_keys: list[str], with_dim_date: bool = True):
    from dagster import materialize

    from financial_assets.derived import derived_asset_checks, derived_assets
    from financial_assets.derived.assets import DIM_DATE_KEY

    partitioned = [a for a in derived_assets if DIM_DATE_KEY not in a.keys]
    checks = [c for c in derived_asset_checks if all(k.asset_key != DIM_DATE_KEY for k in c.check_keys)]
    if len(partition_keys) == 1:
        kwargs = {"partition_key": partition_keys[0]}
    else:
        kwargs = {"tags": {"dagster/asset_partition_range_start": partition_keys[0],
                           "dagster/asset_partition_range_end": partition_keys[-1]}}
    result = materialize([*partitioned, *checks], instance=instance, resources={"warehouse": warehouse},
                         raise_on_error=False, **kwargs)
    if not with_dim_date:
        return result, None
    # DIM_DATE is unpartitioned: its own run
    dim_date = [a for a in derived_assets if DIM_DATE_KEY in a.keys]
    dim_checks = [c for c in derived_asset_checks if any(k.asset_key == DIM_DATE_KEY for k in c.check_keys)]
    result_dates = materialize([*dim_date, *dim_checks], instance=instance, resources={"warehouse": warehouse})
    return result, result_dates


@pytest.fixture(scope="module")
def warehouse():
    """A database of its own on the session's emulator: other test modules' FMP_RAW tables stay untouched."""
    from resources.warehouse import Warehouse

    return Warehouse(account="emulator", user="emulator", password="emulator", database="FIN_DERIVED_TEST",
                     schema="PUBLIC", emulated=True)


@pytest.fixture(scope="module")
def derived(warehouse):
    from dagster import instance_for_test

    statements, prices = build_statements(), build_prices()
    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        load_fixture(cur, statements, prices)
        for schema in ("FMP_CORE", "ANALYTICS"):
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("sp500_symbols", [t for t, _, _ in UNIVERSE])
        result, result_dates = _run_all(instance, warehouse, TICKERS)
        yield {"statements": statements, "prices": prices, "result": result, "result_dates": result_dates,
               "instance": instance}


def test_materializes_every_asset_in_one_range_run_and_checks_pass(derived, warehouse):
    with warehouse.get_connection() as conn:
        assert conn.cursor().execute("SELECT CURRENT_DATABASE()").fetchone()[0] == "FIN_DERIVED_TEST"
    result = derived["result"]
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert derived["result_dates"].success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"fmp_core/ttm_financials", "fmp_core/financial_ratios", "fmp_core/market_metrics",
                            "analytics/dim_company", "analytics/fact_daily_prices", "analytics/fact_financials"}
    # one run for the whole range (single-run backfill policy), read through context.partition_keys
    ttm_meta = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                    if e.asset_key.to_user_string() == "fmp_core/ttm_financials")
    assert ttm_meta["symbols"].value == 4 and ttm_meta["statement_symbols"].value == 3
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(ev.passed for ev in evaluations), [
        (ev.asset_key, ev.check_name, ev.metadata) for ev in evaluations if not ev.passed]
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        assert {"rows_written", "seconds", "rows_per_second"} <= set(meta)
        assert meta["rows_written"].value > 0


def test_ttm_matches_hand_computed_values(derived, warehouse):
    expected = expected_ttm(derived["statements"])
    with warehouse.get_connection() as conn:
        rows = _rows(conn.cursor(), "SELECT * FROM FMP_CORE.TTM_FINANCIALS")
    got = {(r["SYMBOL"], r["AS_OF_PERIOD_END_DATE"]): r for r in rows}
    assert set(got) == set(expected)  # one row per (statement symbol, quarter end), FOX folded into FOXA
    for key, exp in expected.items():
        for col, value in exp.items():
            assert got[key][col] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value), (key, col)
    valid = {k for k, v in expected.items() if v["IS_TTM_VALID"]}
    # hand-checked anchor: AAA's 2023 quarters are fixture rows k = 6, 7, 8, 10 (k = 9 is FY2023), revenue
    # 1000 + 37k each -> 4 * 1000 + 37 * 31 = 5147
    assert got[("AAA", date(2023, 12, 31))]["REVENUE"] == pytest.approx(5147.0)
    # BBB: the missing FY2023 Q2 poisons the three windows that would span it; 52/53-week FOXA is fine
    assert ("BBB", date(2023, 3, 31)) not in valid and ("BBB", date(2023, 9, 30)) not in valid
    assert ("BBB", date(2023, 12, 31)) in valid and ("BBB", date(2022, 9, 30)) in valid
    assert ("FOXA", date(2023, 9, 30)) in valid and ("FOXA", date(2024, 3, 30)) in valid
    assert got[("BBB", date(2023, 6, 30))]["REVENUE"] is None
    assert got[("BBB", date(2023, 6, 30))]["TOTAL_ASSETS"] is not None  # balance = latest quarter regardless


def test_every_ratio_matches_hand_computed_values(derived, warehouse):
    expected = expected_ratios(derived["statements"], derived["prices"])
    with warehouse.get_connection() as conn:
        rows = _rows(conn.cursor(), "SELECT * FROM FMP_CORE.FINANCIAL_RATIOS")
    got = {(r["SYMBOL"], r["BASIS"], r["PERIOD_END_DATE"]): r for r in rows}
    assert set(got) == set(expected)
    non_null = dict.fromkeys(next(iter(expected.values())), 0)
    for key, exp in expected.items():
        for col, value in exp.items():
            if value is None:
                assert got[key][col] is None, (key, col, got[key][col])
            else:
                non_null[col] += 1
                assert got[key][col] == pytest.approx(value, rel=1e-9), (key, col)
    assert all(n > 0 for n in non_null.values()), non_null  # every ratio is exercised with a value
    # masking rules: bank-like BBB has no gross margin, AAA's zero-interest quarter has no coverage
    assert all(r["GROSS_MARGIN"] is None for r in rows if r["STATEMENT_SYMBOL"] == "BBB")
    assert got[("AAA", "QUARTERLY", date(2023, 6, 30))]["INTEREST_COVERAGE"] is None
    # dual class: same fundamentals, per-ticker price -> different P/E, same margins
    a, b = got[("FOXA", "ANNUAL", date(2023, 9, 30))], got[("FOX", "ANNUAL", date(2023, 9, 30))]
    assert a["NET_PROFIT_MARGIN"] == b["NET_PROFIT_MARGIN"] and a["PRICE_TO_EARNINGS"] != b["PRICE_TO_EARNINGS"]
    # the 2022-12-30 holiday: AAA's 2022-12-31 close is the 2022-12-29 close (period end is a Saturday)
    assert got[("AAA", "ANNUAL", date(2022, 12, 31))]["PRICE_DATE"] == date(2022, 12, 29)


def test_market_metrics_match_numpy(derived, warehouse):
    expected = expected_market_metrics(derived["prices"])
    with warehouse.get_connection() as conn:
        rows = _rows(conn.cursor(), "SELECT * FROM FMP_CORE.MARKET_METRICS")
    got = {r["SYMBOL"]: r for r in rows}
    assert set(got) == set(TICKERS)
    for ticker, exp in expected.items():
        for col, value in exp.items():
            if isinstance(value, date):
                assert got[ticker][col] == value
            else:
                assert got[ticker][col] == pytest.approx(float(value), rel=1e-7), (ticker, col)
    assert got["FOX"]["MARKET_CAP_SOURCE"] == "CLOSE_X_DILUTED_SHARES"


def test_analytics_tables(derived, warehouse):
    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        companies = {r["SYMBOL"]: r for r in _rows(cur, "SELECT * FROM ANALYTICS.DIM_COMPANY")}
        assert set(companies) == set(TICKERS) and companies["FOX"]["STATEMENT_SYMBOL"] == "FOXA"
        assert companies["AAA"]["MARKET_CAP"] is not None and companies["AAA"]["IS_MEMBER"] is True
        n_prices = len(derived["prices"][derived["prices"].SYMBOL.isin(TICKERS)])
        assert cur.execute("SELECT COUNT(*) FROM ANALYTICS.FACT_DAILY_PRICES").fetchone()[0] == n_prices
        n_statements = sum(len(rows) for rows in derived["statements"].values())
        n_quarters = sum(1 for rows in derived["statements"].values() for r in rows if r["PERIOD"] != "FY")
        assert cur.execute("SELECT COUNT(*) FROM ANALYTICS.FACT_FINANCIALS").fetchone()[0] == n_statements + n_quarters
        # FinanceToolkit calendarisation: AAPL-style 2023-04-01 quarter is calendar 2023Q1; June FY -> year - 1
        cal = {(r["SYMBOL"], r["BASIS"], r["PERIOD_END_DATE"]): r for r in _rows(
            cur, "SELECT SYMBOL, BASIS, PERIOD_END_DATE, CALENDAR_YEAR, CALENDAR_QUARTER_YEAR, CALENDAR_QUARTER "
                 "FROM ANALYTICS.FACT_FINANCIALS")}
        assert (cal[("FOXA", "QUARTERLY", date(2023, 4, 1))]["CALENDAR_QUARTER_YEAR"],
                cal[("FOXA", "QUARTERLY", date(2023, 4, 1))]["CALENDAR_QUARTER"]) == (2023, 1)
        assert cal[("BBB", "ANNUAL", date(2023, 6, 30))]["CALENDAR_YEAR"] == 2023
        assert cal[("FOXA", "ANNUAL", date(2023, 9, 30))]["CALENDAR_YEAR"] == 2023
        dates = _rows(cur, "SELECT COUNT(*) AS N, COUNT(DISTINCT DATE_KEY) AS K, COUNT_IF(IS_TRADING_DAY) AS T, "
                           "MIN(DATE) AS LO, MAX(DATE) AS HI FROM ANALYTICS.DIM_DATE")[0]
        assert dates == {"N": 13149, "K": 13149, "T": derived["prices"].DATE.nunique(),
                         "LO": date(2000, 1, 1), "HI": date(2035, 12, 31)}
        row = _rows(cur, "SELECT * FROM ANALYTICS.DIM_DATE WHERE DATE = '2024-02-29'")[0]
        assert (row["DATE_KEY"], row["DAY_OF_WEEK_ISO"], row["IS_MONTH_END"], row["IS_WEEKEND"]) == (
            20240229, 4, True, False)


def _counts(cur) -> dict[str, tuple[int, int]]:
    from financial_assets.derived.tables import ALL_TABLES

    out = {}
    for table in ALL_TABLES:
        keys = ", ".join(table.key)
        out[table.name] = cur.execute(
            f"SELECT COUNT(*), (SELECT COUNT(*) FROM (SELECT DISTINCT {keys} FROM {table.name})) FROM {table.name}"
        ).fetchone()
    return out


def test_rerun_is_idempotent_single_partition_and_range(derived, warehouse):
    with warehouse.get_connection() as conn:
        before = _counts(conn.cursor())
    assert all(total == distinct and total > 0 for total, distinct in before.values()), before
    # a single share-class partition recomputes its company's TTM (FOXA) and only its own ticker rows
    single, _ = _run_all(derived["instance"], warehouse, ["FOX"], with_dim_date=False)
    assert single.success
    ttm_meta = next(e.materialization.metadata for e in single.get_asset_materialization_events()
                    if e.asset_key.to_user_string() == "fmp_core/ttm_financials")
    assert ttm_meta["statement_symbols"].value == 1 and ttm_meta["symbols"].value == 1
    again, _ = _run_all(derived["instance"], warehouse, TICKERS)
    assert again.success
    with warehouse.get_connection() as conn:
        after = _counts(conn.cursor())
    assert after == before


def test_a_failure_inside_the_replace_leaves_the_previous_rows(derived, warehouse, monkeypatch):
    from financial_assets.derived import assets
    from financial_assets.derived.tables import FINANCIAL_RATIOS

    # the DELETE runs, then the INSERT fails: the transaction must restore every deleted row
    monkeypatch.setattr(assets, "render", lambda table, ticker_map=None: (
        f"INSERT INTO {table.name} (SYMBOL) SELECT NO_SUCH_COLUMN FROM FMP_RAW.UNIVERSE"))
    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        before = _counts(cur)[FINANCIAL_RATIOS.name]
        with pytest.raises(Exception, match="NO_SUCH_COLUMN"):
            assets.replace_rows(cur, FINANCIAL_RATIOS, {t: s for t, s, _ in UNIVERSE if t in TICKERS})
    with warehouse.get_connection() as conn:
        assert _counts(conn.cursor())[FINANCIAL_RATIOS.name] == before


def test_blocking_check_fails_on_a_corrupted_ttm_row(derived, warehouse):
    from financial_assets.derived.checks import TTM_FOUR_QUARTERS_SQL, key_check_sql
    from financial_assets.derived.tables import TTM_FINANCIALS

    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        cur.execute("BEGIN")
        # a TTM revenue on BBB's window across the missing quarter, and a duplicated key
        cur.execute("UPDATE FMP_CORE.TTM_FINANCIALS SET REVENUE = 1 WHERE SYMBOL = 'BBB' "
                    "AND AS_OF_PERIOD_END_DATE = '2023-06-30'")
        cur.execute("INSERT INTO FMP_CORE.TTM_FINANCIALS (SYMBOL, AS_OF_PERIOD_END_DATE) "
                    "VALUES ('AAA', '2023-12-31')")
        checked, broken = cur.execute(TTM_FOUR_QUARTERS_SQL).fetchone()
        nulls, dups, _ = cur.execute(key_check_sql(TTM_FINANCIALS)).fetchone()
        cur.execute("ROLLBACK")
    assert broken == 1 and dups == 1 and nulls == 0


def test_a_failing_blocking_check_stops_the_dependents(derived, warehouse, monkeypatch):
    from financial_assets.derived import checks

    monkeypatch.setattr(checks, "TTM_FOUR_QUARTERS_SQL", "SELECT 7, 1")  # the check now reports a bad row
    result, _ = _run_all(derived["instance"], warehouse, ["AAA"], with_dim_date=False)
    assert not result.success
    failed = [ev for ev in result.get_asset_check_evaluations() if not ev.passed]
    assert [(ev.asset_key.to_user_string(), ev.check_name) for ev in failed] == [
        ("fmp_core/ttm_financials", "ttm_only_from_four_quarters")]
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    # TTM itself was written; everything downstream of it was skipped; prices do not depend on TTM
    assert materialized == {"fmp_core/ttm_financials", "analytics/fact_daily_prices"}


def test_a_restated_quarter_flows_into_ttm_and_ratios_on_rerun(derived, warehouse):
    def read(cur):
        ttm = cur.execute("SELECT REVENUE FROM FMP_CORE.TTM_FINANCIALS WHERE SYMBOL = 'AAA' "
                          "AND AS_OF_PERIOD_END_DATE = '2023-12-31'").fetchone()[0]
        ps = cur.execute("SELECT PRICE_TO_SALES, MARKET_CAP FROM FMP_CORE.FINANCIAL_RATIOS WHERE SYMBOL = 'AAA' "
                         "AND BASIS = 'TTM' AND PERIOD_END_DATE = '2023-12-31'").fetchone()
        return ttm, ps

    with warehouse.get_connection() as conn:
        cur = conn.cursor()
        ttm_before, (ps_before, mcap) = read(cur)
        # the raw layer replaces a restated period in place (same key); +100 revenue on 2023Q3
        cur.execute("UPDATE FMP_RAW.INCOME_STATEMENTS SET REVENUE = REVENUE + 100 WHERE SYMBOL = 'AAA' "
                    "AND PERIOD_END_DATE = '2023-09-30' AND PERIOD = 'Q3'")
    try:
        result, _ = _run_all(derived["instance"], warehouse, ["AAA"], with_dim_date=False)
        assert result.success
        with warehouse.get_connection() as conn:
            ttm_after, (ps_after, _) = read(conn.cursor())
        assert ttm_after == pytest.approx(ttm_before + 100)
        assert ps_after == pytest.approx(mcap / (ttm_before + 100)) and ps_after != ps_before
    finally:
        with warehouse.get_connection() as conn:
            conn.cursor().execute("UPDATE FMP_RAW.INCOME_STATEMENTS SET REVENUE = REVENUE - 100 WHERE SYMBOL = 'AAA' "
                                  "AND PERIOD_END_DATE = '2023-09-30' AND PERIOD = 'Q3'")
        _run_all(derived["instance"], warehouse, ["AAA"], with_dim_date=False)
