"""A batch taken from the consumer holds what has arrived by then, not what had arrived when
the previous fetch was answered (streams.kafka.take_arrived, docs/performance.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.kafka import take_arrived
from tests.chaos.kafka_io import create_topics, delete_topics
from tests.conftest import KAFKA_BOOTSTRAP, eventually
from tests.integration.kit import group_consumer

pytestmark = pytest.mark.integration


def _values(taken: dict[Any, list[Any]]) -> list[bytes]:
    return [r.value for records in taken.values() for r in records]


@pytest.fixture
async def clients(unique_name: str) -> AsyncIterator[tuple[AIOKafkaProducer, AIOKafkaConsumer]]:
    await create_topics(KAFKA_BOOTSTRAP, [unique_name], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA_BOOTSTRAP, acks="all")
    await producer.start()
    consumer = await group_consumer(unique_name)
    try:
        yield producer, consumer
    finally:
        await consumer.stop()
        await producer.stop()
        await delete_topics(KAFKA_BOOTSTRAP, [unique_name])


async def _one_answered_fetch_then_two_more(
    producer: AIOKafkaProducer, consumer: AIOKafkaConsumer, topic: str
) -> None:
    """r0 consumed; r1 answers the fetch that consumption sent and waits in the consumer's
    buffer; r2 and r3 arrive after it, with no fetch in flight to bring them."""
    await producer.send_and_wait(topic, b"r0")
    async with asyncio.timeout(30):
        while _values(await consumer.getmany(timeout_ms=1000)) != [b"r0"]:
            pass
    await producer.send_and_wait(topic, b"r1")
    # The pending fetch is answered with r1: the answer's high watermark (after r1) is noted
    # as the answer is buffered.
    tp = TopicPartition(topic, 0)
    await eventually(lambda: consumer.highwater(tp) == 2, "the fetch answered with r1")
    await producer.send_and_wait(topic, b"r2")
    await producer.send_and_wait(topic, b"r3")
    # On purpose, time passes: a consumer that fetched again unasked would bring r2 and r3
    # meanwhile, and the tests would say so. Nothing to poll for: it is what must not happen.
    await asyncio.sleep(0.5)


async def test_getmany_alone_returns_only_what_the_last_fetch_brought(
    clients: tuple[AIOKafkaProducer, AIOKafkaConsumer], unique_name: str
) -> None:
    # The behaviour take_arrived works around; if aiokafka changes it, this test says so.
    producer, consumer = clients
    await _one_answered_fetch_then_two_more(producer, consumer, unique_name)
    assert _values(await consumer.getmany(timeout_ms=0, max_records=100)) == [b"r1"]


async def test_take_arrived_returns_everything_that_has_arrived(
    clients: tuple[AIOKafkaProducer, AIOKafkaConsumer], unique_name: str
) -> None:
    producer, consumer = clients
    await _one_answered_fetch_then_two_more(producer, consumer, unique_name)
    assert _values(await take_arrived(consumer, 100)) == [b"r1", b"r2", b"r3"]


async def test_take_arrived_keeps_to_max_records(
    clients: tuple[AIOKafkaProducer, AIOKafkaConsumer], unique_name: str
) -> None:
    producer, consumer = clients
    await _one_answered_fetch_then_two_more(producer, consumer, unique_name)
    assert _values(await take_arrived(consumer, 2)) == [b"r1", b"r2"]
    assert _values(await take_arrived(consumer, 100)) == [b"r3"]


async def test_take_arrived_does_not_wait_for_records_when_nothing_arrived(
    clients: tuple[AIOKafkaProducer, AIOKafkaConsumer], unique_name: str
) -> None:
    producer, consumer = clients
    await producer.send_and_wait(unique_name, b"r0")
    async with asyncio.timeout(30):
        while _values(await consumer.getmany(timeout_ms=1000)) != [b"r0"]:
            pass
    async with asyncio.timeout(5):  # it returns empty-handed; it never waits for records
        assert _values(await take_arrived(consumer, 100)) == []
