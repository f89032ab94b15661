-- Shared CTE fragment (included by ttm.sql, ratios.sql, analytics/fact_financials.sql).
-- One row per (statement symbol, period end date, period class FY|Q) from the three raw statement
-- tables: a duplicate for the same period end (e.g. a re-labelled quarter) keeps the latest filing.
-- Income statement drives; balance sheet and cash flow join on the same period end and class.
st_is AS (
    SELECT *
    FROM FMP_RAW.INCOME_STATEMENTS
    WHERE SYMBOL IN ({{statement_symbols}})
    QUALIFY ROW_NUMBER() OVER (
        PARTITION BY SYMBOL, PERIOD_END_DATE, IFF(PERIOD = 'FY', 'FY', 'Q')
        ORDER BY FILING_DATE DESC NULLS LAST, ACCEPTED_DATE DESC NULLS LAST, FETCHED_AT DESC NULLS LAST, PERIOD DESC
    ) = 1
),
st_bs AS (
    SELECT *
    FROM FMP_RAW.BALANCE_SHEETS
    WHERE SYMBOL IN ({{statement_symbols}})
    QUALIFY ROW_NUMBER() OVER (
        PARTITION BY SYMBOL, PERIOD_END_DATE, IFF(PERIOD = 'FY', 'FY', 'Q')
        ORDER BY FILING_DATE DESC NULLS LAST, ACCEPTED_DATE DESC NULLS LAST, FETCHED_AT DESC NULLS LAST, PERIOD DESC
    ) = 1
),
st_cf AS (
    SELECT *
    FROM FMP_RAW.CASH_FLOW_STATEMENTS
    WHERE SYMBOL IN ({{statement_symbols}})
    QUALIFY ROW_NUMBER() OVER (
        PARTITION BY SYMBOL, PERIOD_END_DATE, IFF(PERIOD = 'FY', 'FY', 'Q')
        ORDER BY FILING_DATE DESC NULLS LAST, ACCEPTED_DATE DESC NULLS LAST, FETCHED_AT DESC NULLS LAST, PERIOD DESC
    ) = 1
),
st AS (
    SELECT
        i.SYMBOL, i.PERIOD_END_DATE, i.PERIOD, IFF(i.PERIOD = 'FY', 'FY', 'Q') AS PERIOD_CLASS,
        i.FISCAL_YEAR, i.REPORTED_CURRENCY, i.FILING_DATE,
        {{statement_columns}}
    FROM st_is i
    LEFT JOIN st_bs b
        ON b.SYMBOL = i.SYMBOL AND b.PERIOD_END_DATE = i.PERIOD_END_DATE
        AND IFF(b.PERIOD = 'FY', 'FY', 'Q') = IFF(i.PERIOD = 'FY', 'FY', 'Q')
    LEFT JOIN st_cf c
        ON c.SYMBOL = i.SYMBOL AND c.PERIOD_END_DATE = i.PERIOD_END_DATE
        AND IFF(c.PERIOD = 'FY', 'FY', 'Q') = IFF(i.PERIOD = 'FY', 'FY', 'Q')
)
