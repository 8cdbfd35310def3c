"""Preloading records into a topic, and collecting outcome events by correlation id."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.bench.infra import PARTITIONS
from tests.bench.progress import Progress
from tests.bench.workload import Record

REJECTED = "ledger.command.rejected.v1"


def bench_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=512 * 1024
    )


async def preload(bootstrap: str, topic: str, records: Iterable[Record], total: int) -> None:
    producer = bench_producer(bootstrap)
    await producer.start()
    try:
        pending: list[Any] = []
        with Progress(f"preload {topic.rsplit('.', 1)[-1]}", total) as bar:
            for done, r in enumerate(records, 1):
                pending.append(await producer.send(topic, r.value, key=r.key, headers=r.headers))
                if len(pending) >= 2000:
                    await asyncio.gather(*pending)
                    pending.clear()
                    bar.update(done)
            await asyncio.gather(*pending)
            bar.update(total)
    finally:
        await producer.stop()


@dataclass(frozen=True, slots=True)
class Outcome:
    correlation_id: str
    type: str
    timestamp_ms: int  # the outcome record's timestamp (set by the worker's producer)
    arrived: float  # wall clock when the collector read it


class Outcomes:
    """Reads every partition of the events topic in the background, first outcome per id."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        # Fetches gather 256 kB or 100 ms of outcomes: latency is read from the outcome
        # records' own timestamps, so when this process reads them changes no figure, and a
        # fetch per handful of records cost this process and the broker ~0.08 cores, taken from
        # Tally on the same 2 cores (docs/performance.md).
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
            fetch_min_bytes=256 * 1024,
        )
        self._topic = topic
        self.seen: dict[str, Outcome] = {}
        self._wanted: set[str] = set()
        self._found = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        tps = [TopicPartition(self._topic, p) for p in range(PARTITIONS)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._pump())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _pump(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=50, max_records=5000)
            arrived = time.time()
            for records in batch.values():
                for r in records:
                    self._note(r, arrived)

    def _note(self, record: Any, arrived: float) -> None:
        headers = dict(record.headers or ())
        cid = headers.get("ce_correlationid", b"").decode()
        if not cid or cid in self.seen:
            return
        kind = headers.get("ce_type", b"").decode()
        self.seen[cid] = Outcome(cid, kind, record.timestamp, arrived)
        if cid in self._wanted:
            self._found += 1

    async def wait_for(self, ids: Iterable[str], label: str, timeout: float) -> list[Outcome]:
        """Waits until every id has an outcome; returns them."""
        self._wanted = set(ids)
        self._found = sum(1 for i in self._wanted if i in self.seen)
        deadline = time.monotonic() + timeout
        with Progress(label, len(self._wanted)) as bar:
            while self._found < len(self._wanted):
                if time.monotonic() > deadline:
                    missing = len(self._wanted) - self._found
                    raise TimeoutError(f"{label}: {missing} outcomes missing after {timeout:.0f}s")
                bar.update(self._found)
                await asyncio.sleep(0.01)
            bar.update(self._found)
        return [self.seen[i] for i in self._wanted]
