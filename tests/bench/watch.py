"""The watch section: `tally watch` reading the whole events log alone (its top rate), then beside
the worker during a drain at the worker's top rate (its CPU per 1,000 events, its lag when the
drain ends, how long it takes to catch up)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.bench.infra import PARTITIONS, Names, free_port
from tests.bench.kafka_io import Outcomes, preload
from tests.bench.progress import note
from tests.bench.watch_figures import Phase, WatchFigures
from tests.bench.worker import WorkerProcess, cpu_seconds, scrape
from tests.bench.workload import Command, Signer, record

APPLIED = "tally_watch_events_total"
ALERTS = "tally_watch_alerts_total"


@dataclass(frozen=True, slots=True)
class Section:
    names: Names
    env: dict[str, str]  # the worker's environment
    worker_pid: int
    signer: Signer
    outcomes: Outcomes
    out: Path


async def run(s: Section, commands: list[Command]) -> WatchFigures:
    port = free_port()
    group = f"bench-{s.names.run}-watch"
    env = s.env | {"TALLY_WATCH_PORT": str(port), "TALLY_WATCH_GROUP_ID": group}
    watch = WorkerProcess(env, port, s.out / "watch.log", "watch")
    figures = WatchFigures()
    note(f"starting tally watch on port {port}: reading the events log from its start")
    watch.start()
    try:
        await watch.wait_ready()
        started, cpu = time.time(), cpu_seconds(watch.pid)
        applied = (await scrape(port)).get(APPLIED, 0.0)
        end = await log_end(s.names.bootstrap, s.names.tally_topics["EVENTS"])
        done = await _applied(port, end, "watch: the log alone", 600)
        seconds, used = done - started, cpu_seconds(watch.pid) - cpu
        figures.alone = Phase(end - int(applied), seconds, used)
        figures.drain = await _beside(s, watch, port, commands)
        metrics = await scrape(port)
        figures.alerts = int(metrics.get(ALERTS, 0))
        figures.peak_rss_mib = watch.peak_rss_mib()
    finally:
        watch.stop()
        await _delete_topics(s.names.bootstrap, f"{group}-")
    return figures


async def _beside(s: Section, watch: WorkerProcess, port: int, commands: list[Command]) -> Phase:
    """The worker drains `commands` at its top rate while the watch follows the events."""
    topic = s.names.tally_topics["EVENTS"]
    before, applied_before = await _settled(s.names.bootstrap, topic, port)
    cpu_before, worker_before = cpu_seconds(watch.pid), cpu_seconds(s.worker_pid)
    started = time.time()
    await preload(
        s.names.bootstrap,
        s.names.tally_topics["COMMANDS"],
        (record(c, s.signer) for c in commands),
        len(commands),
    )
    done = await s.outcomes.wait_for([c.id for c in commands], "watch: drain beside", 600)
    at_end = await log_end(s.names.bootstrap, topic)
    applied_at_end = (await scrape(port)).get(APPLIED, 0.0)
    finished = max(o.timestamp_ms for o in done) / 1000
    caught_up = await _applied(port, applied_before + at_end - before, "watch: catch up", 300)
    events = at_end - before
    return Phase(
        events=events,
        seconds=finished - started,
        cpu_seconds=cpu_seconds(watch.pid) - cpu_before,
        commands=len(commands),
        lag_at_end=events - int(applied_at_end - applied_before),
        catch_up_seconds=max(0.0, caught_up - finished),
        worker_cpu_seconds=cpu_seconds(s.worker_pid) - worker_before,
    )


async def _settled(bootstrap: str, topic: str, port: int) -> tuple[int, float]:
    """The log's end and the watch's applied count once it has applied all of it: the alerts
    it publishes while catching up lengthen the log it reads, so until the end stays put."""
    while True:
        end = await log_end(bootstrap, topic)
        await _applied(port, end, "watch: settle", 120)
        applied = (await scrape(port)).get(APPLIED, 0.0)
        if await log_end(bootstrap, topic) == end and applied == end:
            return end, applied
        await asyncio.sleep(0.2)


async def _applied(port: int, count: float, label: str, timeout: float) -> float:
    """Wait until the watch has applied `count` records in all; the wall clock then."""
    deadline = time.monotonic() + timeout
    while (await scrape(port)).get(APPLIED, 0.0) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{label}: not {count:.0f} records applied in {timeout:.0f}s")
        await asyncio.sleep(0.02)
    return time.time()


async def log_end(bootstrap: str, topic: str) -> int:
    """Records in `topic` now: the sum of its partitions' end offsets (the run's topics are
    new, so each starts at offset 0)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        await admin.start()
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
    except Exception as exc:
        note(f"clean-up of the watch's topics failed: {exc!r}")
    finally:
        await admin.close()
