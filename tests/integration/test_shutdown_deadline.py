"""SIGTERM cuts a batch that waits on an unresponsive database: exit within the deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from streams.app import Worker, _Batch
from streams.settings import Settings

pytestmark = pytest.mark.integration


class HangingPipeline:
    """A batch stuck on a database that accepted the connection and never answers."""

    generation = 0

    async def decide(self, records: Any, fetched_at: float) -> None:
        await asyncio.Event().wait()


async def test_a_batch_stuck_on_the_database_is_left_for_redelivery_by_the_deadline() -> None:
    settings = Settings(jwt_secret="x" * 40, shutdown_timeout=2.0)
    worker = Worker(settings)
    worker._pipeline = HangingPipeline()  # type: ignore[assignment]  # the test's seam
    attempt = asyncio.create_task(worker._process(_Batch({"tp": ["record"]}, time.time())))
    await asyncio.sleep(0.2)
    began = time.monotonic()
    worker.stop()
    committed = await asyncio.wait_for(attempt, timeout=settings.shutdown_timeout + 1)
    assert committed is False  # not committed: the next owner gets the batch again
    assert time.monotonic() - began < settings.shutdown_timeout
    await worker._store.close()


class Client:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error
        self.closed = False

    async def close(self) -> None:
        self.closed = True
        if self.error is not None:
            raise self.error


async def test_a_client_whose_close_raises_cancelled_error_does_not_stop_the_others() -> None:
    # Seen in the chaos suite: SIGTERM during a broker outage, and aiokafka's consumer.stop()
    # let its fetch task's CancelledError out; the worker exited 1 instead of 0.
    worker = Worker(Settings(jwt_secret="x" * 40))
    await worker._store.close()
    consumer, producer, admin, store = (
        Client(asyncio.CancelledError()),
        Client(RuntimeError("gone")),
        Client(),
        Client(),
    )
    worker._consumer = type("C", (), {"stop": consumer.close})()  # type: ignore[assignment]
    worker._producer = type("P", (), {"stop": producer.close})()  # type: ignore[assignment]
    worker._admin = admin  # type: ignore[assignment]
    worker._store = store  # type: ignore[assignment]
    await worker._close()
    assert consumer.closed and producer.closed and admin.closed and store.closed
