"""SIGTERM cuts a batch that waits on an unresponsive database: exit within the deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from streams.app import Worker
from streams.settings import Settings

pytestmark = pytest.mark.integration


class HangingPipeline:
    """A batch stuck on a database that accepted the connection and never answers."""

    async def process(self, records: Any, fetched_at: float) -> None:
        await asyncio.Event().wait()


async def test_a_batch_stuck_on_the_database_is_left_for_redelivery_by_the_deadline() -> None:
    settings = Settings(jwt_secret="x" * 40, shutdown_timeout=2.0)
    worker = Worker(settings)
    worker._pipeline = HangingPipeline()  # type: ignore[assignment]  # the test's seam
    attempt = asyncio.create_task(worker._process(["record"], time.time()))
    await asyncio.sleep(0.2)
    began = time.monotonic()
    worker.stop()
    committed = await asyncio.wait_for(attempt, timeout=settings.shutdown_timeout + 1)
    assert committed is False  # not committed: the next owner gets the batch again
    assert time.monotonic() - began < settings.shutdown_timeout
    await worker._store.close()
