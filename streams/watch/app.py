"""The watch's composition root: topics first, then the faust app, its tables, agent, timers
and HTTP endpoint, all built in `run_watch` (nothing connects at import time)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

import faust
from mode import Service

from handlers.velocity import MICROS, expired
from handlers.volumes import MINUTE_US
from streams import kafka, kafka_auth
from streams.health import Health
from streams.retry import Backoff
from streams.settings import ConfigError, Settings
from streams.watch import views
from streams.watch.consumer import Consumer, Observer, Owned
from streams.watch.positions import Positions, dump_next, load_next
from streams.watch.process import Watcher
from streams.watch.signing import Signer, check_accepted
from streams.watch.tables import (
    Shelf,
    bucket_of,
    dump_velocity,
    dump_volume,
    load_velocity,
    load_volume,
)
from streams.watch.web import build_app
from streams.web import serve

log = logging.getLogger("tally.watch")

BATCH = 1000  # events per batch at most: one changelog round trip each
BATCH_WITHIN_S = 0.2  # how long a batch waits to fill
KEEP_ALERT_US = 24 * 3600 * MICROS  # an account's last alert stays in the latest-alerts view
EXPIRE_EVERY_S = 30.0


def run_watch(settings: Settings) -> int:
    """Run `tally watch` until SIGTERM or Ctrl-C; the exit code."""
    level = logging.getLevelName(settings.log_level)
    for name in ("faust", "mode"):  # their INFO is a table per rebalance; ours say what matters
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    signer = Signer(settings) if settings.watch_freeze else None
    if signer is not None:
        check_accepted(signer, settings)
    partitions = asyncio.run(_prepare(settings))
    if partitions is None:  # stopped while waiting for Kafka
        return 0
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # faust wants a data directory even for tables in memory; it holds nothing worth keeping.
    with tempfile.TemporaryDirectory(prefix=f"{settings.watch_group_id}-") as datadir:
        app, http = _build(settings, partitions, signer, Path(datadir))
        worker = faust.Worker(
            app, http, loop=loop, loglevel=settings.log_level, override_logging=False, quiet=True
        )
        worker.spinner = None  # faust's terminal spinner: our logs are the only output
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 1
    return 0


async def _prepare(settings: Settings) -> int | None:
    """Create missing topics as a worker would, and read `ledger.events`' partition count (the
    tables' changelogs get as many); retried while Kafka is not there yet."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    backoff = Backoff(0.2, settings.retry_backoff_max)
    while not stop.is_set():
        admin = kafka.admin(settings)
        try:
            await kafka_auth.check_credentials(settings)
            await admin.start()
            await kafka.ensure_topics(admin, settings)
            described = await admin.describe_topics([settings.topic_events])
            return len(described[0]["partitions"])
        except (kafka.TopicError, ConfigError):
            raise
        except Exception as exc:
            log.warning("start-up step failed; retrying", extra={"error": repr(exc)[:200]})
        finally:
            await admin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff.delay())
    return None


def _build(
    settings: Settings, partitions: int, signer: Signer | None, datadir: Path
) -> tuple[faust.App, Any]:
    app = faust.App(
        settings.watch_group_id,
        broker=[f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",")],
        broker_credentials=_credentials(settings),
        store="memory://",
        datadir=datadir,
        autodiscover=False,
        web_enabled=False,
        topic_partitions=partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=max(settings.session_timeout_ms / 3000, 0.1),
        producer_acks=-1,
        producer_max_batch_size=256 * 1024,
        producer_linger=0.002,
    )
    schema: Any = faust.Schema(key_serializer="json", value_serializer="json")

    async def produce(topic: str, partition: int, key: bytes, value: bytes | None) -> Any:
        return await app.producer.send(topic, key, value, partition, None, None)

    def shelf(name: str, load: Any, dump: Any) -> Shelf[Any]:
        table = app.Table(name, partitions=partitions, schema=schema)
        return Shelf(table, table.changelog_topic.get_topic_name(), produce, load, dump)

    velocity = shelf("velocity", load_velocity, dump_velocity)
    volumes = shelf("volumes", load_volume, dump_volume)
    positions = shelf("positions", load_next, dump_next)
    health = Health(
        checks={
            "kafka": "not connected yet",
            "consumer_group": "not joined yet",
            "recovery": "tables not restored yet",
            "publish": None,
        }
    )

    async def send(message: Any) -> Any:
        return await app.producer.send_and_wait(
            message.topic, message.key, message.value, None, None, message.headers
        )

    events = app.topic(settings.topic_events, key_serializer="raw", value_serializer="raw")
    watcher = Watcher(
        settings,
        velocity,
        volumes,
        send,
        signer,
        Positions(positions, Consumer(app, settings.topic_events)),
        lambda problem: health.set("publish", problem),
    )

    async def watch(stream: Any) -> None:
        async for batch in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            await watcher.take(batch)

    app.agent(events, name="watch")(watch)
    owned = Owned(app, settings.topic_events)

    observer = Observer(app, owned, watcher, health)

    async def observe() -> None:
        await observer()

    async def expire() -> None:
        await _expire(watcher, velocity, volumes, owned())

    app.timer(2.0)(observe)
    app.timer(EXPIRE_EVERY_S)(expire)

    def now() -> int:
        return int(time.time() * MICROS)

    def volumes_view(minutes: int) -> dict[str, Any]:
        return views.volumes(volumes, owned(), now(), minutes)

    def alerts_view(limit: int) -> dict[str, Any]:
        return views.alerts(velocity, owned(), settings.watch_window_s, limit)

    http = _Http(build_app(health, volumes_view, alerts_view), settings)
    return app, http


async def _expire(
    watcher: Watcher, velocity: Shelf[Any], volumes: Shelf[Any], partitions: frozenset[int]
) -> None:
    """Forget what can no longer count, judged by each partition's event time (not the wall
    clock: a watch catching up on a backlog must not forget what its events still need)."""
    for partition, account, state in list(velocity.items(partitions)):
        now = watcher.stream_time.get(partition)
        if now is not None and expired(state, now, watcher.rule, KEEP_ALERT_US):
            await velocity.drop(partition, account)
    for partition, name, _ in list(volumes.items(partitions)):
        now = watcher.stream_time.get(partition)
        oldest = now - views.MAX_MINUTES * MINUTE_US if now is not None else None
        if oldest is not None and bucket_of(name).minute < oldest:
            await volumes.drop(partition, name)


def _credentials(settings: Settings) -> Any:
    """faust's form of the Kafka security settings every Tally client uses."""
    found = settings.kafka_options.get("ssl_context")
    ssl_context = found if isinstance(found, ssl.SSLContext) else None
    if settings.kafka_sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            ssl_context=ssl_context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    return ssl_context


class _Http(Service):
    """The HTTP endpoint as a service of the faust worker: it answers /healthz while the
    tables are still being restored."""

    def __init__(self, app: Any, settings: Settings) -> None:
        super().__init__()
        self._app = app
        self._settings = settings
        self._runner: Any = None

    async def on_start(self) -> None:
        s = self._settings
        self._runner = await serve(self._app, s.watch_host, s.watch_port)
        log.info("http listening", extra={"host": s.watch_host, "port": s.watch_port})

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
