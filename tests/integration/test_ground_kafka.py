"""Ground truth for the local Kafka broker: topics, produce and consume with headers."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.kafka import partition_of
from tests.conftest import KAFKA_BOOTSTRAP
from tests.integration.kit import group_consumer

pytestmark = pytest.mark.integration


async def test_a_created_topic_has_the_partitions_asked_for(unique_name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(unique_name, num_partitions=3, replication_factor=1)])
        # The controller answers the creation before every broker's metadata has the topic.
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            described = await admin.describe_topics([unique_name])
            if described[0]["partitions"] or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)
        assert len(described[0]["partitions"]) == 3
        await admin.delete_topics([unique_name])
    finally:
        await admin.close()


async def test_records_come_back_in_order_with_key_and_headers(unique_name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(unique_name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=KAFKA_BOOTSTRAP, acks="all")
    await producer.start()
    try:
        for i in range(5):
            headers = [("ce_id", f"evt-{i}".encode()), ("content-type", b"application/json")]
            await producer.send_and_wait(
                unique_name, f'{{"n": {i}}}'.encode(), key=b"acct-1", headers=headers
            )
    finally:
        await producer.stop()

    consumer = await group_consumer(unique_name)
    try:
        records: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(30):
            while len(records) < 5:
                batch = await consumer.getmany(timeout_ms=1000)
                records += [r for rs in batch.values() for r in rs]
        await consumer.commit()
    finally:
        await consumer.stop()

    assert [r.value for r in records] == [f'{{"n": {i}}}'.encode() for i in range(5)]
    assert {r.key for r in records} == {b"acct-1"}
    assert [dict(r.headers)["ce_id"] for r in records] == [f"evt-{i}".encode() for i in range(5)]
    assert dict(records[0].headers)["content-type"] == b"application/json"


async def test_the_producer_puts_an_account_on_the_partition_ownership_expects(
    unique_name: str,
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(unique_name, num_partitions=6, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA_BOOTSTRAP, acks="all")
    await producer.start()
    try:
        accounts = [f"acc-{i:06d}" for i in range(40)]
        sent = [await producer.send_and_wait(unique_name, b"{}", key=a.encode()) for a in accounts]
    finally:
        await producer.stop()
    assert [m.partition for m in sent] == [partition_of(a, 6) for a in accounts]
    assert len({m.partition for m in sent}) > 1
