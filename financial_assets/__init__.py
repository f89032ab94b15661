"""S&P 500 market data from FMP into Snowflake, as a partitioned Dagster asset graph."""
