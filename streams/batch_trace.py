"""What the worker's pipeline asks of tracing, per batch; and the nothing it gets when tracing is
off: a few empty calls per batch, none per message (ADR 9)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from streams.batch import BatchDecider, Loaded
from streams.intake import DeadItem
from streams.settings import Settings
from streams.tracing import enabled, provider


class BatchTrace(Protocol):
    """The spans of one batch (streams/traced.py), or none (`UNTRACED`)."""

    def decider(
        self, loaded: Loaded, *, now: datetime, source: str, currencies: frozenset[str]
    ) -> BatchDecider: ...

    def stage(self, name: str) -> contextlib.AbstractContextManager[None]: ...

    def dead(self, items: Sequence[DeadItem]) -> None: ...

    def end(self, error: BaseException | None = None) -> None: ...


class Tracing(Protocol):
    """The worker's tracing: a BatchTrace per batch."""

    def batch(self, size: int, fetched_at: float) -> BatchTrace: ...

    def close(self, timeout: float) -> None: ...


class _UntracedBatch:
    """Tracing off: the plain decider, and nothing else."""

    _stage = contextlib.nullcontext()

    def decider(
        self, loaded: Loaded, *, now: datetime, source: str, currencies: frozenset[str]
    ) -> BatchDecider:
        return BatchDecider(loaded, now=now, source=source, currencies=currencies)

    def stage(self, name: str) -> contextlib.AbstractContextManager[None]:
        return self._stage

    def dead(self, items: Sequence[DeadItem]) -> None:
        return None

    def end(self, error: BaseException | None = None) -> None:
        return None


class _Untraced:
    def batch(self, size: int, fetched_at: float) -> BatchTrace:
        return UNTRACED_BATCH

    def close(self, timeout: float) -> None:
        return None


UNTRACED_BATCH: BatchTrace = _UntracedBatch()
UNTRACED: Tracing = _Untraced()


def worker_tracing(settings: Settings) -> Tracing:
    """The worker's tracing as the OTEL_* variables ask (service name `tally`)."""
    if not enabled():
        return UNTRACED
    from streams.traced import Traced  # the SDK is imported only when tracing is on

    return Traced(provider("worker"), settings)
