"""Worker lifecycle edge cases: the shutdown deadline, closing the clients, a full batch ahead.

Fakes stand in for the pipeline and the Kafka clients; the worker's own Mongo client is built
but never used, and points nowhere, so a test that reached a server would fail."""

from __future__ import annotations

import asyncio
import time
from typing import Any, NamedTuple

import pytest

from streams import kafka, metrics
from streams.app import Worker
from streams.batches import Batch
from streams.health import Health
from streams.loop import BatchLoop
from streams.settings import Settings
from streams.shutdown import Shutdown

pytestmark = pytest.mark.unit


def settings(**overrides: Any) -> Settings:
    return Settings(
        jwt_secret="x" * 40,
        mongo_uri="mongodb://127.0.0.1:9",  # discard port: nothing answers there
        kafka_bootstrap="127.0.0.1:9",
        **overrides,
    )


def batch_loop(consumer: Any, pipeline: Any, **overrides: Any) -> BatchLoop:
    """The worker's loop with stand-ins for the consumer and the pipeline."""
    configured = settings(**overrides)
    return BatchLoop(
        configured,
        consumer,
        pipeline,
        health=Health(),
        shutdown=Shutdown(configured.shutdown_timeout),
        ownership=kafka.Ownership(configured.topic_commands, configured.topic_transfers),
        alive=_alive,
    )


async def _alive() -> None:
    return None


class OwnsTp:
    def assignment(self) -> set[Any]:
        return {"tp"}


class HangingPipeline:
    """A batch stuck on a database that accepted the connection and never answers."""

    generation = 0

    def __init__(self) -> None:
        self.waiting = asyncio.Event()

    async def decide(self, records: Any, fetched_at: float) -> None:
        self.waiting.set()
        await asyncio.Event().wait()


async def test_a_batch_stuck_on_the_database_is_left_for_redelivery_by_the_deadline() -> None:
    pipeline = HangingPipeline()
    loop = batch_loop(OwnsTp(), pipeline, shutdown_timeout=2.0)
    attempt = asyncio.create_task(loop._process(Batch({"tp": ["record"]}, time.time())))
    await asyncio.wait_for(pipeline.waiting.wait(), timeout=30)
    began = time.monotonic()
    loop._shutdown.request()
    committed = await asyncio.wait_for(attempt, timeout=2.0 + 1)
    assert committed is False  # not committed: the next owner gets the batch again
    assert time.monotonic() - began < 2.0  # the shutdown deadline is the point


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
    worker = Worker(settings())
    await worker._store.close()
    consumer, producer, admin, store = (
        Client(asyncio.CancelledError()),
        Client(RuntimeError("gone")),
        Client(),
        Client(),
    )
    worker._consumer = type("C", (), {"stop": consumer.close})()  # type: ignore[assignment]
    worker._publisher = type("P", (), {"stop": producer.close})()  # type: ignore[assignment]
    worker._admin = admin  # type: ignore[assignment]
    worker._store = store  # type: ignore[assignment]
    await worker._close()
    assert consumer.closed and producer.closed and admin.closed and store.closed


class FullBufferConsumer:
    """getmany as aiokafka's: max_records must be a positive integer."""

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, Any]:
        if max_records is not None and max_records < 1:
            raise ValueError("`max_records` must be a positive Integer")
        return {}

    def assignment(self) -> set[Any]:
        return set()

    def highwater(self, tp: Any) -> None:
        return None


async def test_a_full_batch_left_undecided_ahead_is_handled_without_a_top_up() -> None:
    # A backlog batch fetched ahead whose decide failed (an outage) is as big as a batch may
    # be: there is no room to top it up, and asking aiokafka for 0 records raises.
    loop = batch_loop(FullBufferConsumer(), None, batch_max_records=4)
    handled: list[Any] = []

    async def handle(batch: Any) -> None:
        handled.append(batch)
        loop._shutdown.asked.set()

    loop._handle = handle  # type: ignore[method-assign]
    loop._ahead = Batch({"tp": ["r1", "r2", "r3", "r4"]}, time.time())
    await asyncio.wait_for(loop.run(), timeout=5)
    assert [b.records for b in handled] == [["r1", "r2", "r3", "r4"]]


class FailingPipeline:
    """Every attempt fails as during a database outage."""

    generation = 0

    def __init__(self) -> None:
        self.attempts = 0

    async def decide(self, records: Any, fetched_at: float) -> None:
        self.attempts += 1
        raise ConnectionError("database unreachable")

    def forget_accounts(self) -> None:
        pass


