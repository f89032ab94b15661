"""The conflict source sensor's decisions: only changed prefixes, contiguous ranges, no repeats."""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from conflict_assets.partitions import PREFIXES
from conflict_assets.sensors import contiguous_ranges, source_change_requests


def test_contiguous_ranges_split_gaps_and_long_runs():
    assert contiguous_ranges(["003", "001", "002", "007"]) == [("001", "003"), ("007", "007")]
    assert contiguous_ranges(PREFIXES, max_len=250) == [("000", "249"), ("250", "499"), ("500", "749"),
                                                         ("750", "999")]


def test_only_changed_prefixes_are_requested_once():
    recorded = {p: f"fp{p}" for p in PREFIXES}
    assert isinstance(source_change_requests(dict(recorded), recorded, None), dg.SkipReason)
    current = {**recorded, "010": "new", "011": "new", "500": "new"}
    result = source_change_requests(current, recorded, None)
    spans = [(r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG])
             for r in result.run_requests]
    assert spans == [("010", "011"), ("500", "500")]
    # the same changed state is not requested twice while detection has not caught up
    assert isinstance(source_change_requests(current, recorded, result.cursor), dg.SkipReason)
    # a prefix whose visits vanished (recorded but no longer present) is a change too
    vanished = {p: fp for p, fp in recorded.items() if p != "999"}
    assert [r.tags[ASSET_PARTITION_RANGE_START_TAG] for r in
            source_change_requests(vanished, recorded, None).run_requests] == ["999"]
