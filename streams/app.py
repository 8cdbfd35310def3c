"""The worker: composition root and lifecycle (start, consume loop, retries, graceful stop)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError

from streams import asyncapi, fetch, kafka, kafka_auth, metrics
from streams.errors import TallyError, is_outage
from streams.health import Health
from streams.intake import Decoder
from streams.isolate import Isolator
from streams.jwks import key_source
from streams.pipeline import Decided, Pipeline, StaleDecisionError
from streams.publish import KafkaPublisher
from streams.settings import ConfigError, Settings
from streams.store import ConflictError, MongoStore
from streams.web import build_app, serve

log = logging.getLogger("tally.worker")
_CLOSE_RESERVE_S = 5.0  # of TALLY_SHUTDOWN_TIMEOUT, kept for closing the clients


@dataclass(slots=True)
class _Batch:
    """Records fetched together, by partition; maybe decided while the previous one flushed."""

    by_partition: dict[Any, list[Any]]
    fetched_at: float
    decided: Decided | None = None
    defects: int = 0  # attempts failed for a defect (not an outage), flushes included

    @property
    def records(self) -> list[Any]:
        return [r for records in self.by_partition.values() for r in records]

    def extend(self, fetched: dict[Any, list[Any]]) -> None:
        """Records fetched later (never decided yet), after these in each partition."""
        assert self.decided is None
        for tp, records in fetched.items():
            self.by_partition[tp] = self.by_partition.get(tp, []) + records

    def prepend(self, earlier: _Batch) -> None:
        """A batch fetched before this one whose flush failed: both are decided again."""
        for tp, records in earlier.by_partition.items():
            self.by_partition[tp] = records + self.by_partition.get(tp, [])
        self.fetched_at = min(self.fetched_at, earlier.fetched_at)
        self.decided = None
        self.defects = max(self.defects, earlier.defects)

    @property
    def offsets(self) -> dict[Any, int]:
        return {tp: rs[-1].offset + 1 for tp, rs in self.by_partition.items() if rs}


@dataclass(slots=True)
class _Flushing:
    """A batch applied (durable in its accounts) whose flush runs while the next one is
    decided and applied; its offsets are committed once the flush has succeeded."""

    batch: _Batch
    task: asyncio.Future[None]

    @property
    def error(self) -> BaseException | None:
        """Why the (finished) flush failed; None if it succeeded."""
        if self.task.cancelled():  # not a cancellation of whoever raises it again
            return RuntimeError("flush cancelled")
        return self.task.exception()


class Worker:
    """Owns every client; nothing connects before run()."""

    def __init__(self, settings: Settings, stop_asked: Callable[[], bool] = lambda: False) -> None:
        self.settings = settings
        self._stop_asked = stop_asked
        self.health = Health()
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()  # held while a batch is processed and committed
        self._deadline = float("inf")
        self._attempt: asyncio.Timeout | None = None  # bounds the batch attempt in flight
        self._committed: dict[Any, int] = {}
        self._ahead: _Batch | None = None  # the next batch, fetched and decided ahead
        self._commit_task: asyncio.Future[None] | None = None  # offsets commit in flight
        self._flushing: _Flushing | None = None  # at most one flush runs beside the loop
        self._store = MongoStore.connect(settings.mongo_uri, settings.mongo_db)
        self._keys = key_source(settings)  # fixed keys, or a JWKS endpoint's

    def stop(self) -> None:
        if not self._stopping.is_set():
            log.info("stopping: finishing the batch in flight")
            self._deadline = time.monotonic() + self.settings.shutdown_timeout
            self._stopping.set()
            if self._attempt is not None:
                # A batch waiting on a database that does not answer must not outlive the
                # deadline; cutting it is as safe as a crash at that instant (ADR 0004).
                self._attempt.reschedule(self._cut_at())

    def _batch_time_left(self) -> float:
        """Until a batch must give up: the shutdown deadline less the time to close."""
        reserve = min(_CLOSE_RESERVE_S, self.settings.shutdown_timeout / 4)
        return self._deadline - reserve - time.monotonic()

    def _cut_at(self) -> float | None:
        """Loop time at which a batch attempt is cut; None while not stopping."""
        if not self._stopping.is_set():
            return None
        return asyncio.get_running_loop().time() + self._batch_time_left()

    def _build_kafka_clients(self) -> None:
        # aiokafka clients bind to the running loop, so they are built inside run().
        s = self.settings
        self._admin = kafka.admin(s)
        self._producer = kafka.producer(s)
        self._consumer = kafka.consumer(s)
        decoder = Decoder(s, self._keys)
        self._ownership = kafka.Ownership(s.topic_commands, s.topic_transfers)
        publisher = KafkaPublisher(self._producer)
        self._pipeline = Pipeline(s, self._store, publisher, decoder, local=self._ownership)

    async def run(self) -> int:
        self._build_kafka_clients()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        if self._stop_asked():  # a signal arrived while the process was starting
            self.stop()
        app = build_app(self.health, lambda: asyncapi.document(self.settings))
        runner = await serve(app, self.settings.http_host, self.settings.http_port)
        log.info(
            "http listening",
            extra={"host": self.settings.http_host, "port": self.settings.http_port},
        )
        probe = asyncio.create_task(self._probe_forever())
        try:
            if await self._start():
                await self._consume()
        finally:
            probe.cancel()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.5, self._batch_time_left())):
                    await self._settle_flush()  # finish what it has (a failure: redelivered)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(5.0, max(0.5, self._batch_time_left()))):
                    await self._settle_commit()
            await self._close()
            await runner.cleanup()
        log.info("stopped")
        return 0

    async def _start(self) -> bool:
        """Connect everything, retrying while the infrastructure is not there yet."""
        steps = [
            ("mongodb", self._store.ensure_indexes),
            ("kafka", lambda: kafka_auth.check_credentials(self.settings)),
            ("kafka", self._admin.start),
            ("kafka", lambda: kafka.ensure_topics(self._admin, self.settings)),
            ("kafka", self._producer.start),
            ("kafka", self._consumer_start),
        ]
        for name, step in steps:
            if not await self._retry(name, step):
                return False
        log.info("worker started", extra={"group": self.settings.group_id})
        return True

    async def _consumer_start(self) -> None:
        s = self.settings
        self._consumer.subscribe(
            [s.topic_commands, s.topic_transfers],
            listener=kafka.Rebalance(self._on_revoked, self._on_assigned),
        )
        await self._consumer.start()

    async def _retry(self, name: str, step: Any) -> bool:
        delay = 0.2
        while not self._stopping.is_set():
            try:
                await step()
                return True
            except (kafka.TopicError, ConfigError):
                raise  # a refused password or CA is not an outage: waiting never fixes it
            except Exception as exc:  # infrastructure not there yet: wait, never give up
                self.health.set(name, f"{type(exc).__name__}: {exc}"[:200])
                log.warning(
                    "start-up step failed; retrying",
                    extra={"check": name, "error": repr(exc)[:200]},
                )
                await self._sleep(delay)
                delay = min(delay * 2, self.settings.retry_backoff_max)
        return False

    async def _consume(self) -> None:
        timeout = self.settings.poll_timeout_ms
        while not self._stopping.is_set():
            current, self._ahead = self._ahead, None
            if current is None:
                fetched = await fetch.getmany(
                    self._consumer, timeout_ms=timeout, max_records=self.settings.batch_max_records
                )
                current = _Batch(fetched, time.time()) if fetched else None
            elif current.decided is None:  # fetched ahead, not decided: add what came since
                room = self.settings.batch_max_records - len(current.records)
                if room > 0:
                    current.extend(await kafka.take_arrived(self._consumer, room))
            if current is not None:
                async with self._lock:
                    await self._handle(current)
            elif self._flushing is not None:  # nothing new: finish the last flush, commit it
                async with self._lock:
                    failed = await self._settle_flush()
                if failed is not None:
                    if not _is_outage(failed.error):
                        failed.batch.defects += 1
                    metrics.RETRIES.labels(type(failed.error).__name__).inc()
                    log.warning(
                        "flush failed; its batch is decided again",
                        extra={"error": repr(failed.error)[:300]},
                    )
                    self._pipeline.forget_accounts()
                    self._ahead = failed.batch  # decided again in the next turn
            self._update_lag()

    async def _handle(self, batch: _Batch) -> None:
        owned = self._keep_owned(batch)
        partitions = self._consumer.partitions_for_topic(self.settings.topic_transfers)
        self._ownership.update(owned, len(partitions or ()))
        if batch.records:
            await self._process(batch)  # its offsets are committed once its flush succeeds

    async def _commit_batch(self, batch: _Batch) -> None:
        # The commit is not waited for: the next batch starts meanwhile. Commits stay in
        # order (each waits for the one before), and revocation and shutdown wait for it.
        await self._settle_commit()
        self._commit_task = asyncio.ensure_future(self._commit(batch.offsets))

    async def _settle_flush(self) -> _Flushing | None:
        """Wait for the flush in flight, if any: commit its batch, or return it if it failed."""
        flushing, self._flushing = self._flushing, None
        if flushing is None:
            return None
        try:
            await asyncio.wait([flushing.task])  # never cancels the flush itself
        except BaseException:
            self._flushing = flushing  # still running; whoever stops the worker waits for it
            raise
        if flushing.error is not None:
            return flushing
        await self._commit_batch(flushing.batch)
        return None

    def _keep_owned(self, batch: _Batch) -> set[Any]:
        """Drop the records of partitions this worker no longer owns; returns what it owns.

        A rebalance may take partitions away between the fetch and now, or while a batch is
        retried through an outage: their records are the next owner's to decide."""
        owned: set[Any] = self._consumer.assignment()
        kept = {tp: records for tp, records in batch.by_partition.items() if tp in owned}
        if kept.keys() != batch.by_partition.keys():
            batch.by_partition, batch.decided = kept, None
        return owned

    async def _commit(self, offsets: dict[Any, int]) -> None:
        try:
            with metrics.BATCH_STAGE_SECONDS.labels("commit").time():
                await self._consumer.commit(offsets)
            self._committed |= offsets
        except KafkaError as exc:
            # Effects and outcomes are durable and idempotent: a lost commit only means the
            # next owner re-reads these records and finds them already decided.
            log.warning("offset commit failed", extra={"error": repr(exc)[:200]})

    async def _settle_commit(self) -> None:
        """Wait for the commit in flight, if any (its failure is logged, never raised)."""
        task, self._commit_task = self._commit_task, None
        if task is not None:
            await asyncio.wait([task])

    async def _process(self, batch: _Batch) -> bool:
        """Process until it succeeds; returns False only when shutdown's deadline passes.

        An outage is retried without end, never a verdict (SPEC §8.5). A defect (the batch
        failed, and nothing says the database or the broker is away) is retried as well,
        TALLY_RECORD_MAX_ATTEMPTS times in all; then the batch is isolated: the records at
        fault are dead-lettered `processing_error` and the others processed (SPEC §7)."""
        delay = 0.05
        while True:
            try:
                if batch.defects >= self.settings.record_max_attempts:
                    await self._isolate(batch)
                else:
                    await self._attempt_batch(batch)
                self.health.set("pipeline", None)
                return True
            except ConflictError as exc:
                metrics.RETRIES.labels("conflict").inc()
                log.info(
                    "account changed concurrently; deciding the batch again",
                    extra={"error": str(exc)},
                )
            except Exception as exc:
                outage = _is_outage(exc)
                batch.defects += 0 if outage else 1
                metrics.RETRIES.labels(type(exc).__name__).inc()
                self.health.set("pipeline", f"{type(exc).__name__}: {exc}"[:200])
                log.warning(
                    "batch failed; retrying",
                    extra={"error": repr(exc)[:300], "records": len(batch.records)},
                    exc_info=not outage,
                )
            remaining = self._batch_time_left()
            if remaining <= 0:
                log.warning("shutdown deadline passed; batch left for redelivery")
                return False
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, self.settings.retry_backoff_max)
            self._keep_owned(batch)
            if not batch.records:  # revoked while retrying: never ours to write again
                log.info("partitions revoked while retrying; the batch is the next owner's")
                return False

    async def _isolate(self, batch: _Batch) -> None:
        """Process the batch in ever smaller parts, in order; then commit it (streams.isolate)."""
        await self._previous_flushed(batch)  # isolation runs alone: no flush beside it
        isolator = Isolator(
            self._pipeline, attempts=self.settings.record_max_attempts, alive=self._alive
        )
        try:
            async with asyncio.timeout_at(self._cut_at()) as self._attempt:
                await isolator.run(batch.records, batch.fetched_at)
        finally:
            self._attempt = None
        await self._commit_batch(batch)

    async def _alive(self) -> None:
        """Raises unless the database and the broker answer now."""
        async with asyncio.timeout(5.0):
            await self._store.ping()
            await self._admin.describe_cluster()

    async def _attempt_batch(self, batch: _Batch) -> None:
        try:
            async with asyncio.timeout_at(self._cut_at()) as self._attempt:
                await self._run(batch)
        finally:
            self._attempt = None  # stop() may only reschedule an attempt still running

    async def _run(self, batch: _Batch) -> None:
        """Decide (unless decided ahead) and apply, start this batch's flush (after the
        previous one's) and decide the next batch meanwhile.

        A short batch is applied while the previous one flushes: under moderate load that
        fills the database's idle time (deciding, publishing) and keeps batches short. A
        backlog batch, decided ahead, waits for the previous flush: the database is busy
        then, and writes that overlap there only slow each other (docs/performance.md).

        Returns once the previous flush has succeeded (and its commit is on its way). If it
        failed, its records join this batch, every cache is dropped, and the error is raised:
        the caller retries both together, decided afresh from what is durable (ADR 4)."""
        pipeline = self._pipeline
        previous = self._flushing
        own: asyncio.Future[None] | None = None
        try:
            decided, batch.decided = batch.decided, None  # used once: a retry decides afresh
            if decided is None or decided.generation != pipeline.generation:
                decided = await pipeline.decide(batch.records, batch.fetched_at)
            else:  # a backlog batch: applied only after the previous flush
                await self._previous_flushed(batch)
                previous = None
            await pipeline.apply(decided)
            own = asyncio.ensure_future(self._flush_after(previous, decided))
            await self._decide_ahead()
            await self._previous_flushed(batch)  # if it failed, this flush fails too
        except asyncio.CancelledError:  # cut at the shutdown deadline: as safe as a crash
            if own is not None:
                own.cancel()
            raise
        except BaseException:
            if own is not None:
                own.cancel()
                await asyncio.wait([own])
            failed = await self._settle_flush()
            if failed is not None:
                batch.prepend(failed.batch)
            pipeline.forget_accounts()  # an apply may have cached state after a flush failed
            raise
        self._flushing = _Flushing(batch, own)

    async def _previous_flushed(self, batch: _Batch) -> None:
        """Wait for the flush in flight; if it failed, its records join `batch` (both are
        decided again, together) and its error is raised."""
        failed = await self._settle_flush()
        if failed is not None:
            batch.prepend(failed.batch)
            raise failed.error  # type: ignore[misc]  # not None: the flush failed

    async def _flush_after(self, previous: _Flushing | None, decided: Decided) -> None:
        """Flushes stay in batch order: outcomes are published in partition order."""
        if previous is not None:
            await asyncio.wait([previous.task])
            if previous.error is not None:
                raise _PreviousFlushFailedError("not flushed: the previous batch's flush failed")
        await self._pipeline.flush(decided)

    async def _decide_ahead(self) -> None:
        """Fetch what has arrived and decide it (reads only) while this batch flushes.

        Its decisions are applied in its own turn, after this flush, unless a failure or a
        rebalance dropped the caches meanwhile (then it is decided again)."""
        if self._stopping.is_set():
            return
        if self._ahead is None:
            fetched = await fetch.getmany(
                self._consumer, timeout_ms=0, max_records=self.settings.batch_max_records
            )
            if not fetched:
                return
            self._ahead = _Batch(fetched, time.time())
        ahead = self._ahead
        # Only a backlog is decided ahead. A short batch is left open and topped up in its own
        # turn: deciding it now would close it, and whatever arrives during this flush would
        # wait a whole batch more (latency under light load); with a backlog, throughput counts.
        if ahead.decided is None and len(ahead.records) >= self.settings.batch_max_records // 2:
            try:
                ahead.decided = await self._pipeline.decide(ahead.records, ahead.fetched_at)
            except Exception as exc:  # e.g. an outage: decided in its own turn, with retries
                log.debug("deciding ahead failed", extra={"error": repr(exc)[:200]})

    async def _on_revoked(self, revoked: Any) -> None:
        self.health.set("consumer_group", "rebalancing")
        try:
            async with asyncio.timeout(self.settings.shutdown_timeout):
                async with self._lock:
                    pass
        except TimeoutError:
            log.warning("revocation did not wait for the batch in flight")
        try:
            async with asyncio.timeout(self.settings.shutdown_timeout):
                await self._settle_flush()  # a failed one is redelivered to the next owner
        except TimeoutError:
            log.warning("revocation did not wait for the flush in flight")
        await self._settle_commit()  # the next owner starts after what is done here
        self._pipeline.forget_accounts()  # another worker may change them from now on
        self._ahead = None  # fetched, never applied: the next owner gets these records
        for tp in revoked:
            self._committed.pop(tp, None)
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(tp.topic, str(tp.partition))

    async def _on_assigned(self, assigned: Any) -> None:
        self.health.set("consumer_group", None)
        log.info("partitions assigned", extra={"partitions": sorted(str(tp) for tp in assigned)})

    def _update_lag(self) -> None:
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            committed = self._committed.get(tp)
            if high is not None and committed is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                    max(high - committed, 0)
                )

    async def _probe_forever(self) -> None:
        while True:
            await self._probe("mongodb", self._store.ping())
            await self._probe("kafka", self._admin.describe_cluster())
            await asyncio.sleep(1.0)

    async def _probe(self, name: str, check: Any) -> None:
        try:
            async with asyncio.timeout(2.0):
                await check
            self.health.set(name, None)
        except Exception as exc:
            self.health.set(name, f"{type(exc).__name__}: {exc}"[:200] or "unreachable")

    async def _sleep(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            pass

    async def _close(self) -> None:
        for name, close in (
            ("consumer", self._consumer.stop),
            ("producer", self._producer.stop),
            ("admin", self._admin.close),
            ("mongodb", self._store.close),
        ):
            try:
                remaining = self._deadline - time.monotonic()
                async with asyncio.timeout(min(5.0, max(0.2, remaining / 4))):
                    await close()
            except Exception as exc:
                log.warning("close failed", extra={"client": name, "error": repr(exc)[:200]})
            except asyncio.CancelledError:
                # aiokafka's consumer.stop() awaits its own fetch tasks after cancelling them;
                # during a broker outage that CancelledError escapes. Only a cancellation of
                # this task itself may end the close; the other clients still get closed.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                log.warning("close failed", extra={"client": name, "error": "cancelled inside"})


class _PreviousFlushFailedError(TallyError):
    """The batch before this one did not flush: both are decided again, together."""


def _is_outage(error: BaseException | None) -> bool:
    """An outage, or an internal signal that a batch must be decided again: not a defect."""
    return error is None or is_outage(error) or isinstance(error, _NOT_DEFECTS)


# Internal signals that a batch must be decided again: neither an outage nor a defect.
_NOT_DEFECTS = (StaleDecisionError, _PreviousFlushFailedError)


GC_THRESHOLDS = (10_000, 20, 20)  # CPython's defaults: (700, 10, 10)


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the latency path.

    What is alive at start-up (modules, classes, pydantic's validators: ~80 000 objects) lives
    as long as the process: frozen, full collections stop walking it. The pipeline's garbage
    is freed by reference counting; the collector only looks for cycles, so it runs less often.
    Measured at 1 000 commands/s (docs/performance.md): collector time 1.7-1.9 s → 0.4 s per
    run, longest pause 58-74 → 26-28 ms."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_worker(settings: Settings, stop_asked: Callable[[], bool] = lambda: False) -> int:
    tune_gc()
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        runner = asyncio.run
    code: int = runner(Worker(settings, stop_asked).run())
    return code
