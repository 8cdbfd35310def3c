"""Token time is append time (contract §6): a backlog never expires a valid command's token, and
a producer's own timestamp never revives an expired one."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.e2e.harness import KAFKA, Outcomes, Tally, token

pytestmark = pytest.mark.e2e


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Tally]:
    tally = Tally(partitions=1)
    yield tally
    if tally.process is not None and tally.process.poll() is None:
        tally.stop()
    await tally.cleanup()


async def _send(topic: str, auth: str, account: str, *, timestamp_ms: int | None = None) -> str:
    command_id = str(uuid.uuid4())
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", command_id.encode()),
        ("ce_source", b"e2e"),
        ("ce_type", b"ledger.account.open.v1"),
        ("ce_authtoken", auth.encode()),
    ]
    data = {"account_id": account, "owner_id": "o", "currency": "EUR"}
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            orjson.dumps(data),
            key=account.encode(),
            headers=headers,
            timestamp_ms=timestamp_ms,
        )
    finally:
        await producer.stop()
    return command_id


async def _start(tally: Tally, log: Path) -> None:
    tally.start(log)
    await tally.wait_ready()


async def test_a_token_that_expires_in_the_backlog_is_judged_when_its_command_was_appended(
    deployment: Tally, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    await _start(deployment, log)  # Tally creates its topics: ledger.commands with LogAppendTime
    assert deployment.stop() == 0
    topic = deployment.topics["commands"]
    short_lived = token(ttl=3)
    backlog = await _send(topic, short_lived, f"backlog-{deployment.run}")
    # Valid for an hour at the producer's backdated timestamp, expired a minute ago now.
    hour_ago = int(time.time() * 1000) - 3_600_000
    stale = token(ttl=-60)
    backdated = await _send(topic, stale, f"backdated-{deployment.run}", timestamp_ms=hour_ago)
    await asyncio.sleep(5)  # the worker is down: the short-lived token expires meanwhile
    async with Outcomes(deployment.topics["events"]) as outcomes:
        await _start(deployment, log)
        found = await outcomes.of(backlog, backdated, timeout=60)
    assert found[backlog].type == "ledger.account.opened.v1"
    assert found[backdated].type == "ledger.command.rejected.v1"
    assert found[backdated].data["reason"] == "unauthenticated"
    assert "producer timestamps" not in log.read_text()  # no warning: the topic stamps append time


async def test_on_a_topic_with_producer_timestamps_tokens_are_judged_when_processed(
    deployment: Tally, tmp_path: Path
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:  # created by its operator without LogAppendTime
        await admin.create_topics([NewTopic(t, 1, 1) for t in deployment.topics.values()])
    finally:
        await admin.close()
    log = tmp_path / "worker.log"
    hour_ago = int(time.time() * 1000) - 3_600_000
    topic = deployment.topics["commands"]
    backdated = await _send(
        topic, token(ttl=-60), f"backdated-{deployment.run}", timestamp_ms=hour_ago
    )
    async with Outcomes(deployment.topics["events"]) as outcomes:
        await _start(deployment, log)
        found = await outcomes.of(backdated, timeout=60)
    assert found[backdated].data["reason"] == "unauthenticated"
    warnings = [
        orjson.loads(line) for line in log.read_text().splitlines() if "producer timestamps" in line
    ]
    assert len(warnings) == 1 and warnings[0]["topic"] == topic
