"""aiokafka clients as Tally configures them, and topic creation."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from streams import fetch
from streams.errors import TallyError
from streams.settings import Settings

log = logging.getLogger(__name__)


class TopicError(TallyError):
    """The topics cannot be used as Tally needs them (e.g. not co-partitioned)."""


def producer(settings: Settings) -> AIOKafkaProducer:
    # acks=all + idempotence: an acknowledged outcome survives a broker crash and a retried
    # send is not duplicated within the producer session (contract §8.1 relies on stable ids after).
    return AIOKafkaProducer(
        **settings.kafka_options,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=15000,
        client_id="tally",
    )


def consumer(settings: Settings) -> AIOKafkaConsumer:
    # Range assignment gives partition p of ledger.commands and of ledger.transfers (both keyed
    # by account, same partition count) to the same worker, so one worker owns an account.
    return AIOKafkaConsumer(
        **settings.kafka_options,
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        partition_assignment_strategy=(RangePartitionAssignor,),
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=max(settings.session_timeout_ms // 3, 100),
        max_poll_interval_ms=300000,
        fetch_max_wait_ms=100,
        client_id="tally",
    )


FRESH_FETCH_MS = 10  # how long take_arrived waits for the fetch its first take triggered


async def take_arrived(consumer: AIOKafkaConsumer, max_records: int) -> dict[Any, list[Any]]:
    """The records that have arrived by now (at most `max_records`), without waiting for more.

    aiokafka buffers one fetch response per broker and sends the next fetch only once that
    response is consumed, so what `getmany` returns at once is what had arrived when the last
    fetch was answered: under steady load, a whole batch earlier. Taking it sends the next
    fetch, which the broker answers at once with what has arrived since; waiting for that
    answer (a round trip to the broker, 1-2 ms here) saves those records a batch of latency
    (docs/performance.md). Waits at most FRESH_FETCH_MS when nothing has arrived."""
    taken = await fetch.getmany(consumer, timeout_ms=0, max_records=max_records)
    room = max_records - sum(len(records) for records in taken.values())
    if room > 0:
        more = await fetch.getmany(consumer, timeout_ms=FRESH_FETCH_MS, max_records=room)
        for tp, records in more.items():
            taken[tp] = taken.get(tp, []) + records
    return taken


async def stop(client: Any) -> None:
    """Stop an aiokafka client. A group-less consumer's stop() can raise the CancelledError of
    its own internal task (one cancelled before it ever ran); only a cancellation of the task
    calling stop() may propagate."""
    try:
        await client.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


def admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**settings.kafka_options, request_timeout_ms=5000)


async def ensure_topics(client: AIOKafkaAdminClient, settings: Settings) -> None:
    names = [
        settings.topic_commands,
        settings.topic_events,
        settings.topic_transfers,
        settings.topic_dlq,
    ]
    existing = set(await client.list_topics())
    missing = [n for n in names if n not in existing]
    if missing and settings.create_topics:
        topics = [
            NewTopic(
                n,
                settings.partitions,
                settings.replication_factor,
                topic_configs=_APPEND_TIME if n == settings.topic_commands else None,
            )
            for n in missing
        ]
        await client.create_topics(topics)
        log.info("created topics", extra={"topics": missing})
    await _warn_unless_append_time(client, settings.topic_commands)
    described = await client.describe_topics([settings.topic_commands, settings.topic_transfers])
    counts = {t["topic"]: len(t["partitions"]) for t in described}
    if len(set(counts.values())) != 1:
        raise TopicError(
            f"{settings.topic_commands} and {settings.topic_transfers} must have the "
            f"same partition count (co-partitioned by account), found {counts}"
        )


# Token times are judged at the broker's append time (contract §6): a backlog never expires a token.
_TIMESTAMP_TYPE = "message.timestamp.type"
_APPEND_TIME = {_TIMESTAMP_TYPE: "LogAppendTime"}
_CONFIG_READS = 10  # tries, half a second apart


async def _warn_unless_append_time(client: AIOKafkaAdminClient, topic: str) -> None:
    """One warning at start-up if the commands topic keeps producer timestamps."""
    values: list[str | None] = []
    for _ in range(_CONFIG_READS):  # a topic created a moment ago may not describe yet
        try:
            values = await _timestamp_types(client, topic)
        except KafkaError as exc:  # e.g. no DescribeConfigs ACL: say so, judge at processing
            log.warning(
                "cannot read the commands topic's timestamp type", extra={"error": repr(exc)}
            )
            return
        if values:
            break
        await asyncio.sleep(0.5)
    if not values:
        log.warning("cannot read the commands topic's timestamp type", extra={"topic": topic})
    elif values != ["LogAppendTime"]:
        log.warning(
            "commands topic keeps producer timestamps: token times are judged when processed, "
            "so a backlog longer than a token's life rejects it (set "
            "message.timestamp.type=LogAppendTime on the topic)",
            extra={"topic": topic, _TIMESTAMP_TYPE: values[0]},
        )


async def _timestamp_types(client: AIOKafkaAdminClient, topic: str) -> list[str | None]:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, {_TIMESTAMP_TYPE: None})
    responses = await client.describe_configs([resource])
    return [
        entry[1]
        for response in responses
        for *_, entries in response.resources
        for entry in entries
        if entry[0] == _TIMESTAMP_TYPE
    ]


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Revocation waits for the batch in flight, so it is committed before another owner starts."""

    def __init__(self, on_revoked: Any, on_assigned: Any) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._on_assigned(assigned)


class Ownership:
    """Which accounts this worker owns during a batch: both of the key's partitions assigned.

    The pipeline credits a transfer in the same batch when it owns the destination (local
    settlement). Ownership is an optimisation, not a safety property: every account write is
    version-checked, so a wrong answer costs a retried batch, never a double effect.
    """

    def __init__(self, commands_topic: str, transfers_topic: str) -> None:
        self._topics = (commands_topic, transfers_topic)
        self._owned: frozenset[int] = frozenset()
        self._count = 0

    def update(self, assignment: Iterable[Any], partition_count: int) -> None:
        """From the consumer's assignment (TopicPartitions) and the topics' partition count."""
        commands, transfers = self._topics
        mine = [(tp.topic, tp.partition) for tp in assignment]
        owned = (p for t, p in mine if t == commands and (transfers, p) in mine)
        self._owned = frozenset(owned) if partition_count > 0 else frozenset()
        self._count = partition_count

    def __call__(self, account: str) -> bool:
        return bool(self._owned) and partition_of(account, self._count) in self._owned


@functools.lru_cache(maxsize=100_000)
def partition_of(key: str, count: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as aiokafka's) gives a key."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % count
