"""The worker's garbage-collector settings (streams/app.py: tune_gc)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.app import GC_THRESHOLDS, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_start_up_objects_are_frozen_and_young_collections_are_rarer(restored_gc: None) -> None:
    survivor = [object()]  # alive before tuning, like the modules and classes of the worker
    tune_gc()

    assert gc.get_freeze_count() > 0
    assert gc.is_tracked(survivor)
    assert all(o is not survivor for o in gc.get_objects(generation=2))  # frozen: not walked
    assert gc.get_threshold() == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700  # fewer young collections than CPython's default
