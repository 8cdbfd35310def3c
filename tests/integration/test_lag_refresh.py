"""The lag is read from the broker's log ends, without fetching: a stuck worker's lag grows."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams import metrics
from streams.commits import Commits
from tests.conftest import KAFKA_BOOTSTRAP
from tests.integration.kit import group_consumer

pytestmark = pytest.mark.integration


async def test_the_lag_follows_the_log_end_while_nothing_is_fetched() -> None:
    topic = f"lag-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA_BOOTSTRAP)
    await producer.start()
    consumer = await group_consumer(topic)
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100, max_records=1)  # joins; nothing written yet
        commits = Commits(consumer)
        lag = metrics.CONSUMER_LAG.labels(topic, "0")
        for written in (5, 12):
            for _ in range(written - int(lag._value.get())):
                await producer.send_and_wait(topic, b"x")
            await commits.refresh_lag()
            assert lag._value.get() == written  # nothing committed by the group yet
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()
