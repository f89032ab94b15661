"""Shared helpers for the FMP client and offline-server tests.

The expected field lists are transcribed from FMP_SPEC §3 (recorded stable responses), not
imported from the server, so the tests check the server against the spec.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date
from typing import Any, Iterator

import requests

from resources.offline_fmp import OFFLINE_API_KEY
from resources.offline_fmp.server import OfflineFMPServer, serving

AS_OF = date(2025, 9, 23)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.replace("\n", " ").split(",") if name.strip()]


SPEC_PROFILE = _names(
    """symbol, price, marketCap, beta, lastDividend, range, change, changePercentage, volume,
    averageVolume, companyName, currency, cik, isin, cusip, exchangeFullName, exchange, industry,
    website, description, ceo, sector, country, fullTimeEmployees, phone, address, city, state, zip,
    image, ipoDate, defaultImage, isEtf, isActivelyTrading, isAdr, isFund"""
)
SPEC_QUOTE = _names(
    """symbol, name, price, changePercentage, change, volume, dayLow, dayHigh, yearHigh, yearLow,
    marketCap, priceAvg50, priceAvg200, exchange, open, previousClose, timestamp"""
)
SPEC_EOD = _names("symbol, date, open, high, low, close, volume, change, changePercent, vwap")
SPEC_INCOME = _names(
    """date, symbol, reportedCurrency, cik, filingDate, acceptedDate, fiscalYear, period, revenue,
    costOfRevenue, grossProfit, researchAndDevelopmentExpenses, generalAndAdministrativeExpenses,
    sellingAndMarketingExpenses, sellingGeneralAndAdministrativeExpenses, otherExpenses,
    operatingExpenses, costAndExpenses, netInterestIncome, interestIncome, interestExpense,
    depreciationAndAmortization, ebitda, ebit, nonOperatingIncomeExcludingInterest, operatingIncome,
    totalOtherIncomeExpensesNet, incomeBeforeTax, incomeTaxExpense,
    netIncomeFromContinuingOperations, netIncomeFromDiscontinuedOperations,
    otherAdjustmentsToNetIncome, netIncome, netIncomeDeductions, bottomLineNetIncome, eps,
    epsDiluted, weightedAverageShsOut, weightedAverageShsOutDil"""
)
SPEC_BALANCE = _names(
    """date, symbol, reportedCurrency, cik, filingDate, acceptedDate, fiscalYear, period,
    cashAndCashEquivalents, shortTermInvestments, cashAndShortTermInvestments, netReceivables,
    accountsReceivables, otherReceivables, inventory, prepaids, otherCurrentAssets,
    totalCurrentAssets, propertyPlantEquipmentNet, goodwill, intangibleAssets,
    goodwillAndIntangibleAssets, longTermInvestments, taxAssets, otherNonCurrentAssets,
    totalNonCurrentAssets, otherAssets, totalAssets, totalPayables, accountPayables, otherPayables,
    accruedExpenses, shortTermDebt, capitalLeaseObligationsCurrent, taxPayables, deferredRevenue,
    otherCurrentLiabilities, totalCurrentLiabilities, longTermDebt,
    capitalLeaseObligationsNonCurrent, deferredRevenueNonCurrent, deferredTaxLiabilitiesNonCurrent,
    otherNonCurrentLiabilities, totalNonCurrentLiabilities, otherLiabilities,
    capitalLeaseObligations, totalLiabilities, treasuryStock, preferredStock, commonStock,
    retainedEarnings, additionalPaidInCapital, accumulatedOtherComprehensiveIncomeLoss,
    otherTotalStockholdersEquity, totalStockholdersEquity, totalEquity, minorityInterest,
    totalLiabilitiesAndTotalEquity, totalInvestments, totalDebt, netDebt"""
)
SPEC_CASH_FLOW = _names(
    """date, symbol, reportedCurrency, cik, filingDate, acceptedDate, fiscalYear, period, netIncome,
    depreciationAndAmortization, deferredIncomeTax, stockBasedCompensation, changeInWorkingCapital,
    accountsReceivables, inventory, accountsPayables, otherWorkingCapital, otherNonCashItems,
    netCashProvidedByOperatingActivities, investmentsInPropertyPlantAndEquipment, acquisitionsNet,
    purchasesOfInvestments, salesMaturitiesOfInvestments, otherInvestingActivities,
    netCashProvidedByInvestingActivities, netDebtIssuance, longTermNetDebtIssuance,
    shortTermNetDebtIssuance, netStockIssuance, netCommonStockIssuance, commonStockIssuance,
    commonStockRepurchased, netPreferredStockIssuance, netDividendsPaid, commonDividendsPaid,
    preferredDividendsPaid, otherFinancingActivities, netCashProvidedByFinancingActivities,
    effectOfForexChangesOnCash, netChangeInCash, cashAtEndOfPeriod, cashAtBeginningOfPeriod,
    operatingCashFlow, capitalExpenditure, freeCashFlow, incomeTaxesPaid, interestPaid"""
)
SPEC_CONSTITUENT = _names("symbol, name, sector, subSector, headQuarter, dateFirstAdded, cik, founded")

STATEMENT_SPECS = {
    "income-statement": SPEC_INCOME,
    "balance-sheet-statement": SPEC_BALANCE,
    "cash-flow-statement": SPEC_CASH_FLOW,
}

INVALID_KEY_BODY = {
    "Error Message": "Invalid API KEY. Feel free to create a Free API Key or visit "
    "https://site.financialmodelingprep.com/faqs?search=why-is-my-api-key-invalid for more information."
}
LIMIT_REACH_BODY = {
    "Error Message": "Limit Reach . Please upgrade your plan or visit our documentation for more details at "
    "https://site.financialmodelingprep.com/"
}



@contextmanager
def offline_server(**config: Any) -> Iterator[OfflineFMPServer]:
    """An in-process offline FMP server on a free port (as-of AS_OF unless given)."""
    config.setdefault("as_of", AS_OF.isoformat())
    with serving(0, **config) as server:
        yield server


def api_get(server: OfflineFMPServer, endpoint: str, key: str | None = OFFLINE_API_KEY, **params: Any):
    """GET /stable/<endpoint> with the key in the header; returns the requests.Response."""
    headers = {"apikey": key} if key else {}
    return requests.get(f"{server.base_url}/stable/{endpoint}", params=params, headers=headers, timeout=30)


def api_json(server: OfflineFMPServer, endpoint: str, **params: Any) -> Any:
    response = api_get(server, endpoint, **params)
    assert response.status_code == 200, response.text
    return response.json()


def admin_get(server: OfflineFMPServer, action: str) -> dict:
    response = requests.get(f"{server.base_url}/_offline/{action}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def admin_post(server: OfflineFMPServer, action: str, body: dict | None = None) -> dict:
    response = requests.post(f"{server.base_url}/_offline/{action}", json=body or {}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()
