"""Synthetic, internally consistent quarterly financial statements per issuer.

The balance sheet is rolled forward from the cash-flow statement, so every accounting identity
holds exactly (all amounts are whole thousands, sums are integer): assets = liabilities +
equity, the cash roll-forward, FCF = OCF + capex, CF net income = IS net income, and fiscal-year
rows are the sum (flows) or the Q4 value (balances) of their four quarters.

Each quarter draws its shocks from a generator seeded by (issuer, fiscal year, quarter), so a
period's values do not depend on the as-of date; only visibility (filingDate <= as-of) does.
"""

from __future__ import annotations

import calendar
import math
import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from resources import fmp_fields as fields
from resources.offline_fmp.prices import price_params
from resources.offline_fmp.universe import Company, stable_int, unit

FIRST_FISCAL_YEAR = 2014


def _k(value: float) -> int:
    """Round to whole thousands, as filers report."""
    return int(round(value / 1000.0)) * 1000


@dataclass(frozen=True)
class IssuerProfile:
    quarterly_revenue0: float
    growth: float
    seasonality: tuple[float, float, float, float]
    gross_margin: float
    rnd_ratio: float
    sga_ratio: float
    ga_share: float
    da_ratio: float
    capex_ratio: float
    sbc_ratio: float
    tax_rate: float
    payout: float
    buyback_share: float
    leverage: float
    dso: float
    dio: float
    dpo: float
    shares0: float
    share_drift: float
    dilution: float


@lru_cache(maxsize=1024)
def issuer_profile(company: Company) -> IssuerProfile:
    key = company.issuer
    growth = 0.02 + 0.10 * unit("growth", key)
    if company.revenue_hint:
        years_back = (company.revenue_hint_year or 2025) - FIRST_FISCAL_YEAR
        annual0 = company.revenue_hint / (1 + growth) ** years_back
    else:
        annual0 = math.exp(math.log(1e9) + unit("size", key) * math.log(60))
    amplitude = 0.12 * unit("season", key)
    peak = stable_int("peak", key) % 4
    season = [1 + amplitude * math.cos(2 * math.pi * (q - peak) / 4) for q in range(4)]
    prices = price_params(company, 1.0)
    price_2014 = prices.start_price * math.exp(prices.annual_drift * 4)
    price_to_sales = 1.0 + 5.0 * unit("ps", key)
    da_ratio = 0.02 + 0.05 * unit("da", key)
    return IssuerProfile(
        quarterly_revenue0=annual0 / 4,
        growth=growth,
        seasonality=tuple(s / (sum(season) / 4) for s in season),
        gross_margin=0.2 + 0.5 * unit("gm", key),
        rnd_ratio=0.15 * unit("rnd", key) if company.sector in ("Information Technology", "Health Care") else 0.0,
        sga_ratio=0.06 + 0.14 * unit("sga", key),
        ga_share=0.3 + 0.4 * unit("ga", key),
        da_ratio=da_ratio,
        capex_ratio=da_ratio * (1.0 + 0.6 * unit("capex", key)),
        sbc_ratio=0.005 + 0.03 * unit("sbc", key),
        tax_rate=0.12 + 0.13 * unit("tax", key),
        payout=0.0 if unit("pays", key) < 0.2 else 0.15 + 0.5 * unit("payout", key),
        buyback_share=0.5 * unit("buyback", key),
        leverage=0.3 + 1.5 * unit("lev", key),
        dso=25 + 50 * unit("dso", key),
        dio=0 if company.sector in ("Financials", "Real Estate") else 10 + 80 * unit("dio", key),
        dpo=20 + 60 * unit("dpo", key),
        shares0=annual0 * price_to_sales / price_2014,
        share_drift=-0.03 + 0.05 * unit("shares", key),
        dilution=0.002 + 0.02 * unit("dil", key),
    )


