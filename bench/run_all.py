"""`make bench`: both benchmarks, one after the other, each printing its table (results in bench/results/)."""

from bench import conflict_bench, financial_bench

if __name__ == "__main__":
    financial_bench.main([])
    conflict_bench.main([])
