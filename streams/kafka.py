"""aiokafka clients as Tally configures them, and topic creation."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from streams.settings import Settings

log = logging.getLogger(__name__)


class TopicError(Exception):
    """The topics cannot be used as Tally needs them (e.g. not co-partitioned)."""


def producer(settings: Settings) -> AIOKafkaProducer:
    # acks=all + idempotence: an acknowledged outcome survives a broker crash and a retried
    # send is not duplicated within the producer session (SPEC §8.1 relies on stable ids after).
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
        topics = [NewTopic(n, settings.partitions, settings.replication_factor) for n in missing]
        await client.create_topics(topics)
        log.info("created topics", extra={"topics": missing})
    described = await client.describe_topics([settings.topic_commands, settings.topic_transfers])
    counts = {t["topic"]: len(t["partitions"]) for t in described}
    if len(set(counts.values())) != 1:
        raise TopicError(
            f"{settings.topic_commands} and {settings.topic_transfers} must have the "
            f"same partition count (co-partitioned by account), found {counts}"
        )


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Revocation waits for the batch in flight, so it is committed before another owner starts."""

    def __init__(self, on_revoked: Any, on_assigned: Any) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._on_assigned(assigned)
