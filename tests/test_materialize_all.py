"""`make run`'s driver: every asset of a location materialized, ending with a summary."""

from __future__ import annotations

from resources.materialize_all import main


def test_run_materializes_the_financial_location_and_summarizes(capsys):
    assert main(["--location", "financial_assets", "--limit", "2"]) == 0
    summary = capsys.readouterr().out.split("Summary", 1)[1]
    assert "financial_assets: unpartitioned" in summary
    assert "financial_assets: 2 partitions" in summary
    assert "FAILED" not in summary and "0 failed" in summary
