"""Offsets, committed in batch order without holding up the loop; and the lag they leave."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from aiokafka.errors import KafkaError

from streams import metrics

log = logging.getLogger("tally.worker")
_LAG_TIMEOUT_S = 2.0  # a retry waits no longer for the log ends


class Committing(Protocol):
    """What commits need of the consumer."""

    async def commit(self, offsets: dict[Any, int]) -> None: ...

    def assignment(self) -> set[Any]: ...

    def highwater(self, tp: Any) -> int | None: ...

    async def end_offsets(self, partitions: list[Any]) -> dict[Any, int]: ...

    async def committed(self, tp: Any) -> int | None: ...


class Commits:
    """One commit in flight at most; each waits for the one before, so they stay in order.

    A failed commit is logged, never raised: effects and outcomes are durable and idempotent,
    so a lost commit only means the next owner re-reads records it finds already decided."""

    def __init__(self, consumer: Committing) -> None:
        self._consumer = consumer
        self._committed: dict[Any, int] = {}
        self._task: asyncio.Future[None] | None = None

    async def commit(self, offsets: dict[Any, int]) -> None:
        """Start committing `offsets` once the commit before has ended; returns at once."""
        await self.settle()
        self._task = asyncio.ensure_future(self._commit(offsets))

    async def settle(self) -> None:
        """Wait for the commit in flight, if any."""
        task, self._task = self._task, None
        if task is not None:
            await asyncio.wait([task])

    def forget(self, revoked: Iterable[Any]) -> None:
        """Partitions another worker owns from now on: their offsets and lag are not ours."""
        for tp in revoked:
            self._committed.pop(tp, None)
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(tp.topic, str(tp.partition))

    def update_lag(self) -> None:
        """`tally_consumer_lag`: the log end less what is committed, per partition owned."""
        for tp in self._consumer.assignment():
            self._set_lag(tp, self._consumer.highwater(tp))

    async def refresh_lag(self) -> None:
        """The lag from log ends asked of the broker. While a batch is retried nothing is
        fetched, so the fetched high-water marks stand still; the lag must not (an alert on
        a growing lag is how a stuck worker is noticed). Without an answer, it stays as it was."""
        owned = list(self._consumer.assignment())
        if not owned:
            return
        try:
            async with asyncio.timeout(_LAG_TIMEOUT_S):
                ends = await self._consumer.end_offsets(owned)
                for tp in owned:  # a partition not committed by this worker yet: the group's
                    if tp not in self._committed:
                        self._committed[tp] = await self._consumer.committed(tp) or 0
        except Exception as exc:  # the broker away: nothing new to say about the lag
            log.debug("lag not refreshed", extra={"error": repr(exc)[:200]})
            return
        for tp, high in ends.items():
            self._set_lag(tp, high)

    def _set_lag(self, tp: Any, high: int | None) -> None:
        committed = self._committed.get(tp)
        if high is not None and committed is not None:
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(high - committed, 0))

    async def _commit(self, offsets: dict[Any, int]) -> None:
        # Only partitions still ours: a batch that outlived its revocation (it held the loop
        # through an outage) must not commit over the next owner's newer offsets.
        owned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in owned}
        if not offsets:
            return
        try:
            with metrics.BATCH_STAGE_SECONDS.labels("commit").time():
                await self._consumer.commit(offsets)
            self._committed |= offsets
        except KafkaError as exc:
            log.warning("offset commit failed", extra={"error": repr(exc)[:200]})
