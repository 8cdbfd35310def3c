"""A batch of records as the worker's loop holds it, and the flush that runs beside the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streams.errors import TallyError
from streams.pipeline import Decided


@dataclass(slots=True)
class Batch:
    """Records fetched together, by partition; maybe decided while the previous one flushed."""

    by_partition: dict[Any, list[Any]]
    fetched_at: float
    decided: Decided | None = None
    defects: int = 0  # attempts failed for a defect (not an outage), flushes included

    @property
    def records(self) -> list[Any]:
        return [r for records in self.by_partition.values() for r in records]

    def extend(self, fetched: dict[Any, list[Any]]) -> None:
        """Records fetched later (never decided yet), after these in each partition."""
        assert self.decided is None
        for tp, records in fetched.items():
            self.by_partition[tp] = self.by_partition.get(tp, []) + records

    def prepend(self, earlier: Batch) -> None:
        """A batch fetched before this one whose flush failed: both are decided again."""
        for tp, records in earlier.by_partition.items():
            self.by_partition[tp] = records + self.by_partition.get(tp, [])
        self.fetched_at = min(self.fetched_at, earlier.fetched_at)
        self.decided = None
        self.defects = max(self.defects, earlier.defects)

    def keep(self, owned: set[Any]) -> None:
        """Only the records of partitions in `owned`; a batch that lost some is undecided."""
        kept = {tp: records for tp, records in self.by_partition.items() if tp in owned}
        if kept.keys() != self.by_partition.keys():
            self.by_partition, self.decided = kept, None

    @property
    def offsets(self) -> dict[Any, int]:
        return {tp: rs[-1].offset + 1 for tp, rs in self.by_partition.items() if rs}


@dataclass(slots=True)
class Flushing:
    """A batch applied (durable in its accounts) whose flush runs while the next one is
    decided and applied; its offsets are committed once the flush has succeeded."""

    batch: Batch
    task: asyncio.Future[None]

    @property
    def error(self) -> BaseException | None:
        """Why the (finished) flush failed; None if it succeeded."""
        if self.task.cancelled():  # not a cancellation of whoever raises it again
            return RuntimeError("flush cancelled")
        return self.task.exception()


class PreviousFlushFailedError(TallyError):
    """The batch before this one did not flush: both are decided again, together."""


class Batches(Protocol):
    """What the loop needs of the pipeline (streams.pipeline.Pipeline)."""

    generation: int

    async def decide(self, records: Sequence[Any], fetched_at: float) -> Decided: ...

    async def apply(self, decided: Decided) -> None: ...

    async def flush(self, decided: Decided) -> None: ...

    async def process(self, records: Sequence[Any], fetched_at: float) -> None: ...

    async def dead_letter(self, record: Any, reason: str, detail: str) -> None: ...

    def forget_accounts(self) -> None: ...
