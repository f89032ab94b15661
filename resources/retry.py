"""The one retry policy for steps that talk to FMP, Snowflake or PostgreSQL.

Each step is idempotent (staged loads merged in one statement or one transaction), so a retry after
a dropped connection or a failed call converges; exponential backoff with jitter keeps retries of
parallel steps from hitting a recovering service all at once.
"""

from dagster import Backoff, Jitter, RetryPolicy

network_retry_policy = RetryPolicy(max_retries=3, delay=20, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)
