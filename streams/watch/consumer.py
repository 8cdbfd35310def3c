"""What the watch asks of faust's consumer: the partitions it holds, where they end, seeks
back; readiness and `tally_watch_lag` from them."""

from __future__ import annotations

import logging
from typing import Any, cast

import faust

from streams import metrics
from streams.health import Health
from streams.watch.process import Watcher

log = logging.getLogger("tally.watch")


class Consumer:
    """The positions' view of faust's consumer (streams.watch.positions.Broker)."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self._app = app
        self._topic = topic

    def generation(self) -> int:
        return self._app.consumer_generation_id

    async def earliest(self, partition: int) -> int:
        tp = faust.types.TP(self._topic, partition)
        found = await self._app.consumer.earliest_offsets(tp)
        return found[tp]

    async def seek(self, partition: int, offset: int) -> None:
        await self._app.consumer.seek(faust.types.TP(self._topic, partition), offset)


class Owned:
    """The partitions of `ledger.events` this watch holds now (none while not running)."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self._app = app
        self.topic = topic

    def __call__(self) -> frozenset[int]:
        try:
            assignment = self._app.consumer.assignment()
        except Exception:  # not started, or stopping
            return frozenset()
        return frozenset(tp.partition for tp in assignment if tp.topic == self.topic)


class Observer:
    """Readiness, and `tally_watch_lag` from the broker's log ends and what was processed."""

    def __init__(self, app: faust.App, owned: Owned, watcher: Watcher, health: Health) -> None:
        self._app = app
        self._owned = owned
        self._watcher = watcher
        self._health = health
        self._reported: set[int] = set()  # partitions with a lag series
        self._announced = False

    async def __call__(self) -> None:
        app, health = self._app, self._health
        health.set("consumer_group", "rebalancing" if app.rebalancing else None)
        # The TableManager's recovery: `completed` is set once the tables are restored.
        recovery: Any = cast(Any, app.tables).recovery
        restoring = app.in_recovery or not recovery.completed.is_set()
        health.set("recovery", "restoring tables from their changelogs" if restoring else None)
        try:
            await self._lag()
        except Exception as exc:  # the broker away: not ready, and the lag as it was
            health.set("kafka", f"{type(exc).__name__}: {exc}"[:200])
            return
        health.set("kafka", None)
        if health.ready and not self._announced:
            self._announced = True
            log.info("watch ready", extra={"partitions": sorted(self._owned())})

    async def _lag(self) -> None:
        topic, partitions = self._owned.topic, self._owned()
        tps = [faust.types.TP(topic, p) for p in sorted(partitions)]
        ends = await self._app.consumer.highwaters(*tps) if tps else {}
        for tp, end in ends.items():
            position = self._watcher.positions.next.get(tp.partition)
            if position is None:  # nothing processed since start: where the consumer stands
                position = await self._app.consumer.position(tp) or 0
            metrics.WATCH_LAG.labels(topic, str(tp.partition)).set(max(end - position, 0))
        for gone in self._reported - partitions:
            metrics.WATCH_LAG.remove(topic, str(gone))
        self._reported = set(partitions)
