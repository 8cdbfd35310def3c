"""The API section's arithmetic: percentiles, client counts, CPU shares and the two targets."""

import asyncio
import os
import random

import pytest

from tests.bench.api_figures import ApiFigures
from tests.bench.loads import Timings, closed_loop, fitted_clients, percentile
from tests.bench.openloop import Latencies
from tests.bench.usage import Snapshot, Usage, combined, machine_busy, usage
from tests.bench.wrk import WrkRun

pytestmark = pytest.mark.bench


def test_percentile_is_the_nearest_rank_of_sorted_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 51.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0


def test_percentile_of_nothing_is_nan() -> None:
    assert percentile([], 99) != percentile([], 99)


def test_fast_calls_keep_every_client() -> None:
    assert fitted_clients(32, 15.0, one_call=0.002, servers=2) == 32


def test_slow_calls_get_as_many_clients_as_finish_four_calls_each() -> None:
    # 2 servers, 0.5 s a call: 15 clients wait ~3.75 s a call, 4 calls in 15 s.
    assert fitted_clients(32, 15.0, one_call=0.5, servers=2) == 15


def test_a_call_slower_than_the_window_still_keeps_every_core_of_the_server_busy() -> None:
    assert fitted_clients(32, 15.0, one_call=40.0, servers=2) == 2
    assert fitted_clients(1, 15.0, one_call=40.0, servers=2) == 1


def test_reads_per_second_count_calls_of_the_window() -> None:
    assert Timings(10.0, [1.0] * 250).per_s == 25.0


async def test_closed_loop_counts_calls_of_the_window_only() -> None:
    calls = 0

    async def call(rng: random.Random) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)

    found = await closed_loop(2, 0.1, call, warmup=0.05)

    assert 0 < len(found.millis) < calls  # the warm-up's calls are not counted
    assert found.errors == 0


async def test_closed_loop_counts_failures_apart() -> None:
    async def call(rng: random.Random) -> None:
        await asyncio.sleep(0.01)
        raise LookupError("nope")

    found = await closed_loop(1, 0.05, call, warmup=0.0)

    assert found.millis == []
    assert found.errors > 0
    assert "LookupError" in found.first_error


def test_machine_busy_leaves_out_idle_and_iowait() -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice (guest is within user)
    stat = "cpu  100 0 50 1000 30 5 5 10 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
    assert machine_busy(stat) == pytest.approx(170 / os.sysconf("SC_CLK_TCK"))


def test_usage_is_cpu_seconds_per_wall_second() -> None:
    before = Snapshot(10.0, {"api": 1.0, "database": 2.0}, 100.0)
    after = Snapshot(12.0, {"api": 3.0, "database": 2.5}, 103.8)

    used = usage(before, after, cpus=2)

    assert used.cores == {"api": 1.0, "database": 0.25}
    assert used.machine == pytest.approx(1.9)
    assert used.others == pytest.approx(0.65)


def test_a_process_gone_mid_section_leaves_the_others_counted() -> None:
    used = Usage(10.0, {"api": 0.5, "database": float("nan")}, 1.5, 2)
    assert used.others == pytest.approx(1.0)


def test_a_one_thread_process_at_one_core_is_named_as_the_bound() -> None:
    used = Usage(10.0, {"api": 0.97, "database": 0.4, "kafka": 0.95}, 1.5, 2)
    assert used.bound() == "api CPU-bound (0.97 cores on one thread)"


def test_a_busy_machine_is_named_as_the_bound() -> None:
    used = Usage(10.0, {"api": 0.6, "database": 0.9}, 1.95, 2)
    assert used.bound().startswith("machine saturated (1.95 of 2 cores busy; most: database")


def test_no_cpu_bound_means_waiting() -> None:
    assert "no CPU bound" in Usage(10.0, {"api": 0.2}, 0.5, 2).bound()


def _figures() -> ApiFigures:
    figures = ApiFigures(32, 15.0, 50.0, 10, 50, "aiohttp")
    figures.reads = {
        "api_account": Timings(10.0, [5.0] * 6_000),
        "pymongo_account": Timings(10.0, [2.0] * 10_000),
        "api_entries": Timings(10.0, [50.0] * 400),
        "pymongo_entries": Timings(10.0, [20.0] * 1_000),
    }
    figures.request_reply = Timings(20.0, sorted([30.0] * 98 + [120.0, 130.0]))
    figures.worker = Latencies(50.0, 50.0, 100, sorted([20.0] * 98 + [60.0, 70.0]), [], [])
    return figures


def test_read_ratios_are_api_over_pymongo() -> None:
    figures = _figures()
    assert figures.read_ratio("account") == pytest.approx(0.6)
    assert figures.read_ratio("entries") == pytest.approx(0.4)


def test_reply_excess_is_the_difference_of_the_p99s() -> None:
    assert _figures().reply_excess_ms() == pytest.approx(120.0 - 60.0)


def test_the_table_says_which_target_is_met() -> None:
    text = "\n".join(_figures().lines())
    assert "API ÷ PyMongo, account: 0.600   (target ≥ 0.5: met)" in text
    assert "API ÷ PyMongo, entries: 0.400   (target ≥ 0.5: not met)" in text
    assert "= 60.0 ms   (target ≤ 50 ms: not met)" in text


def test_a_read_without_a_baseline_has_no_ratio() -> None:
    figures = ApiFigures(32, 15.0, 50.0, 10, 50, "aiohttp")
    figures.reads = {"api_account": Timings(10.0, [1.0]), "pymongo_account": Timings(10.0, [])}
    assert figures.read_ratio("account") != figures.read_ratio("account")


def test_windows_merge_into_one_measurement() -> None:
    merged = Timings.merged(
        [Timings(2.0, [1.0, 3.0]), Timings(1.0, [2.0], errors=1, first_error="boom")]
    )
    assert (merged.seconds, merged.millis, merged.per_s) == (3.0, [1.0, 2.0, 3.0], 1.0)
    assert (merged.errors, merged.first_error) == (1, "boom")


def test_wrk_runs_merge_with_their_median_p50_and_highest_p99() -> None:
    runs = [WrkRun(5.0, 500, p50, p99, cpu_seconds=0.1) for p50, p99 in ((2, 9), (1, 20), (3, 7))]
    merged = WrkRun.merged(runs)
    assert (merged.per_s, merged.p(50), merged.p(99)) == (100.0, 2, 20)
    assert merged.cpu_seconds == pytest.approx(0.3)


def test_usages_combine_weighted_by_their_windows() -> None:
    short = Usage(1.0, {"api": 0.4}, 1.0, 2)
    long = Usage(3.0, {"api": 0.8, "wrk": 0.1}, 2.0, 2)
    both = combined([short, long])
    assert both.seconds == 4.0
    assert both.cores == pytest.approx({"api": 0.7, "wrk": 0.075})
    assert both.machine == pytest.approx(1.75)
