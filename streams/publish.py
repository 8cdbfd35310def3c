"""Kafka output: outcomes, transfer legs and dead letters, sent as a batch, awaited together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import OutOfOrderSequenceNumber, ProducerFenced

from streams.codec import Headers, encode

log = logging.getLogger("tally.publish")
# Errors after which aiokafka's producer fails every send (its sender task has died).
_PRODUCER_DEAD = (OutOfOrderSequenceNumber, ProducerFenced)


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
    """Sends a batch without awaiting each record, then awaits every acknowledgement.

    Owns its producer: when the idempotent producer's sender dies (an out-of-order sequence
    after a broker restart, say), aiokafka fails every later send with the same error, for
    good. The publisher then stops that producer and starts a new one (a new producer id);
    the batch that saw the error is retried as after any outage."""

    def __init__(self, make_producer: Callable[[], AIOKafkaProducer]) -> None:
        self._make_producer = make_producer
        self._producer = make_producer()
        self._started = False

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, messages: Sequence[Message]) -> None:
        if not self._started:  # a renewal whose start failed (the broker was down)
            await self.start()
        try:
            futures = [
                await self._producer.send(m.topic, m.value, key=m.key, headers=m.headers)
                if m.key is not None or m.value is not None
                else await self._send_keyless_tombstone(m)
                for m in messages
            ]
            if futures:
                await asyncio.gather(*futures)
        except _PRODUCER_DEAD:
            await self._renew()
            raise

    async def _renew(self) -> None:
        log.warning("the producer cannot send any more; starting a new one")
        old, self._producer, self._started = self._producer, self._make_producer(), False
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await old.stop()
        await self.start()

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
