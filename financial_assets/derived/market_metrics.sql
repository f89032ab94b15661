-- fmp_core/market_metrics: one row per ticker as of its latest price date.
--   returns: close / close N trading days earlier - 1 (N = 21, 63, 252);
--   volatility: sample std of the last 30 / 252 daily close-to-close returns x sqrt(252), only with a
--     full window; 52-week high / low: max HIGH / min LOW over the last 252 trading days;
--   average volume over the last 30 / 63 trading days;
--   beta: cov(r, m) / var(m) over the last 252 days, m = equal-weighted mean daily return of the
--     universe's current members (pairwise complete, >= 20 pairs);
--   market cap = close x the latest quarter's weighted average diluted shares (statement company;
--     FinanceToolkit), falling back to the FMP profile's marketCap; enterprise value as in ratios.sql.
INSERT INTO FMP_CORE.MARKET_METRICS ({{insert_columns}})
WITH tickers AS (
    SELECT COLUMN1 AS SYMBOL, COLUMN2 AS STATEMENT_SYMBOL FROM VALUES {{ticker_values}}
),
px AS (
    SELECT
        p.SYMBOL, p.DATE, p.CLOSE, p.HIGH, p.LOW, p.VOLUME,
        ROW_NUMBER() OVER (PARTITION BY p.SYMBOL ORDER BY p.DATE DESC) AS RN,
        p.CLOSE / NULLIF(LAG(p.CLOSE) OVER (PARTITION BY p.SYMBOL ORDER BY p.DATE), 0) - 1 AS RET
    FROM FMP_RAW.DAILY_PRICES p
    WHERE p.SYMBOL IN ({{symbols}}) AND p.CLOSE > 0
),
win AS (
    SELECT DATEADD(day, -15, MIN(DATE)) AS START_DATE FROM px WHERE RN <= 253
),
universe_returns AS (
    SELECT
        p.DATE,
        p.CLOSE / NULLIF(LAG(p.CLOSE) OVER (PARTITION BY p.SYMBOL ORDER BY p.DATE), 0) - 1 AS RET
    FROM FMP_RAW.DAILY_PRICES p
    JOIN FMP_RAW.UNIVERSE u ON u.SYMBOL = p.SYMBOL AND u.IS_MEMBER
    WHERE p.DATE >= (SELECT START_DATE FROM win) AND p.CLOSE > 0
),
market AS (
    SELECT DATE, AVG(RET) AS MKT_RET FROM universe_returns WHERE RET IS NOT NULL GROUP BY DATE
),
agg AS (
    SELECT
        px.SYMBOL,
        MAX(IFF(px.RN = 1, px.DATE, NULL)) AS AS_OF_DATE,
        MAX(IFF(px.RN = 1, px.CLOSE, NULL)) AS CLOSE,
        MAX(IFF(px.RN = 22, px.CLOSE, NULL)) AS CLOSE_1M,
        MAX(IFF(px.RN = 64, px.CLOSE, NULL)) AS CLOSE_3M,
        MAX(IFF(px.RN = 253, px.CLOSE, NULL)) AS CLOSE_1Y,
        STDDEV_SAMP(IFF(px.RN <= 30, px.RET, NULL)) AS STD_30D,
        COUNT(IFF(px.RN <= 30, px.RET, NULL)) AS N_30D,
        STDDEV_SAMP(IFF(px.RN <= 252, px.RET, NULL)) AS STD_1Y,
        COUNT(IFF(px.RN <= 252, px.RET, NULL)) AS N_1Y,
        MAX(IFF(px.RN <= 252, px.HIGH, NULL)) AS HIGH_52W,
        MIN(IFF(px.RN <= 252, px.LOW, NULL)) AS LOW_52W,
        AVG(IFF(px.RN <= 30, px.VOLUME, NULL)) AS AVERAGE_VOLUME_30D,
        AVG(IFF(px.RN <= 63, px.VOLUME, NULL)) AS AVERAGE_VOLUME_3M,
        COVAR_SAMP(IFF(px.RN <= 252, px.RET, NULL), IFF(px.RN <= 252 AND px.RET IS NOT NULL, m.MKT_RET, NULL))
            AS COV_M,
        VAR_SAMP(IFF(px.RN <= 252 AND px.RET IS NOT NULL, m.MKT_RET, NULL)) AS VAR_M,
        COUNT(IFF(px.RN <= 252 AND px.RET IS NOT NULL, m.MKT_RET, NULL)) AS BETA_OBSERVATIONS,
        COUNT(*) AS PRICE_DAYS
    FROM px
    LEFT JOIN market m ON m.DATE = px.DATE
    GROUP BY px.SYMBOL
),
fundamentals AS (
    -- the statement company's latest quarter ended on or before the as-of date
    SELECT a.SYMBOL, t.AS_OF_PERIOD_END_DATE, t.WEIGHTED_AVERAGE_SHS_OUT_DIL, t.TOTAL_DEBT, t.MINORITY_INTEREST,
           t.PREFERRED_STOCK, t.CASH_AND_CASH_EQUIVALENTS, t.SHORT_TERM_INVESTMENTS
    FROM agg a
    JOIN tickers k ON k.SYMBOL = a.SYMBOL
    JOIN FMP_CORE.TTM_FINANCIALS t ON t.SYMBOL = k.STATEMENT_SYMBOL AND t.AS_OF_PERIOD_END_DATE <= a.AS_OF_DATE
    QUALIFY ROW_NUMBER() OVER (PARTITION BY a.SYMBOL ORDER BY t.AS_OF_PERIOD_END_DATE DESC) = 1
),
joined AS (
    SELECT
        a.*,
        f.AS_OF_PERIOD_END_DATE AS FUNDAMENTALS_PERIOD_END_DATE,
        f.WEIGHTED_AVERAGE_SHS_OUT_DIL AS SHARES_DILUTED,
        COALESCE(a.CLOSE * f.WEIGHTED_AVERAGE_SHS_OUT_DIL, pr.MARKET_CAP) AS MARKET_CAP,
        CASE WHEN a.CLOSE * f.WEIGHTED_AVERAGE_SHS_OUT_DIL IS NOT NULL THEN 'CLOSE_X_DILUTED_SHARES'
             WHEN pr.MARKET_CAP IS NOT NULL THEN 'FMP_PROFILE' END AS MARKET_CAP_SOURCE,
        f.TOTAL_DEBT, f.MINORITY_INTEREST, f.PREFERRED_STOCK, f.CASH_AND_CASH_EQUIVALENTS, f.SHORT_TERM_INVESTMENTS
    FROM agg a
    LEFT JOIN fundamentals f ON f.SYMBOL = a.SYMBOL
    LEFT JOIN FMP_RAW.COMPANY_PROFILES pr ON pr.SYMBOL = a.SYMBOL
)
SELECT
    SYMBOL,
    AS_OF_DATE,
    CLOSE,
    SHARES_DILUTED,
    MARKET_CAP,
    MARKET_CAP_SOURCE,
    MARKET_CAP + TOTAL_DEBT + COALESCE(MINORITY_INTEREST, 0) + COALESCE(PREFERRED_STOCK, 0)
        - (CASH_AND_CASH_EQUIVALENTS + COALESCE(SHORT_TERM_INVESTMENTS, 0)) AS ENTERPRISE_VALUE,
    FUNDAMENTALS_PERIOD_END_DATE,
    CLOSE / NULLIF(CLOSE_1M, 0) - 1 AS RETURN_1M,
    CLOSE / NULLIF(CLOSE_3M, 0) - 1 AS RETURN_3M,
    CLOSE / NULLIF(CLOSE_1Y, 0) - 1 AS RETURN_1Y,
    IFF(N_30D = 30, STD_30D * SQRT(252), NULL) AS VOLATILITY_30D,
    IFF(N_1Y = 252, STD_1Y * SQRT(252), NULL) AS VOLATILITY_1Y,
    HIGH_52W,
    LOW_52W,
    AVERAGE_VOLUME_30D,
    AVERAGE_VOLUME_3M,
    IFF(BETA_OBSERVATIONS >= 20, COV_M / NULLIF(VAR_M, 0), NULL) AS BETA,
    BETA_OBSERVATIONS,
    PRICE_DAYS,
    CURRENT_TIMESTAMP()::TIMESTAMP_NTZ AS COMPUTED_AT
FROM joined
ORDER BY SYMBOL
