"""The worker's composition root: it builds every client, starts them, runs the loop, stops."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

from streams import asyncapi, heartbeat, kafka, kafka_auth
from streams.batch_trace import UNTRACED, Tracing, worker_tracing
from streams.health import Health
from streams.intake import Decoder
from streams.jwks import key_source
from streams.loop import BatchLoop
from streams.pipeline import Pipeline
from streams.probes import probe_forever
from streams.publish import KafkaPublisher
from streams.retention import keep_inbox
from streams.retry import Backoff
from streams.runtime import tune_gc
from streams.settings import ConfigError, Settings
from streams.shutdown import Shutdown
from streams.store import MongoStore
from streams.web import build_app, serve

log = logging.getLogger("tally.worker")


class Worker:
    """Owns every client; nothing connects before run()."""

    def __init__(
        self,
        settings: Settings,
        stop_asked: Callable[[], bool] = lambda: False,
        tracing: Tracing = UNTRACED,
    ) -> None:
        self.settings = settings
        self._stop_asked = stop_asked
        self._tracing = tracing
        self.health = Health()
        self.shutdown = Shutdown(settings.shutdown_timeout)
        self._store = MongoStore.connect(settings.mongo_uri, settings.mongo_db)
        self._keys = key_source(settings)  # fixed keys, or a JWKS endpoint's
        self._id = heartbeat.worker_id()

    def stop(self) -> None:
        self.shutdown.request()

    def _build(self) -> None:
        # aiokafka clients bind to the running loop, so they are built inside run().
        s = self.settings
        self._admin = kafka.admin(s)
        self._publisher = KafkaPublisher(lambda: kafka.producer(s))
        self._consumer = kafka.consumer(s)
        ownership = kafka.Ownership(s.topic_commands, s.topic_transfers)
        pipeline = Pipeline(
            s,
            self._store,
            self._publisher,
            Decoder(s, self._keys),
            local=ownership,
            tracing=self._tracing,
        )
        self.loop = BatchLoop(
            s,
            self._consumer,
            pipeline,
            health=self.health,
            shutdown=self.shutdown,
            ownership=ownership,
            alive=self._alive,
        )

    async def run(self) -> int:
        self._build()
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
        probes = asyncio.create_task(probe_forever(self.health, self._store, self._admin))
        retention = asyncio.create_task(keep_inbox(self._store, self.settings.idempotency_window))
        beats = asyncio.create_task(heartbeat.beat_forever(self._store, self._heartbeat))
        try:
            if await self._start():
                await self.loop.run()
        finally:
            probes.cancel()
            retention.cancel()
            beats.cancel()
            await self.loop.finish()  # what it has (a failed flush: redelivered)
            await self._close()
            await runner.cleanup()
            # the spans of what it finished, within what is left of the shutdown deadline
            self._tracing.close(min(5.0, max(0.5, self.shutdown.until_deadline())))
        log.info("stopped")
        return 0

    def _heartbeat(self) -> dict[str, Any]:
        s, held = self.settings, self._consumer.assignment()
        return heartbeat.heartbeat(self._id, s.group_id, s.http_port, self.health, held)

    async def _start(self) -> bool:
        """Connect everything, retrying while the infrastructure is not there yet."""
        steps = [
            ("mongodb", self._store.ensure_indexes),
            ("kafka", lambda: kafka_auth.check_credentials(self.settings)),
            ("kafka", self._admin.start),
            ("kafka", lambda: kafka.ensure_topics(self._admin, self.settings)),
            ("kafka", self._publisher.start),
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
            listener=kafka.Rebalance(self.loop.revoked, self.loop.assigned),
        )
        await self._consumer.start()

    async def _retry(self, name: str, step: Any) -> bool:
        backoff = Backoff(0.2, self.settings.retry_backoff_max)
        while not self.shutdown.asked.is_set():
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
                await self.shutdown.sleep(backoff.delay())
        return False

    async def _alive(self) -> None:
        """Raises unless the database and the broker answer now."""
        async with asyncio.timeout(5.0):
            await self._store.ping()
            await self._admin.describe_cluster()

    async def _close(self) -> None:
        for name, close in (
            ("consumer", self._consumer.stop),
            ("producer", self._publisher.stop),
            ("admin", self._admin.close),
            ("mongodb", self._store.close),
        ):
            try:
                remaining = self.shutdown.until_deadline()
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


def run_worker(settings: Settings, stop_asked: Callable[[], bool] = lambda: False) -> int:
    tracing = worker_tracing(settings)  # ConfigError (exit 2) on bad OTEL_*
    tune_gc()
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        runner = asyncio.run
    code: int = runner(Worker(settings, stop_asked, tracing).run())
    return code
