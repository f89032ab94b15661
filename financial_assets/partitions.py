"""Symbol partitions: one per S&P 500 ticker (index form, e.g. BRK.B), kept in step with the index."""

from dagster import DynamicPartitionsDefinition

symbol_partitions = DynamicPartitionsDefinition(name="sp500_symbols")
