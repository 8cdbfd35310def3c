"""Kafka output: outcomes, transfer legs and dead letters, sent as a batch, awaited together."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.codec import Headers, encode


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers


def outcome_message(topic: str, event: dict[str, Any]) -> Message:
    value, headers = encode(event)
    key = event["subject"].encode() if event.get("subject") else None
    return Message(topic, key, value, headers)


def dead_letter(
    topic: str, record: Any, reason: str, detail: str, *, max_detail: int = 512
) -> Message:
    """contract §7: original key, value and headers unchanged, plus why and where from."""
    failed_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    extra: Headers = [
        ("tally_error_reason", reason.encode()),
        ("tally_error_detail", detail[:max_detail].encode()),
        ("tally_original_topic", record.topic.encode()),
        ("tally_original_partition", str(record.partition).encode()),
        ("tally_original_offset", str(record.offset).encode()),
        ("tally_failed_at", failed_at.encode()),
    ]
    return Message(topic, record.key, record.value, [*list(record.headers or ()), *extra])


class KafkaPublisher:
    """Sends a batch without awaiting each record, then awaits every acknowledgement."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def publish(self, messages: Sequence[Message]) -> None:
        futures = [
            await self._producer.send(m.topic, m.value, key=m.key, headers=m.headers)
            if m.key is not None or m.value is not None
            else await self._send_keyless_tombstone(m)
            for m in messages
        ]
        if futures:
            await asyncio.gather(*futures)

    async def _send_keyless_tombstone(self, message: Message) -> asyncio.Future[Any]:
        # A dead letter of a record with neither key nor value keeps them null (contract §7), which
        # aiokafka's send() refuses; a batch of its own may hold such a record.
        batch = self._producer.create_batch()
        batch.append(key=None, value=None, timestamp=None, headers=message.headers)
        batch.close()
        partitions = await self._producer.partitions_for(message.topic)
        future: asyncio.Future[Any] = await self._producer.send_batch(
            batch, message.topic, partition=min(partitions)
        )
        return future
