"""What the console charts: outcomes per second and lag per partition over the last 15 minutes.

Both live in the API process, in memory, filled from what it sees anyway: each outcome its
replies consumer reads (every API process reads every outcome, ADR 8) counts once, and the
consumer group's lag is sampled from the broker every few seconds. A restarted API starts its
charts empty; the Prometheus metrics of the workers (contract §10a) keep the long history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from fastapi import FastAPI

from streams import kafka
from streams.settings import Settings

log = logging.getLogger("tally.api.console")
SPAN_S = 15 * 60
LAG_EVERY_S = 5.0
REJECTED = "ledger.command.rejected.v1"
OUTCOMES = ("accepted", "rejected")
Headers = list[tuple[str, bytes]]


class Rates:
    """Events per second by kind over the last `span` seconds: a ring of one-second slots,
    so counting is one increment and the memory is fixed."""

    def __init__(self, kinds: Iterable[str], span: int = SPAN_S) -> None:
        self._span = span
        self._counts = {kind: [0] * span for kind in kinds}
        self._second = [-1] * span  # which second each slot holds now

    def add(self, kind: str, now: float | None = None) -> None:
        second = int(time.time() if now is None else now)
        slot = second % self._span
        if self._second[slot] != second:  # the slot held a second that has left the window
            self._second[slot] = second
            for counts in self._counts.values():
                counts[slot] = 0
        self._counts[kind][slot] += 1

    def window(self, seconds: int, now: float | None = None) -> dict[str, list[int]]:
        """`t` (epoch seconds, oldest first) and, per kind, its count in each second."""
        last = int(time.time() if now is None else now)
        times = list(range(last - min(seconds, self._span) + 1, last + 1))
        series: dict[str, list[int]] = {"t": times}
        for kind, counts in self._counts.items():
            series[kind] = [
                counts[t % self._span] if self._second[t % self._span] == t else 0 for t in times
            ]
        return series


class Throughput(Rates):
    """Commands decided per second, by outcome, from the outcomes on `ledger.events`."""

    def __init__(self) -> None:
        super().__init__(OUTCOMES)

    def outcome(self, headers: Headers) -> None:
        kind = "accepted"
        for name, value in headers:
            if name == "ce_type" and value == REJECTED.encode():
                kind = "rejected"
        self.add(kind)


class Lag:
    """The consumer group's lag per partition, sampled every LAG_EVERY_S seconds."""

    def __init__(self, span: int = SPAN_S) -> None:
        self.samples: deque[tuple[int, dict[str, int]]] = deque(maxlen=int(span / LAG_EVERY_S))

    def record(self, lag: dict[str, int], now: float | None = None) -> None:
        self.samples.append((int(time.time() if now is None else now), lag))

    @property
    def latest(self) -> dict[str, int]:
        return self.samples[-1][1] if self.samples else {}

    def window(self, seconds: int, now: float | None = None) -> dict[str, Any]:
        """`t` and, per partition (`topic/partition`), its lag at each sample (None: unknown)."""
        since = int(time.time() if now is None else now) - seconds
        kept = [(t, lag) for t, lag in self.samples if t > since]
        names = sorted({name for _, lag in kept for name in lag}, key=_partition_order)
        return {
            "t": [t for t, _ in kept],
            "partitions": {name: [lag.get(name) for _, lag in kept] for name in names},
        }


def _partition_order(name: str) -> tuple[str, int]:
    topic, _, partition = name.rpartition("/")
    return topic, int(partition)


async def group_lag(
    admin: Any, ends_of: AIOKafkaConsumer, group: str, topics: list[str]
) -> dict[str, int]:
    """Records behind the log end per partition of `topics`, from the group's committed
    offsets (a partition without one counts from 0, as the group starts at the earliest)."""
    described = await admin.describe_topics(topics)
    partitions = sorted(
        TopicPartition(topic["topic"], p["partition"])
        for topic in described
        for p in topic["partitions"]
    )
    committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    ends = await ends_of.end_offsets(partitions)
    lag = {}
    for tp in partitions:
        done = committed.get(tp)
        start = done.offset if done is not None and done.offset >= 0 else 0
        lag[f"{tp.topic}/{tp.partition}"] = max(0, ends[tp] - start)
    return lag


async def sample_forever(state: Any, lag: Lag) -> None:
    """Until cancelled: the group's lag every LAG_EVERY_S seconds; a failure skips a sample."""
    settings: Settings = state.settings
    consumer = AIOKafkaConsumer(
        **settings.kafka_options, enable_auto_commit=False, client_id="tally-api-console"
    )
    started = False
    topics = [settings.topic_commands, settings.topic_transfers]
    try:
        while True:
            await asyncio.sleep(LAG_EVERY_S)  # the first once the API's clients had time to start
            try:
                async with asyncio.timeout(LAG_EVERY_S * 2):
                    if not started:
                        await consumer.start()
                        started = True
                    lag.record(await group_lag(state.admin, consumer, settings.group_id, topics))
            except Exception as exc:  # Kafka away, or the admin client not started yet
                log.debug("lag not sampled", extra={"error": repr(exc)[:200]})
    finally:
        if started:
            with contextlib.suppress(Exception):
                await kafka.stop(consumer)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the API's own lifespan, once its clients exist (they connect meanwhile)."""
    state = app.state
    state.replies.observers.append(state.console.throughput.outcome)
    sampler = asyncio.create_task(sample_forever(state, state.console.lag), name="console-lag")
    try:
        yield
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
