"""Kafka ceiling: getmany → produce one message per record → commit; no decoding, no database."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka.abc import ConsumerRebalanceListener

from streams import kafka
from streams.settings import Settings
from tests.bench.progress import Progress


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self) -> None:
        self.at: float | None = None

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned and self.at is None:
            self.at = time.time()


async def run(settings: Settings, topic_in: str, topic_out: str, total: int) -> float:
    """Drains `total` preloaded records with Tally's own client settings; returns records/s."""
    consumer = kafka.consumer(settings)  # same fetch, group and assignor settings as Tally
    producer = kafka.producer(settings)  # same acks=all, idempotence, linger, batch size
    assigned = _Assigned()
    consumer.subscribe([topic_in], listener=assigned)
    await producer.start()
    await consumer.start()
    done = 0
    try:
        with Progress("kafka ceiling", total) as bar:
            while done < total:
                batch = await consumer.getmany(
                    timeout_ms=settings.poll_timeout_ms, max_records=settings.batch_max_records
                )
                if not batch:
                    continue
                futures = [
                    await producer.send(topic_out, r.value, key=r.key, headers=list(r.headers))
                    for records in batch.values()
                    for r in records
                ]
                await asyncio.gather(*futures)
                await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batch.items()})
                done += len(futures)
                bar.update(done)
        finished = time.time()
    finally:
        await consumer.stop()
        await producer.stop()
    assert assigned.at is not None
    return done / (finished - assigned.at)
