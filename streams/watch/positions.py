"""Where the watch stands in each partition of `ledger.events`: the next offset to apply.

faust can deliver a partition's records out of line around a restart or a rebalance: a record
repeated, or one never delivered (seen here after a `kill -9`: the first record past the
committed offset skipped, and the offset committed past it). The watch applies each partition's
records strictly in offset order from its own position, kept in a changelog-backed table and
written after the batch's state; a record missing asks faust to deliver again from there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from streams.watch.tables import Shelf

log = logging.getLogger("tally.watch")

NEXT = "next"  # the key's name in the positions table: `<partition>:next`
SEEK_AGAIN_S = 2.0  # a seek asked for is given this long to take effect before another


class Broker(Protocol):
    """What positions need of the consumer (faust's, in the watch)."""

    def generation(self) -> int: ...

    async def earliest(self, partition: int) -> int: ...

    async def seek(self, partition: int, offset: int) -> None: ...


class Positions:
    def __init__(
        self,
        shelf: Shelf[int],
        broker: Broker,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._shelf = shelf
        self._broker = broker
        self._clock = clock
        self._generation: int | None = None
        self.next: dict[int, int] = {}  # partition -> next offset to apply (known ones)
        self._sought: dict[int, tuple[int, float]] = {}

    async def admit(self, records: Sequence[Any]) -> tuple[list[Any], dict[int, int]]:
        """The records to apply, in order, and each partition's next offset after them.

        A record below its partition's position was applied before (a replay); one above it
        means records are missing: the rest of that partition waits for them to come again."""
        generation = self._broker.generation()
        if generation != self._generation:  # a rebalance: what was ours may have moved on
            self._generation = generation
            self.next.clear()
            self._sought.clear()
        admitted: list[Any] = []
        nexts: dict[int, int] = {}
        gaps: dict[int, int] = {}
        for record in records:
            partition, offset = record.message.partition, record.message.offset
            if partition in gaps:
                continue
            expected = nexts.get(partition)
            if expected is None:
                expected = await self._expected(partition)
            if offset < expected:
                continue
            if offset > expected:
                gaps[partition] = expected
                continue
            admitted.append(record)
            nexts[partition] = offset + 1
        for partition, offset in gaps.items():
            await self._seek_back(partition, offset, nexts)
        return admitted, nexts

    async def write(self, nexts: dict[int, int]) -> None:
        await self._shelf.write((partition, NEXT, n) for partition, n in nexts.items())

    def advanced(self, nexts: dict[int, int]) -> None:
        self.next.update(nexts)

    async def _expected(self, partition: int) -> int:
        known = self.next.get(partition)
        if known is None:
            known = self._shelf.get(partition, NEXT)
        if known is None:  # never read this partition: from its beginning, as the group starts
            known = await self._broker.earliest(partition)
        self.next[partition] = known
        return known

    async def _seek_back(self, partition: int, offset: int, nexts: dict[int, int]) -> None:
        earliest = await self._broker.earliest(partition)
        if offset < earliest:  # gone by retention before the watch read them: nothing to ask
            log.warning(
                "records deleted before the watch read them",
                extra={"partition": partition, "from": offset, "to": earliest},
            )
            offset = earliest
            self.next[partition] = earliest
            nexts.setdefault(partition, earliest)
        sought = self._sought.get(partition)
        now = self._clock()
        if sought is not None and sought[0] == offset and now - sought[1] < SEEK_AGAIN_S:
            return
        self._sought[partition] = (offset, now)
        log.info("records missing; reading again", extra={"partition": partition, "from": offset})
        await self._broker.seek(partition, offset)


def load_next(stored: dict[str, Any]) -> int:
    return int(stored["next"])


def dump_next(offset: int) -> dict[str, Any]:
    return {"next": offset}