class RevokingConsumer:
    """Owns the batch's partition until the pipeline has failed twice."""

    def __init__(self, pipeline: FailingPipeline) -> None:
        self.pipeline = pipeline

    def assignment(self) -> set[Any]:
        return {"tp"} if self.pipeline.attempts < 2 else set()


async def test_a_batch_retried_through_an_outage_stops_when_its_partitions_are_revoked() -> None:
    # A worker that lost its partitions while retrying must leave the records to their new
    # owner instead of racing it (its writes would only be refused by the version check).
    pipeline = FailingPipeline()
    loop = batch_loop(RevokingConsumer(pipeline), pipeline, retry_backoff_max=0.05)
    batch = Batch({"tp": ["record"]}, time.time())
    committed = await asyncio.wait_for(loop._process(batch), timeout=5)
    assert committed is False  # not committed: the next owner decides these records
    assert pipeline.attempts == 2
    assert batch.records == []


class Rec:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class OverlapPipeline:
    """Records what the worker asks; the first flush fails after the next batch is applied."""

    def __init__(self) -> None:
        self.generation = 0
        self.calls: list[tuple[str, list[int]]] = []
        self.fail_first_flush = True
        self.next_applied = asyncio.Event()

    async def decide(self, records: Any, fetched_at: float) -> Any:
        self.calls.append(("decide", [r.offset for r in records]))
        return type("D", (), {"generation": self.generation, "records": records})()

    async def apply(self, decided: Any) -> None:
        offsets = [r.offset for r in decided.records]
        self.calls.append(("apply", offsets))
        if offsets == [3]:
            self.next_applied.set()

    async def flush(self, decided: Any) -> None:
        # Still flushing while the next batch is applied; a worker that waited for this flush
        # first would time out here, and the calls asserted would differ.
        await asyncio.wait_for(self.next_applied.wait(), timeout=30)
        self.calls.append(("flush", [r.offset for r in decided.records]))
        if self.fail_first_flush:
            self.fail_first_flush = False
            raise ConnectionError("database went away")

    def forget_accounts(self) -> None:
        self.generation += 1


class CommitConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[Any, int]] = []

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, Any]:
        return {}

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.commits.append(offsets)

    def assignment(self) -> set[Any]:
        return {"tp"}


async def test_a_failed_flush_is_retried_with_the_batch_applied_while_it_ran() -> None:
    pipeline, consumer = OverlapPipeline(), CommitConsumer()
    loop = batch_loop(consumer, pipeline)
    assert await loop._process(Batch({"tp": [Rec(1), Rec(2)]}, time.time()))
    assert await loop._process(Batch({"tp": [Rec(3)]}, time.time()))
    await loop._settle_flush()
    await loop.commits.settle()

    assert pipeline.calls == [
        ("decide", [1, 2]),
        ("apply", [1, 2]),
        ("decide", [3]),
        ("apply", [3]),  # while [1, 2] flushes
        ("flush", [1, 2]),  # fails; [3] is not flushed before it
        ("decide", [1, 2, 3]),  # both again, decided afresh
        ("apply", [1, 2, 3]),
        ("flush", [1, 2, 3]),
    ]
    assert consumer.commits == [{"tp": 4}]  # nothing of the failed batch was committed before


class TP(NamedTuple):
    topic: str
    partition: int


class GrowingLogConsumer:
    """Owns one partition whose log end grows while nothing is fetched; revokes it after
    four failed attempts so the retry loop ends."""

    tp = TP("lagging.commands", 0)

    def __init__(self, pipeline: FailingPipeline) -> None:
        self.pipeline = pipeline
        self.end = 10

    def assignment(self) -> set[Any]:
        return {self.tp} if self.pipeline.attempts < 4 else set()

    def highwater(self, tp: Any) -> int | None:
        return 10  # what the last fetch said: stands still while the batch is retried

    async def end_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        self.end += 5  # producers keep writing
        return dict.fromkeys(partitions, self.end)

    async def committed(self, tp: Any) -> int | None:
        return 7


async def test_the_lag_keeps_growing_while_a_batch_is_retried() -> None:
    pipeline = FailingPipeline()
    consumer = GrowingLogConsumer(pipeline)
    loop = batch_loop(consumer, pipeline, retry_backoff_max=0.01)
    lag = metrics.CONSUMER_LAG.labels("lagging.commands", "0")
    seen: list[float] = []
    real_refresh = loop.commits.refresh_lag

    async def refresh() -> None:
        await real_refresh()
        seen.append(lag._value.get())

    loop.commits.refresh_lag = refresh  # type: ignore[method-assign]
    await asyncio.wait_for(loop._process(Batch({consumer.tp: ["record"]}, time.time())), 5)
    assert seen[:3] == [8.0, 13.0, 18.0]  # log end 15, 20, 25 less the group's committed 7
