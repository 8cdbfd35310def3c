"""One running worker shared by the e2e tests of a module; each test uses fresh account ids."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from tests.e2e.harness import MONGO, Outcomes, Producer, Reader, Tally


@pytest.fixture(scope="module")
async def tally(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Tally]:
    deployment = Tally()
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    deployment.start(log)
    try:
        await deployment.wait_ready()
        yield deployment
    finally:
        code = deployment.stop()
        await deployment.cleanup()
        assert code == 0, Path(log).read_text()[-3000:]


@pytest.fixture(scope="module")
async def producer(tally: Tally) -> AsyncIterator[Producer]:
    async with Producer(tally) as p:
        yield p


@pytest.fixture(scope="module")
async def outcomes(tally: Tally) -> AsyncIterator[Outcomes]:
    async with Outcomes(tally.topics["events"]) as reader:
        yield reader


@pytest.fixture(scope="module")
async def dlq(tally: Tally) -> AsyncIterator[Reader]:
    async with Reader(tally.topics["dlq"]) as reader:
        yield reader


@pytest.fixture(scope="module")
async def db(tally: Tally) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGO, tz_aware=True)
    yield client[tally.db]
    await client.close()


@pytest.fixture
def new_id() -> Callable[[str], str]:
    """Account and transfer ids unique to the test, so tests never share state."""
    run = uuid.uuid4().hex[:6]
    return lambda name: f"{name}-{run}"
