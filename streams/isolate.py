"""A batch that keeps failing for a defect: find the records at fault, dead-letter only them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from streams.errors import is_outage
from streams.intake import failure_detail
from streams.store import ConflictError

log = logging.getLogger("tally.isolate")


class Processes(Protocol):
    """What isolation needs of the pipeline."""

    async def process(self, records: Sequence[Any], fetched_at: float) -> None: ...

    async def dead_letter(self, record: Any, reason: str, detail: str) -> None: ...

    def forget_accounts(self) -> None: ...


class Isolator:
    """Splits a failing batch in halves until each failure is one record (contract §7).

    The halves go in order, each decided, applied and flushed before the next, so every
    partition keeps its order and nothing is committed before its effects are durable (the
    caller commits the batch once this returns). A single record is tried `attempts` times;
    if it still fails, and only while the database and the broker answer (`alive` raises
    otherwise), it is dead-lettered `processing_error`. An outage or a concurrent writer
    raises out of here: the caller retries the batch as it does for any outage."""

    def __init__(
        self,
        pipeline: Processes,
        *,
        attempts: int,
        alive: Callable[[], Awaitable[None]],
        backoff: float = 0.05,
    ) -> None:
        self._pipeline = pipeline
        self._attempts = attempts
        self._alive = alive
        self._backoff = backoff

    async def run(self, records: Sequence[Any], fetched_at: float) -> int:
        """Process `records`; returns how many were dead-lettered."""
        log.warning(
            "batch keeps failing; isolating the records at fault", extra={"records": len(records)}
        )
        return await self._settle(list(records), fetched_at)

    async def _settle(self, records: list[Any], fetched_at: float) -> int:
        if len(records) == 1:
            return await self._single(records[0], fetched_at)
        if await self._tried(records, fetched_at) is None:
            return 0
        half = len(records) // 2
        first = await self._settle(records[:half], fetched_at)
        return first + await self._settle(records[half:], fetched_at)

    async def _single(self, record: Any, fetched_at: float) -> int:
        error: Exception | None = None
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(self._backoff * 2**attempt)
            error = await self._tried([record], fetched_at)
            if error is None:
                return 0
        assert error is not None
        await self._alive()  # a failing database or broker is an outage after all: raises
        detail = failure_detail(error)
        log.error(
            "record dead-lettered after repeated failures",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error": detail,
            },
        )
        await self._pipeline.dead_letter(record, "processing_error", detail)
        return 1

    async def _tried(self, records: list[Any], fetched_at: float) -> Exception | None:
        """None if `records` went through; the defect if they failed (outages raise)."""
        try:
            await self._pipeline.process(records, fetched_at)
        except ConflictError:
            self._pipeline.forget_accounts()
            raise
        except Exception as exc:
            self._pipeline.forget_accounts()
            if is_outage(exc):
                raise
            return exc
        return None
