"""Process-wide tuning shared by Tally's processes (the worker, `tally api`)."""

from __future__ import annotations

import gc

GC_THRESHOLDS = (10_000, 20, 20)  # CPython's defaults: (700, 10, 10)


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the latency path.

    What is alive at start-up (modules, classes, pydantic's validators, FastAPI's routes:
    80 000 to 110 000 objects) lives as long as the process: frozen, full collections stop
    walking it. A batch's or a request's garbage is freed by reference counting; the
    collector only looks for cycles, so it runs less often. Measured on the worker at 1 000
    commands/s (docs/performance.md): collector time 1.7-1.9 s → 0.4 s per run, longest pause
    58-74 → 26-28 ms; on `tally api`, full collections of 44-430 ms went away."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
