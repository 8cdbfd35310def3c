"""One chaos run: infrastructure, workers, traffic and faults, then the verdict."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from tests.chaos import faults
from tests.chaos.config import DEFAULTS, Config
from tests.chaos.fleet import ROOT, Fleet
from tests.chaos.infra import Infra
from tests.chaos.kafka_io import (
    Producer,
    Tail,
    create_topics,
    delete_topics,
    group_lag,
    keys_per_partition,
    read_all,
)
from tests.chaos.measure import resume_times
from tests.chaos.messages import Message, chunks
from tests.chaos.summary import summarize
from tests.chaos.traffic import Traffic
from tests.chaos.verify import Evidence, Report, verify

PROBE_TIMEOUT_S = 240.0


@dataclass(frozen=True, slots=True)
class Names:
    run_id: str

    @property
    def prefix(self) -> str:
        return f"chaos-{self.run_id}."

    def topic(self, name: str) -> str:
        return f"{self.prefix}ledger.{name}"

    @property
    def topics(self) -> list[str]:
        return [self.topic(n) for n in ("commands", "events", "transfers", "dlq")]

    @property
    def database(self) -> str:
        return f"chaos_{self.run_id.replace('-', '_')}"


@dataclass(slots=True)
class Recovery:
    kind: str
    end: float  # when the fault ended (epoch seconds)
    catch_up_s: float | None  # until a probe sent then is answered on every partition
    resume_s: float | None = None  # until every partition publishes again (computed last)


@dataclass(slots=True)
class Run:
    cfg: Config
    infra: Infra
    dir: Path
    names: Names
    fleet: Fleet
    traffic: Traffic
    producer: Producer
    tail: Tail
    commands: dict[str, Message] = field(default_factory=dict)
    poison: dict[str, Message] = field(default_factory=dict)
    recoveries: list[Recovery] = field(default_factory=list)
    readiness: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # harness-observed guarantee breaks
    membership_changes: int = 0
    planned: int = 0
    traffic_s: float = 0.0  # how long sending the main traffic took
    traffic_done: asyncio.Event = field(default_factory=asyncio.Event)
    _sent: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def rng(self) -> Any:
        return self.traffic.rng

    def register(self, messages: list[Message]) -> None:
        for m in messages:
            (self.poison if m.poison else self.commands).setdefault(m.id, m)

    async def send(self, messages: list[Message]) -> None:
        self.register(messages)
        await self.producer.send_all(messages)
        async with self._sent:
            self._sent.notify_all()

    async def sent_at_least(self, fraction: float) -> None:
        """Returns once `fraction` of the planned records are sent (or all traffic is)."""
        async with self._sent:
            await self._sent.wait_for(
                lambda: self.producer.count >= fraction * self.planned or self.traffic_done.is_set()
            )

    async def send_paced(self, messages: list[Message]) -> None:
        tick = 0.1
        per_tick = max(1, int(self.cfg.rate * tick))
        began = time.monotonic()
        for i, chunk in enumerate(chunks(messages, per_tick)):
            await self.send(chunk)
            ahead = began + (i + 1) * tick - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        self.traffic_s = time.monotonic() - began
        self.traffic_done.set()
        async with self._sent:
            self._sent.notify_all()

    def gap(self, events: int) -> float:
        """A mean pause that spreads `events` faults over the traffic (each also waits for
        its recovery, ~10 s), so faults keep coming while the load lasts."""
        duration = self.planned / self.cfg.rate
        return max(1.5, duration / max(events, 1) - 10.0)

    def answered(self, ids: list[str]) -> bool:
        return all(i in self.tail.by_correlation for i in ids)

    async def wait_answered(self, ids: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.answered(ids):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def probe(self, kind: str) -> Recovery:
        """Called as a fault ends: one command per partition, so every partition has work;
        catch-up is until all are answered (behind the backlog the fault left)."""
        end, since = time.time(), time.monotonic()
        keys = keys_per_partition("probe-", self.cfg.partitions)
        messages = [self.traffic.probe(k) for k in keys]
        await self.send(messages)
        ids = [m.id for m in messages]
        seconds = None
        if await self.wait_answered(ids, PROBE_TIMEOUT_S):
            last = max(self.tail.by_correlation[i][0].arrived for i in ids)
            seconds = round(last - since, 2)
        recovery = Recovery(kind, end, seconds)
        self.recoveries.append(recovery)
        return recovery

    def progress(self, started: float) -> str:
        answered = sum(1 for i in self.commands if i in self.tail.by_correlation)
        dead = sum(1 for i in self.poison if i in self.tail.by_poison)
        return (
            f"chaos {time.monotonic() - started:6.1f}s  sent {self.producer.count}/{self.planned}"
            f"  answered {answered}/{len(self.commands)}  dlq {dead}/{len(self.poison)}"
            f"  workers {len(self.fleet.members)}  kills {self.fleet.kills}"
            f"  outages {sum(self.infra.outages.values())}"
        )


async def run(cfg: Config) -> tuple[dict[str, Any], Report]:
    run_id = f"{time.strftime('%H%M%S')}-{cfg.seed}-{secrets.token_hex(3)}"
    run_dir = ROOT / ".local" / "chaos" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.needs_private_infra:
        infra = Infra.private_in(run_dir / "infra")
    else:
        infra = Infra.shared(cfg.kafka, cfg.mongo)
    say(f"chaos run {run_id}: scenarios {sorted(cfg.scenarios)}, logs in {run_dir}")
    await infra.up(default_pair=(cfg.kafka, cfg.mongo) == (DEFAULTS.kafka, DEFAULTS.mongo))
    names = Names(run_id)
    secret = secrets.token_urlsafe(40)
    fleet = Fleet(_worker_env(cfg, infra, names, secret), run_dir)
    producer = Producer(infra.kafka, names.topic("commands"))
    tail = Tail(infra.kafka, [names.topic("events"), names.topic("dlq")])
    traffic = Traffic(cfg.seed, cfg.commands, secret, cfg.accounts)
    r = Run(cfg, infra, run_dir, names, fleet, traffic, producer, tail)
    try:
        summary, report = await _execute(r)
        if report.ok and not cfg.keep:
            await _clean(r)
    finally:
        await fleet.kill_all()
        await tail.stop()
        await producer.stop()
        await infra.down()  # a private pair only; its data stays for a failed run
    if report.ok and not cfg.keep:  # a failed run keeps its logs (and private data)
        shutil.rmtree(run_dir, ignore_errors=True)
    return summary, report


async def _execute(r: Run) -> tuple[dict[str, Any], Report]:
    cfg = r.cfg
    await create_topics(r.infra.kafka, r.names.topics, cfg.partitions)
    await r.producer.start()
    await r.tail.start()
    for _ in range(cfg.workers):
        await r.fleet.start()
    started = time.monotonic()
    reporter = asyncio.create_task(_report_progress(r, started))
    try:
        setup = r.traffic.setup()
        main = r.traffic.main(cfg.duplicate_rate, cfg.poison_rate)
        r.planned = len(setup) + len(main)
        await r.send(setup)
        if not await r.wait_answered([m.id for m in setup], cfg.drain_timeout):
            r.problems.append("setup commands were not all answered")
        await asyncio.gather(r.send_paced(main), faults.inject(r))
        await _drain(r)
        for stop in await r.fleet.stop_all(cfg.shutdown_timeout):
            faults.check_stop(r, stop)
    finally:
        reporter.cancel()
    await r.tail.stop()
    evidence = await _evidence(r)
    resume_times(r.recoveries, evidence.events, r.commands, cfg.partitions)
    report = verify(evidence)
    return summarize(r, report, time.monotonic() - started), report


async def _drain(r: Run) -> None:
    """Wait until every command is answered, every poison dead-lettered and the lag is 0."""
    if not r.fleet.members:
        await r.fleet.start()
    deadline = time.monotonic() + r.cfg.drain_timeout
    topics = [r.names.topic("commands"), r.names.topic("transfers")]
    while time.monotonic() < deadline:
        if r.answered(list(r.commands)) and all(p in r.tail.by_poison for p in r.poison):
            with contextlib.suppress(Exception):
                lag = await group_lag(r.infra.kafka, r.names.run_id, topics)
                if not any(lag.values()):
                    return
        await asyncio.sleep(1.0)
    r.problems.append(f"not drained after {r.cfg.drain_timeout:.0f}s")


async def _evidence(r: Run) -> Evidence:
    kafka = r.infra.kafka
    topics = [r.names.topic("commands"), r.names.topic("transfers")]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(r.infra.mongo, tz_aware=True)
    try:
        db = client[r.names.database]
        accounts = await db["accounts"].find({}).to_list(None)
        entries = await db["entries"].find({}).to_list(None)
        transfers = await db["transfers"].find({}).to_list(None)
    finally:
        await client.close()
    return Evidence(
        commands=r.commands,
        poison=r.poison,
        events=await read_all(kafka, r.names.topic("events")),
        dlq=await read_all(kafka, r.names.topic("dlq")),
        accounts=accounts,
        entries=entries,
        transfers=transfers,
        lag=await group_lag(kafka, r.names.run_id, topics),
    )


def _worker_env(cfg: Config, infra: Infra, names: Names, secret: str) -> dict[str, str]:
    return {
        "TALLY_KAFKA_BOOTSTRAP": infra.kafka,
        "TALLY_MONGO_URI": infra.mongo,
        "TALLY_MONGO_DB": names.database,
        "TALLY_GROUP_ID": names.run_id,
        "TALLY_TOPIC_COMMANDS": names.topic("commands"),
        "TALLY_TOPIC_EVENTS": names.topic("events"),
        "TALLY_TOPIC_TRANSFERS": names.topic("transfers"),
        "TALLY_TOPIC_DLQ": names.topic("dlq"),
        "TALLY_PARTITIONS": str(cfg.partitions),
        "TALLY_JWT_SECRET": secret,
        "TALLY_SHUTDOWN_TIMEOUT": str(cfg.shutdown_timeout),
        "TALLY_SESSION_TIMEOUT_MS": str(cfg.session_timeout_ms),
        "TALLY_LOG_FORMAT": "json",
        "TALLY_LOG_LEVEL": "INFO",
    }


async def _report_progress(r: Run, started: float) -> None:
    while True:
        await asyncio.sleep(3.0)
        say(r.progress(started))


async def _clean(r: Run) -> None:
    with contextlib.suppress(Exception):
        await delete_topics(r.infra.kafka, r.names.topics)
    with contextlib.suppress(Exception):
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(r.infra.mongo)
        await client.drop_database(r.names.database)
        await client.close()


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
