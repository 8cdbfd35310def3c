"""The garbage-collector settings of Tally's processes (streams/runtime.py: tune_gc)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.runtime import GC_THRESHOLDS, tune_gc

pytestmark = pytest.mark.unit

CPYTHON_DEFAULTS = (700, 10, 10)


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    assert frozen == 0, "something froze objects before the test; it cannot restore that"
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def _young_collections_while_allocating(count: int) -> int:
    """Young-generation collections run while `count` tracked containers are allocated."""
    gc.collect()  # the allocation count starts at zero
    before = gc.get_stats()[0]["collections"]
    kept: list[list[object]] = [[] for _ in range(count)]
    collections: int = gc.get_stats()[0]["collections"] - before
    del kept
    return collections


def test_start_up_objects_are_frozen_out_of_the_collectors_walks(restored_gc: None) -> None:
    survivor = [object()]  # alive before tuning, like the modules and classes of the worker
    tune_gc()

    assert gc.get_freeze_count() > 0
    assert gc.is_tracked(survivor)
    assert all(o is not survivor for o in gc.get_objects(generation=2))  # frozen: not walked
    assert gc.get_threshold() == GC_THRESHOLDS


def test_allocations_that_collect_the_young_generation_by_default_do_not_once_tuned(
    restored_gc: None,
) -> None:
    allocations = 5_000  # several of CPython's young thresholds, fewer than the tuned one
    gc.set_threshold(*CPYTHON_DEFAULTS)
    assert _young_collections_while_allocating(allocations) > 0

    tune_gc()

    assert _young_collections_while_allocating(allocations) == 0
