"""The worker's heartbeat document (contract §15): who it is, what it holds, whether ready."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from aiokafka.structs import TopicPartition

from streams.health import Health
from streams.heartbeat import beat_forever, heartbeat
from streams.memory import InMemoryStore

pytestmark = pytest.mark.unit


def test_a_heartbeat_names_the_process_its_partitions_and_its_readiness() -> None:
    health = Health()
    held = {TopicPartition("cmds", 2), TopicPartition("cmds", 0), TopicPartition("legs", 0)}
    doc = heartbeat("box-1:4242", "tally", 8080, health, held)
    assert (doc["_id"], doc["host"], doc["pid"], doc["group"]) == (
        "box-1:4242",
        "box-1",
        4242,
        "tally",
    )
    assert doc["partitions"] == [
        {"topic": "cmds", "partition": 0},
        {"topic": "cmds", "partition": 2},
        {"topic": "legs", "partition": 0},
    ]
    assert doc["ready"] is False and doc["checks"]["kafka"] == "not connected yet"
    assert doc["at"].tzinfo is UTC and doc["http_port"] == 8080


async def test_beats_are_written_and_old_heartbeats_forgotten_at_start() -> None:
    store = InMemoryStore()
    await store.beat({"_id": "gone:1", "at": datetime(2020, 1, 1, tzinfo=UTC)})
    health = Health()
    beating = asyncio.create_task(
        beat_forever(store, lambda: heartbeat("me:1", "g", 1, health, ()))
    )
    while "me:1" not in store.collections["workers"]:  # noqa: ASYNC110  (a fake: no event)
        await asyncio.sleep(0.01)
    beating.cancel()
    assert list(store.collections["workers"]) == ["me:1"]
