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
    """SPEC §7: original key, value and headers unchanged, plus why and where from."""
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
            for m in messages
        ]
        if futures:
            await asyncio.gather(*futures)
