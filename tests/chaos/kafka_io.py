"""Kafka seen from outside Tally: topics, the chaos producer, outcome tail, group lag."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import murmur2

from tests.chaos.messages import Message


@dataclass(frozen=True, slots=True)
class Seen:
    """One record read from the events or dlq topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp: float  # the record's create time (epoch seconds): when the worker sent it
    arrived: float  # time.monotonic() when the tail read it


def partition_of(key: bytes, partitions: int) -> int:
    """The partition the Java and aiokafka default partitioner picks for a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def keys_per_partition(prefix: str, partitions: int) -> list[str]:
    """One key that lands on each partition, so a probe reaches every partition."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < partitions:
        key = f"{prefix}{n}"
        found.setdefault(partition_of(key.encode(), partitions), key)
        n += 1
    return [found[p] for p in range(partitions)]


async def admin(bootstrap: str) -> AIOKafkaAdminClient:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await client.start()
    return client


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    client = await admin(bootstrap)
    try:
        await client.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await client.close()


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    client = await admin(bootstrap)
    try:
        await client.delete_topics(names)
    finally:
        await client.close()


class Producer:
    """acks=all, idempotent; waits out broker outages instead of failing the send."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=600_000,  # a broker outage pauses the traffic, never drops it
            max_request_size=1_048_576,
        )
        self.sent: dict[str, float] = {}  # command id -> first send (monotonic)
        self.count = 0

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send_all(self, messages: list[Message]) -> None:
        """Send in order; returns when the broker acknowledged every one."""
        futures = []
        for m in messages:
            self.sent.setdefault(m.id, time.monotonic())
            futures.append(
                await self._producer.send(self.topic, m.value, key=m.key, headers=m.headers)
            )
            self.count += 1
        await asyncio.gather(*futures)


@dataclass(slots=True)
class Tail:
    """Follows the events and dlq topics from the beginning, as a downstream consumer would."""

    bootstrap: str
    topics: list[str]
    records: dict[str, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    by_correlation: dict[str, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    by_poison: dict[str, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100
        )
        await consumer.start()
        partitions = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in sorted(await _partitions(consumer, topic))
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        self._task = asyncio.create_task(self._run(consumer))

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=2000)
                now = time.monotonic()
                for records in batch.values():
                    for r in records:
                        self._add(_seen(r, now))
        finally:
            await consumer.stop()

    def _add(self, seen: Seen) -> None:
        self.records[seen.topic].append(seen)
        if (corr := seen.headers.get("ce_correlationid")) is not None:
            self.by_correlation[corr.decode()].append(seen)
        if (pid := seen.headers.get("chaos_poison")) is not None:
            self.by_poison[pid.decode()].append(seen)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _seen(record: Any, now: float) -> Seen:
    return Seen(
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value,
        dict(record.headers or ()),
        record.timestamp / 1000,
        now,
    )


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(100):
        cluster = await consumer._client.fetch_all_metadata()  # no public refresh
        found = cluster.partitions_for_topic(topic)
        if found:
            return set(found)
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no partitions")


async def read_all(bootstrap: str, topic: str) -> list[Seen]:
    """Every record of a topic up to its current end, read by a fresh consumer."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[Seen] = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            now = time.monotonic()
            out += [_seen(r, now) for records in batch.values() for r in records]
        return out
    finally:
        await consumer.stop()


async def group_lag(bootstrap: str, group: str, topics: list[str]) -> dict[str, int]:
    """Per `topic:partition`: log end offset minus the group's committed offset."""
    client = await admin(bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        committed = await client.list_consumer_group_offsets(group)
        tps = [TopicPartition(t, p) for t in topics for p in sorted(await _partitions(consumer, t))]
        end = await consumer.end_offsets(tps)
        lag = {}
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag[f"{tp.topic}:{tp.partition}"] = end[tp] - done
        return lag
    finally:
        await consumer.stop()
        await client.close()
