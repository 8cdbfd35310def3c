"""The publisher renews a producer that can no longer send; the batch is retried meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber

from streams.publish import KafkaPublisher, Message

pytestmark = pytest.mark.unit


class Producer:
    """Stand-in for AIOKafkaProducer: sends until told its sender died."""

    made: list[Producer] = []

    def __init__(self) -> None:
        self.sent: list[bytes | None] = []
        self.dead: Exception | None = None
        self.started = self.stopped = False
        Producer.made.append(self)

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: Any, *, key: Any, headers: Any) -> asyncio.Future[None]:
        if self.dead is not None:
            raise self.dead
        self.sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


MESSAGE = Message("t", b"k", b"v", [])


async def test_a_producer_whose_sender_died_is_replaced_and_the_error_still_raised() -> None:
    Producer.made = []
    publisher = KafkaPublisher(Producer)
    await publisher.start()
    first = Producer.made[0]
    first.dead = OutOfOrderSequenceNumber()
    with pytest.raises(OutOfOrderSequenceNumber):  # the batch is retried, as after an outage
        await publisher.publish([MESSAGE])
    assert first.stopped and len(Producer.made) == 2 and Producer.made[1].started
    await publisher.publish([MESSAGE])
    assert Producer.made[1].sent == [b"v"]


async def test_an_outage_keeps_the_producer() -> None:
    Producer.made = []
    publisher = KafkaPublisher(Producer)
    await publisher.start()
    Producer.made[0].dead = KafkaConnectionError()
    with pytest.raises(KafkaConnectionError):
        await publisher.publish([MESSAGE])
    assert len(Producer.made) == 1
