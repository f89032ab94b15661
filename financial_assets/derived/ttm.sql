-- fmp_core/ttm_financials: trailing-twelve-month figures per (statement symbol, quarter end).
-- Flow items (income + cash-flow statements) = sum of the four most recent fiscal quarters up to and
-- including the as-of quarter, but only when those four rows are four distinct fiscal quarters
-- (Q1..Q4 each once) covering 330-380 days (from three months before the first quarter's end to the
-- last quarter's end) and the item is present in all four; else NULL (FinanceToolkit's
-- rolling(4).sum() with min_periods=4, plus the consecutiveness check of FMP_SPEC §8.3).
-- Balance items = the as-of quarter's; shares = the as-of quarter's weighted averages.
-- AVG_* = mean of the balance item over the window's four quarter ends (FinanceToolkit's trailing mean,
-- used for the avg-denominator ratios on the TTM basis).
INSERT INTO FMP_CORE.TTM_FINANCIALS ({{insert_columns}})
WITH {{statements}},
q AS (
    SELECT * FROM st WHERE PERIOD IN ('Q1', 'Q2', 'Q3', 'Q4')
),
w AS (
    SELECT
        q.*,
        COUNT(*) OVER (PARTITION BY SYMBOL ORDER BY PERIOD_END_DATE ROWS BETWEEN 3 PRECEDING AND CURRENT ROW)
            AS WINDOW_ROWS,
        LAG(PERIOD, 1) OVER (PARTITION BY SYMBOL ORDER BY PERIOD_END_DATE) AS PERIOD_1,
        LAG(PERIOD, 2) OVER (PARTITION BY SYMBOL ORDER BY PERIOD_END_DATE) AS PERIOD_2,
        LAG(PERIOD, 3) OVER (PARTITION BY SYMBOL ORDER BY PERIOD_END_DATE) AS PERIOD_3,
        LAG(PERIOD_END_DATE, 3) OVER (PARTITION BY SYMBOL ORDER BY PERIOD_END_DATE) AS FIRST_PERIOD_END_DATE,
        {{window_aggregates}}
    FROM q
),
v AS (
    SELECT
        w.*,
        DATEDIFF(day, DATEADD(month, -3, FIRST_PERIOD_END_DATE)::DATE, PERIOD_END_DATE) AS WINDOW_SPAN_DAYS,
        COALESCE(
            WINDOW_ROWS = 4
            AND PERIOD NOT IN (PERIOD_1, PERIOD_2, PERIOD_3)
            AND PERIOD_1 NOT IN (PERIOD_2, PERIOD_3)
            AND PERIOD_2 <> PERIOD_3
            AND DATEDIFF(day, DATEADD(month, -3, FIRST_PERIOD_END_DATE)::DATE, PERIOD_END_DATE) BETWEEN 330 AND 380,
            FALSE
        ) AS IS_TTM_VALID
    FROM w
)
SELECT
    SYMBOL,
    PERIOD_END_DATE AS AS_OF_PERIOD_END_DATE,
    PERIOD AS AS_OF_PERIOD,
    FISCAL_YEAR,
    REPORTED_CURRENCY,
    FILING_DATE,
    FIRST_PERIOD_END_DATE,
    WINDOW_ROWS AS SOURCE_QUARTERS,
    WINDOW_SPAN_DAYS,
    IS_TTM_VALID,
    {{select_columns}},
    CURRENT_TIMESTAMP()::TIMESTAMP_NTZ AS COMPUTED_AT
FROM v
ORDER BY SYMBOL, AS_OF_PERIOD_END_DATE
