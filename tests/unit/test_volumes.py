"""Live volumes of the watch (contract §16): tumbling minutes per currency and outcome type."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.volumes import MINUTE_US, Bucket, Volume, add, minute_of, since, totals

pytestmark = pytest.mark.unit

M0 = 29_000_000 * MINUTE_US  # a minute boundary


@given(st.integers(min_value=0, max_value=2**62))
def test_a_time_falls_in_the_minute_that_starts_at_most_a_minute_before(at: int) -> None:
    start = minute_of(at)
    assert start % MINUTE_US == 0
    assert start <= at < start + MINUTE_US


def test_an_offset_already_counted_is_not_counted_again() -> None:
    volume = add(add(Volume(), 500, 7), 300, 8)
    assert add(volume, 300, 8) == volume == Volume(count=2, amount=800, offset=8)


def test_the_last_n_minutes_include_the_current_one() -> None:
    assert since(M0 + 30 * 1_000_000, 1) == M0
    assert since(M0 + 30 * 1_000_000, 3) == M0 - 2 * MINUTE_US


def test_totals_sum_the_partitions_and_keep_only_the_minutes_asked_for() -> None:
    eur = Bucket(M0, "EUR", "ledger.deposited.v1")
    old = Bucket(M0 - MINUTE_US, "EUR", "ledger.deposited.v1")
    usd = Bucket(M0, "USD", "ledger.withdrawn.v1")
    found = [
        (eur, Volume(2, 200, 5)),
        (eur, Volume(1, 50, 9)),  # the same bucket in another partition
        (old, Volume(4, 400, 3)),
        (usd, Volume(1, 7, 2)),
    ]
    summed = [(bucket, v.count, v.amount) for bucket, v in totals(found, M0)]
    assert summed == [(eur, 3, 250), (usd, 1, 7)]
