"""The open loop's batch figures are read from the worker's own counters."""

import pytest

from tests.bench.run import _batches

pytestmark = pytest.mark.bench


def test_account_updates_per_record_counts_only_account_updates_of_the_interval() -> None:
    before = {
        "tally_batch_size_count": 1.0,
        "tally_batch_size_sum": 100.0,
        'tally_mongo_writes_total{operation="accounts",kind="update"}': 500.0,
    }
    after = {
        "tally_batch_size_count": 3.0,
        "tally_batch_size_sum": 140.0,  # 40 records since
        'tally_mongo_writes_total{operation="accounts",kind="update"}': 562.0,  # 62 updates
        'tally_mongo_writes_total{operation="accounts",kind="insert"}': 9.0,  # opened: not counted
        'tally_mongo_writes_total{operation="entries",kind="insert"}': 80.0,
    }

    found = _batches(before, after)

    assert found["batches"] == 2
    assert found["mean_records"] == 20
    assert found["account_updates_per_record"] == pytest.approx(62 / 40)


def test_no_records_no_division() -> None:
    assert _batches({}, {})["account_updates_per_record"] == 0.0
