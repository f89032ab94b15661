-- ANALYTICS.FACT_DAILY_PRICES: one row per (ticker, trading day), the run's tickers fully rebuilt.
-- Inserted in (SYMBOL, DATE) order; the table is CLUSTER BY (SYMBOL, DATE) for per-ticker time-series
-- scans and date-range filters.
INSERT INTO ANALYTICS.FACT_DAILY_PRICES ({{insert_columns}})
SELECT
    p.SYMBOL,
    p.DATE,
    YEAR(p.DATE) * 10000 + MONTH(p.DATE) * 100 + DAY(p.DATE) AS DATE_KEY,
    p.OPEN,
    p.HIGH,
    p.LOW,
    p.CLOSE,
    p.VOLUME,
    p.VWAP,
    p.CHANGE,
    p.CHANGE_PERCENT,
    p.CLOSE / NULLIF(LAG(p.CLOSE) OVER (PARTITION BY p.SYMBOL ORDER BY p.DATE), 0) - 1 AS DAILY_RETURN,
    p.CLOSE * p.VOLUME AS DOLLAR_VOLUME,
    p.LOADED_AT
FROM FMP_RAW.DAILY_PRICES p
WHERE p.SYMBOL IN ({{symbols}})
ORDER BY p.SYMBOL, p.DATE
