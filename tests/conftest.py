"""Shared test helpers: where the local Kafka and MongoDB-wire server are, and fresh names."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable

import pytest

KAFKA_BOOTSTRAP = os.environ.get("TALLY_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
MONGO_URI = os.environ.get("TALLY_MONGO_URI", "mongodb://127.0.0.1:27017")


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A topic or database name no other test (or earlier run) uses: `t_<test>_<random>`."""
    stem = "".join(c if c.isalnum() else "_" for c in request.node.name)[:24].strip("_")
    return f"t_{stem}_{uuid.uuid4().hex[:8]}"


async def eventually(
    condition: Callable[[], bool], what: str, timeout: float = 30, every: float = 0.05
) -> None:
    """Wait until `condition()` holds, checking every `every` seconds; TimeoutError after
    `timeout` seconds, naming `what` was awaited. For waits on a condition, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {what}")
        await asyncio.sleep(every)
