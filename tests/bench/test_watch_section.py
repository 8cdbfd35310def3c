"""The watch section's arithmetic: rates, CPU per 1,000 events, lag and the keep-up verdict."""

import math

import pytest

from tests.bench.watch_figures import KEEP_UP_SECONDS, Phase, WatchFigures

pytestmark = pytest.mark.bench


def test_rates_and_cpu_are_per_event_and_per_command() -> None:
    phase = Phase(events=20_000, seconds=4.0, cpu_seconds=3.0, commands=16_000)
    assert phase.per_s == 5_000
    assert phase.cpu_s_per_1000 == 0.15
    assert phase.worker_per_s == 4_000


def test_a_watch_that_catches_up_within_a_second_of_the_drain_s_end_keeps_up() -> None:
    assert Phase(1, 1.0, 0.0, lag_at_end=1500, catch_up_seconds=KEEP_UP_SECONDS).keeps_up
    assert not Phase(1, 1.0, 0.0, lag_at_end=10, catch_up_seconds=KEEP_UP_SECONDS + 0.1).keeps_up


def test_no_events_give_no_rate_rather_than_a_division_by_zero() -> None:
    assert math.isnan(Phase(0, 0.0, 0.0).per_s)
    assert math.isnan(Phase(0, 1.0, 0.0).cpu_s_per_1000)


def test_the_report_names_the_lag_and_the_verdict() -> None:
    figures = WatchFigures(
        alone=Phase(50_000, 10.0, 6.0),
        drain=Phase(20_300, 5.0, 2.0, 20_000, lag_at_end=120, catch_up_seconds=0.05),
        alerts=7,
        peak_rss_mib=150.0,
    )
    text = "\n".join(figures.lines())
    assert "5,000/s" in text and "lag at the end of the drain 120 records" in text
    assert "kept up" in text
    assert figures.as_dict()["keeps_up"] is True
    assert figures.as_dict()["drain"]["cpu_s_per_1000_events"] == 0.099
