"""SSN-prefix partitions: the 1,000 3-digit prefixes "000".."999" (keys never carry more than 3 digits)."""

from __future__ import annotations

from dagster import BackfillPolicy, StaticPartitionsDefinition

PREFIXES = [f"{i:03d}" for i in range(1000)]
ssn_prefix_partitions = StaticPartitionsDefinition(PREFIXES)

# Both assets handle a partition range in one run with one fingerprint query and one PostgreSQL transaction,
# so per-run overhead is what matters: 250 prefixes a run makes a full backfill 4 runs, small enough that a
# failed run redoes a quarter of the work and that two runs can share the pools.
PARTITIONS_PER_RUN = 250
backfill_policy = BackfillPolicy.multi_run(max_partitions_per_run=PARTITIONS_PER_RUN)
