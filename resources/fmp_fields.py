"""FMP stable API wire fields, in wire order (FMP_SPEC §3): one list for the client side and the offline server."""

from __future__ import annotations


def _split(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.replace("\n", " ").split(",") if name.strip())


STATEMENT_HEADER = _split("date, symbol, reportedCurrency, cik, filingDate, acceptedDate, fiscalYear, period")

PROFILE = _split(
    """symbol, price, marketCap, beta, lastDividend, range, change, changePercentage, volume,
    averageVolume, companyName, currency, cik, isin, cusip, exchangeFullName, exchange, industry,
    website, description, ceo, sector, country, fullTimeEmployees, phone, address, city, state, zip,
    image, ipoDate, defaultImage, isEtf, isActivelyTrading, isAdr, isFund"""
)

QUOTE = _split(
    """symbol, name, price, changePercentage, change, volume, dayLow, dayHigh, yearHigh, yearLow,
    marketCap, priceAvg50, priceAvg200, exchange, open, previousClose, timestamp"""
)

EOD_FULL = _split("symbol, date, open, high, low, close, volume, change, changePercent, vwap")

INCOME_FIELDS = _split(
    """revenue, costOfRevenue, grossProfit, researchAndDevelopmentExpenses,
    generalAndAdministrativeExpenses, sellingAndMarketingExpenses,
    sellingGeneralAndAdministrativeExpenses, otherExpenses, operatingExpenses, costAndExpenses,
    netInterestIncome, interestIncome, interestExpense, depreciationAndAmortization, ebitda, ebit,
    nonOperatingIncomeExcludingInterest, operatingIncome, totalOtherIncomeExpensesNet,
    incomeBeforeTax, incomeTaxExpense, netIncomeFromContinuingOperations,
    netIncomeFromDiscontinuedOperations, otherAdjustmentsToNetIncome, netIncome,
    netIncomeDeductions, bottomLineNetIncome, eps, epsDiluted, weightedAverageShsOut,
    weightedAverageShsOutDil"""
)

BALANCE_FIELDS = _split(
    """cashAndCashEquivalents, shortTermInvestments, cashAndShortTermInvestments, netReceivables,
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

CASH_FLOW_FIELDS = _split(
    """netIncome, depreciationAndAmortization, deferredIncomeTax, stockBasedCompensation,
    changeInWorkingCapital, accountsReceivables, inventory, accountsPayables, otherWorkingCapital,
    otherNonCashItems, netCashProvidedByOperatingActivities, investmentsInPropertyPlantAndEquipment,
    acquisitionsNet, purchasesOfInvestments, salesMaturitiesOfInvestments,
    otherInvestingActivities, netCashProvidedByInvestingActivities, netDebtIssuance,
    longTermNetDebtIssuance, shortTermNetDebtIssuance, netStockIssuance, netCommonStockIssuance,
    commonStockIssuance, commonStockRepurchased, netPreferredStockIssuance, netDividendsPaid,
    commonDividendsPaid, preferredDividendsPaid, otherFinancingActivities,
    netCashProvidedByFinancingActivities, effectOfForexChangesOnCash, netChangeInCash,
    cashAtEndOfPeriod, cashAtBeginningOfPeriod, operatingCashFlow, capitalExpenditure,
    freeCashFlow, incomeTaxesPaid, interestPaid"""
)

INCOME = STATEMENT_HEADER + INCOME_FIELDS
BALANCE = STATEMENT_HEADER + BALANCE_FIELDS
CASH_FLOW = STATEMENT_HEADER + CASH_FLOW_FIELDS

CONSTITUENT = _split("symbol, name, sector, subSector, headQuarter, dateFirstAdded, cik, founded")

# statement values that are not summed when four quarters roll up into a fiscal year
INCOME_NON_FLOW = {"eps", "epsDiluted", "weightedAverageShsOut", "weightedAverageShsOutDil"}
CASH_FLOW_NON_FLOW = {"cashAtEndOfPeriod", "cashAtBeginningOfPeriod"}