@dataclass(frozen=True)
class FiscalQuarter:
    fiscal_year: int
    quarter: int
    end: date
    filing: date
    accepted: str


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _next_weekday(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def fiscal_quarter(issuer: str, fye_month: int, fiscal_year: int, quarter: int) -> FiscalQuarter:
    months_before_fye = 3 * (4 - quarter)
    index = fiscal_year * 12 + (fye_month - 1) - months_before_fye
    end = _month_end(index // 12, index % 12 + 1)
    lag_lo, lag_hi = (30, 60) if quarter == 4 else (25, 45)
    filing_key = (issuer, fiscal_year, quarter)
    # the weekend shift adds at most two days, keeping the lag within [lag_lo, lag_hi]
    lag = lag_lo + stable_int("lag", *filing_key) % (lag_hi - 2 - lag_lo + 1)
    filing = _next_weekday(end + timedelta(days=lag))
    clock = stable_int("time", *filing_key)
    accepted = f"{filing.isoformat()} {6 + clock % 14:02d}:{clock // 14 % 60:02d}:{clock // 840 % 60:02d}"
    return FiscalQuarter(fiscal_year, quarter, end, filing, accepted)


def filed_quarters(company: Company, as_of: date) -> list[FiscalQuarter]:
    """Fiscal quarters from FY2014 Q1 whose 10-Q/10-K was filed on or before ``as_of``, oldest first."""
    result = []
    fiscal_year, quarter = FIRST_FISCAL_YEAR, 1
    while True:
        period = fiscal_quarter(company.issuer, company.fiscal_year_end_month, fiscal_year, quarter)
        if period.filing > as_of:
            return result
        result.append(period)
        fiscal_year, quarter = (fiscal_year + 1, 1) if quarter == 4 else (fiscal_year, quarter + 1)


def _opening_balance(p: IssuerProfile) -> dict[str, int]:
    annual = 4 * p.quarterly_revenue0
    cogs = p.quarterly_revenue0 * (1 - p.gross_margin)
    b = {
        "cash": _k(0.12 * annual), "sti": _k(0.04 * annual), "lti": _k(0.08 * annual),
        "ar": _k(p.quarterly_revenue0 * p.dso / 91.25), "other_rec": _k(0.01 * annual),
        "inventory": _k(cogs * p.dio / 91.25), "prepaids": _k(0.01 * annual), "other_ca": _k(0.02 * annual),
        "ppe": _k(0.35 * annual), "goodwill": _k(0.15 * annual), "intangibles": _k(0.05 * annual),
        "tax_assets": _k(0.01 * annual), "other_nca": _k(0.03 * annual),
        "ap": _k(cogs * p.dpo / 91.25), "other_payables": _k(0.02 * annual), "accrued": _k(0.03 * annual),
        "std": _k(0.02 * annual * p.leverage), "clo_current": _k(0.005 * annual), "tax_payables": _k(0.01 * annual),
        "deferred_rev": _k(0.02 * annual), "other_cl": _k(0.02 * annual), "ltd": _k(0.3 * annual * p.leverage),
        "clo_noncurrent": _k(0.03 * annual), "deferred_rev_nc": _k(0.005 * annual), "dtl": _k(0.02 * annual),
        "other_ncl": _k(0.03 * annual),
        "treasury": 0, "preferred": 0, "common": _k(0.01 * annual), "apic": _k(0.15 * annual),
        "aoci": _k(-0.005 * annual), "other_equity": 0, "minority": _k(0.01 * annual * (p.leverage > 1)),
    }
    assets = sum(b[k] for k in _ASSETS)
    liabilities = sum(b[k] for k in _LIABILITIES)
    b["retained"] = assets - liabilities - sum(b[k] for k in _EQUITY if k != "retained")
    return b


_ASSETS = ("cash", "sti", "ar", "other_rec", "inventory", "prepaids", "other_ca", "ppe", "goodwill",
           "intangibles", "lti", "tax_assets", "other_nca")
_LIABILITIES = ("ap", "other_payables", "accrued", "std", "clo_current", "tax_payables", "deferred_rev",
                "other_cl", "ltd", "clo_noncurrent", "deferred_rev_nc", "dtl", "other_ncl")
_EQUITY = ("treasury", "preferred", "common", "retained", "apic", "aoci", "other_equity", "minority")


def _restatement_factor(issuer: str, version: int) -> float:
    if version <= 0:
        return 1.0
    sign = 1 if stable_int("restate-sign", issuer, version) % 2 else -1
    return 1 + sign * (0.01 + 0.04 * unit("restate", issuer, version))


def _quarter(p: IssuerProfile, t: int, period: FiscalQuarter, b: dict[str, int], issuer: str, factor: float):
    """Income statement and cash-flow values for one quarter; rolls balance ``b`` forward in place."""
    rng = random.Random(stable_int("quarter", issuer, period.fiscal_year, period.quarter))
    z = [rng.gauss(0.0, 1.0) for _ in range(10)]
    scale = (1 + p.growth) ** (t / 4)
    revenue = _k(p.quarterly_revenue0 * scale * p.seasonality[period.quarter - 1] * math.exp(0.04 * z[0]) * factor)
    cogs = _k(revenue * min(0.95, max(0.05, 1 - p.gross_margin + 0.01 * z[1])))
    rnd = _k(revenue * p.rnd_ratio * math.exp(0.05 * z[2]))
    sga = _k(revenue * p.sga_ratio * math.exp(0.05 * z[3]))
    ga = _k(sga * p.ga_share)
    opex = rnd + sga
    operating_income = revenue - cogs - opex
    da = _k(revenue * p.da_ratio * math.exp(0.05 * z[4]))
    interest_income = _k(max(b["cash"], 0) * 0.01 / 4)
    interest_expense = _k((b["std"] + b["ltd"]) * 0.045 / 4)
    non_operating = _k(revenue * 0.004 * z[5])
    total_other = interest_income - interest_expense + non_operating
    pretax = operating_income + total_other
    tax = _k(max(pretax, 0) * p.tax_rate)
    net_income = pretax - tax
    shares = int(round(p.shares0 * (1 + p.share_drift) ** (t / 4) * math.exp(0.002 * z[6])))
    diluted = int(round(shares * (1 + p.dilution)))
    income = {
        "revenue": revenue, "costOfRevenue": cogs, "grossProfit": revenue - cogs,
        "researchAndDevelopmentExpenses": rnd, "generalAndAdministrativeExpenses": ga,
        "sellingAndMarketingExpenses": sga - ga, "sellingGeneralAndAdministrativeExpenses": sga,
        "otherExpenses": 0, "operatingExpenses": opex, "costAndExpenses": cogs + opex,
        "netInterestIncome": interest_income - interest_expense, "interestIncome": interest_income,
        "interestExpense": interest_expense, "depreciationAndAmortization": da,
        "ebitda": operating_income + da, "ebit": operating_income,
        "nonOperatingIncomeExcludingInterest": non_operating, "operatingIncome": operating_income,
        "totalOtherIncomeExpensesNet": total_other, "incomeBeforeTax": pretax, "incomeTaxExpense": tax,
        "netIncomeFromContinuingOperations": net_income, "netIncomeFromDiscontinuedOperations": 0,
        "otherAdjustmentsToNetIncome": 0, "netIncome": net_income, "netIncomeDeductions": 0,
        "bottomLineNetIncome": net_income, "eps": round(net_income / shares, 2),
        "epsDiluted": round(net_income / diluted, 2), "weightedAverageShsOut": shares,
        "weightedAverageShsOutDil": diluted,
    }

    deferred_tax = max(_k(tax * 0.05 * z[7]), -b["dtl"])  # the liability cannot turn negative
    sbc = _k(revenue * p.sbc_ratio)
    ar, inventory, ap = _k(revenue * p.dso / 91.25), _k(cogs * p.dio / 91.25), _k(cogs * p.dpo / 91.25)
    cf_ar, cf_inventory, cf_ap = b["ar"] - ar, b["inventory"] - inventory, ap - b["ap"]
    working_capital = cf_ar + cf_inventory + cf_ap
    operating = net_income + da + deferred_tax + sbc + working_capital
    capex = _k(max(revenue * p.capex_ratio * math.exp(0.1 * z[8]), 0.8 * da))
    acquisitions = -_k(revenue * 0.5 * (1 + unit("acq", issuer, t))) if z[9] > 2.2 else 0
    investing = -capex + acquisitions
    dividends = -_k(max(net_income, 0) * p.payout)
    target_cash = 0.5 * revenue
    available = b["cash"] + operating + investing + dividends
    repurchased = -_k(max(0.0, available - target_cash) * p.buyback_share)
    issued = _k(sbc * 0.1)
    after = available + repurchased + issued
    if after < 0.3 * revenue:
        debt = _k(0.4 * revenue - after)
    elif after > 1.5 * revenue and b["ltd"] > 0:
        debt = -min(b["ltd"], _k(0.2 * revenue))
    else:
        debt = 0
    financing = debt + issued + repurchased + dividends
    change = operating + investing + financing
    cash_flow = {
        "netIncome": net_income, "depreciationAndAmortization": da, "deferredIncomeTax": deferred_tax,
        "stockBasedCompensation": sbc, "changeInWorkingCapital": working_capital, "accountsReceivables": cf_ar,
        "inventory": cf_inventory, "accountsPayables": cf_ap, "otherWorkingCapital": 0, "otherNonCashItems": 0,
        "netCashProvidedByOperatingActivities": operating, "investmentsInPropertyPlantAndEquipment": -capex,
        "acquisitionsNet": acquisitions, "purchasesOfInvestments": 0, "salesMaturitiesOfInvestments": 0,
        "otherInvestingActivities": 0, "netCashProvidedByInvestingActivities": investing,
        "netDebtIssuance": debt, "longTermNetDebtIssuance": debt, "shortTermNetDebtIssuance": 0,
        "netStockIssuance": issued + repurchased, "netCommonStockIssuance": issued + repurchased,
        "commonStockIssuance": issued, "commonStockRepurchased": repurchased, "netPreferredStockIssuance": 0,
        "netDividendsPaid": dividends, "commonDividendsPaid": dividends, "preferredDividendsPaid": 0,
        "otherFinancingActivities": 0, "netCashProvidedByFinancingActivities": financing,
        "effectOfForexChangesOnCash": 0, "netChangeInCash": change, "cashAtEndOfPeriod": b["cash"] + change,
        "cashAtBeginningOfPeriod": b["cash"], "operatingCashFlow": operating, "capitalExpenditure": -capex,
        "freeCashFlow": operating - capex, "incomeTaxesPaid": tax - deferred_tax,
        "interestPaid": interest_expense,
    }

    b["cash"] += change
    b["ar"], b["inventory"], b["ap"] = ar, inventory, ap
    b["ppe"] += capex - da
    b["goodwill"] -= acquisitions
    b["dtl"] += deferred_tax
    b["ltd"] += debt
    b["apic"] += sbc + issued
    b["treasury"] += repurchased
    b["retained"] += net_income + dividends
    return income, cash_flow


def _balance_sheet(b: dict[str, int]) -> dict[str, int]:
    cash_and_sti = b["cash"] + b["sti"]
    receivables = b["ar"] + b["other_rec"]
    current_assets = cash_and_sti + receivables + b["inventory"] + b["prepaids"] + b["other_ca"]
    gw_intangibles = b["goodwill"] + b["intangibles"]
    noncurrent_assets = b["ppe"] + gw_intangibles + b["lti"] + b["tax_assets"] + b["other_nca"]
    payables = b["ap"] + b["other_payables"]
    current_liabilities = (payables + b["accrued"] + b["std"] + b["clo_current"] + b["tax_payables"]
                           + b["deferred_rev"] + b["other_cl"])
    noncurrent_liabilities = b["ltd"] + b["clo_noncurrent"] + b["deferred_rev_nc"] + b["dtl"] + b["other_ncl"]
    leases = b["clo_current"] + b["clo_noncurrent"]
    liabilities = current_liabilities + noncurrent_liabilities
    stockholders = sum(b[k] for k in _EQUITY if k != "minority")
    equity = stockholders + b["minority"]
    debt = b["std"] + b["ltd"] + leases
    return {
        "cashAndCashEquivalents": b["cash"], "shortTermInvestments": b["sti"],
        "cashAndShortTermInvestments": cash_and_sti, "netReceivables": receivables,
        "accountsReceivables": b["ar"], "otherReceivables": b["other_rec"], "inventory": b["inventory"],
        "prepaids": b["prepaids"], "otherCurrentAssets": b["other_ca"], "totalCurrentAssets": current_assets,
        "propertyPlantEquipmentNet": b["ppe"], "goodwill": b["goodwill"], "intangibleAssets": b["intangibles"],
        "goodwillAndIntangibleAssets": gw_intangibles, "longTermInvestments": b["lti"],
        "taxAssets": b["tax_assets"], "otherNonCurrentAssets": b["other_nca"],
        "totalNonCurrentAssets": noncurrent_assets, "otherAssets": 0,
        "totalAssets": current_assets + noncurrent_assets, "totalPayables": payables,
        "accountPayables": b["ap"], "otherPayables": b["other_payables"], "accruedExpenses": b["accrued"],
        "shortTermDebt": b["std"], "capitalLeaseObligationsCurrent": b["clo_current"],
        "taxPayables": b["tax_payables"], "deferredRevenue": b["deferred_rev"],
        "otherCurrentLiabilities": b["other_cl"], "totalCurrentLiabilities": current_liabilities,
        "longTermDebt": b["ltd"], "capitalLeaseObligationsNonCurrent": b["clo_noncurrent"],
        "deferredRevenueNonCurrent": b["deferred_rev_nc"], "deferredTaxLiabilitiesNonCurrent": b["dtl"],
        "otherNonCurrentLiabilities": b["other_ncl"], "totalNonCurrentLiabilities": noncurrent_liabilities,
        "otherLiabilities": 0, "capitalLeaseObligations": leases, "totalLiabilities": liabilities,
        "treasuryStock": b["treasury"], "preferredStock": b["preferred"], "commonStock": b["common"],
        "retainedEarnings": b["retained"], "additionalPaidInCapital": b["apic"],
        "accumulatedOtherComprehensiveIncomeLoss": b["aoci"], "otherTotalStockholdersEquity": b["other_equity"],
        "totalStockholdersEquity": stockholders, "totalEquity": equity, "minorityInterest": b["minority"],
        "totalLiabilitiesAndTotalEquity": liabilities + equity, "totalInvestments": b["sti"] + b["lti"],
        "totalDebt": debt, "netDebt": debt - b["cash"],
    }


def _row(order: tuple[str, ...], header: dict, values: dict) -> dict:
    merged = {**header, **values}
    return {name: merged[name] for name in order}


def _fiscal_year_income(quarters: list[dict]) -> dict:
    total = {k: sum(q[k] for q in quarters) for k in quarters[0] if k not in fields.INCOME_NON_FLOW}
    shares = int(round(sum(q["weightedAverageShsOut"] for q in quarters) / 4))
    diluted = int(round(sum(q["weightedAverageShsOutDil"] for q in quarters) / 4))
    return {**total, "eps": round(total["netIncome"] / shares, 2), "epsDiluted": round(total["netIncome"] / diluted, 2),
            "weightedAverageShsOut": shares, "weightedAverageShsOutDil": diluted}


def _fiscal_year_cash_flow(quarters: list[dict]) -> dict:
    total = {k: sum(q[k] for q in quarters) for k in quarters[0] if k not in fields.CASH_FLOW_NON_FLOW}
    return {**total, "cashAtEndOfPeriod": quarters[-1]["cashAtEndOfPeriod"],
            "cashAtBeginningOfPeriod": quarters[0]["cashAtBeginningOfPeriod"]}


@dataclass(frozen=True)
class Statements:
    """Rows (wire order, newest first) per kind and period type."""

    quarter: dict[str, tuple[dict, ...]]
    annual: dict[str, tuple[dict, ...]]
    latest_shares: float


KINDS = {"income": fields.INCOME, "balance": fields.BALANCE, "cashflow": fields.CASH_FLOW}


@lru_cache(maxsize=64)  # ~0.4 MB of rows per issuer
def statements(company: Company, as_of: date, restatement: int = 0) -> Statements:
    """Statements of ``company``'s issuer filed on or before ``as_of``."""
    profile = issuer_profile(company)
    periods = filed_quarters(company, as_of)
    balance = _opening_balance(profile)
    factor = _restatement_factor(company.issuer, restatement)
    quarter_rows: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    annual_rows: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    raw: dict[str, list[dict]] = {"income": [], "cashflow": []}
    for t, period in enumerate(periods):
        is_restated = t == len(periods) - 1
        income, cash_flow = _quarter(profile, t, period, balance, company.issuer, factor if is_restated else 1.0)
        values = {"income": income, "balance": _balance_sheet(balance), "cashflow": cash_flow}
        raw["income"].append(income)
        raw["cashflow"].append(cash_flow)
        header = {
            "date": period.end.isoformat(), "symbol": company.fmp_symbol, "reportedCurrency": "USD",
            "cik": company.cik, "filingDate": period.filing.isoformat(), "acceptedDate": period.accepted,
            "fiscalYear": str(period.fiscal_year), "period": f"Q{period.quarter}",
        }
        for kind, order in KINDS.items():
            quarter_rows[kind].append(_row(order, header, values[kind]))
        if period.quarter == 4:
            fy_values = {
                "income": _fiscal_year_income(raw["income"][-4:]),
                "balance": values["balance"],
                "cashflow": _fiscal_year_cash_flow(raw["cashflow"][-4:]),
            }
            for kind, order in KINDS.items():
                annual_rows[kind].append(_row(order, {**header, "period": "FY"}, fy_values[kind]))
    latest_shares = raw["income"][-1]["weightedAverageShsOut"] if periods else profile.shares0
    return Statements(
        quarter={k: tuple(reversed(v)) for k, v in quarter_rows.items()},
        annual={k: tuple(reversed(v)) for k, v in annual_rows.items()},
        latest_shares=float(latest_shares),
    )
