"""Black-box harness: run `tally worker` as a subprocess on isolated topics and a fresh database."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2
from pymongo import AsyncMongoClient

KAFKA = os.environ.get("TALLY_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
MONGO = os.environ.get("TALLY_MONGO_URI", "mongodb://127.0.0.1:27017")
SECRET = "e2e-secret-that-is-long-enough-for-hs256!"
TALLY = str(Path(sys.executable).with_name("tally"))
MARKER_TYPE = "e2e.marker.v1"  # no such command: rejected unsupported_type, changes nothing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token(
    sub: str = "ops-1", roles: Iterable[str] = ("ops",), ttl: int = 3600, **extra: Any
) -> str:
    claims = {"sub": sub, "roles": list(roles), "exp": int(time.time()) + ttl, **extra}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@dataclass
class Outcome:
    id: str
    type: str
    subject: str | None
    correlationid: str
    causationid: str | None
    key: bytes | None
    headers: dict[str, str]
    data: dict[str, Any]


@dataclass
class Tally:
    """One isolated Tally deployment: its topics, database, group and HTTP port."""

    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    port: int = field(default_factory=free_port)
    partitions: int = 3
    process: subprocess.Popen[bytes] | None = None
    api_port: int = field(default_factory=free_port)
    api: subprocess.Popen[bytes] | None = None

    @property
    def topics(self) -> dict[str, str]:
        return {k: f"e2e-{self.run}.{k}" for k in ("commands", "events", "transfers", "dlq")}

    @property
    def db(self) -> str:
        return f"e2e_{self.run}"

    def env(self, **overrides: str) -> dict[str, str]:
        env = dict(os.environ)
        env |= {
            "TALLY_KAFKA_BOOTSTRAP": KAFKA,
            "TALLY_MONGO_URI": MONGO,
            "TALLY_MONGO_DB": self.db,
            "TALLY_GROUP_ID": f"e2e-{self.run}",
            "TALLY_HTTP_PORT": str(self.port),
            "TALLY_API_PORT": str(self.api_port),
            "TALLY_JWT_SECRET": SECRET,
            "TALLY_PARTITIONS": str(self.partitions),
            "TALLY_LOG_FORMAT": "json",
            "TALLY_SESSION_TIMEOUT_MS": "6000",
        }
        env |= {f"TALLY_TOPIC_{k.upper()}": v for k, v in self.topics.items()}
        return env | overrides

    def start(self, log: Path, **overrides: str) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [TALLY, "worker"], env=self.env(**overrides), stdout=out, stderr=out
            )
        return self.process

    def start_api(self, log: Path, **overrides: str) -> subprocess.Popen[bytes]:
        """`tally api` beside the worker, on the same topics and database."""
        with log.open("ab") as out:
            self.api = subprocess.Popen(
                [TALLY, "api"], env=self.env(**overrides), stdout=out, stderr=out
            )
        return self.api

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def stop(self, timeout: float = 40) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop_api(self, timeout: float = 20) -> int:
        assert self.api is not None
        if self.api.poll() is None:
            self.api.send_signal(signal.SIGTERM)
        return self.api.wait(timeout)

    async def wait_ready(self, timeout: float = 60) -> None:
        await wait_ready(self.process, self.port, timeout)

    async def wait_api_ready(self, timeout: float = 60) -> None:
        await wait_ready(self.api, self.api_port, timeout)

    async def cleanup(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            doomed = [t for t in self.topics.values() if t in existing]
            if doomed:
                await admin.delete_topics(doomed)
        finally:
            await admin.close()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGO)
        await client.drop_database(self.db)
        await client.close()


async def wait_ready(process: subprocess.Popen[bytes] | None, port: int, timeout: float) -> None:
    from aiohttp import ClientSession

    deadline = time.monotonic() + timeout
    async with ClientSession() as http:
        while time.monotonic() < deadline:
            assert process is not None and process.poll() is None, "the process exited"
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            await asyncio.sleep(0.3)
    raise TimeoutError(f"the process on port {port} did not become ready")


def partition(key: str, partitions: int) -> int:
    """The partition of `key`, as the producers' default (murmur2) partitioner picks it."""
    return int((murmur2(key.encode()) & 0x7FFFFFFF) % partitions)


def on_partition(new_id: Callable[[str], str], name: str, wanted: int, partitions: int) -> str:
    """A fresh id `<name><n>` that falls on partition `wanted`."""
    return next(
        a for i in itertools.count() if partition(a := new_id(f"{name}{i}"), partitions) == wanted
    )


@asynccontextmanager
async def worker_and_api(logs: Path, **worker_env: str) -> AsyncIterator[Tally]:
    """A worker and `tally api` beside it, ready; both must exit 0 when stopped. Logs go to
    `logs`/worker.log and `logs`/api.log."""
    deployment = Tally()
    deployment.start(logs / "worker.log", **worker_env)
    deployment.start_api(logs / "api.log")
    try:
        await deployment.wait_ready()
        await deployment.wait_api_ready()
        yield deployment
    finally:
        api_code = deployment.stop_api()
        code = deployment.stop()
        await deployment.cleanup()
        assert code == 0, (logs / "worker.log").read_text()[-3000:]
        assert api_code == 0, (logs / "api.log").read_text()[-3000:]


@asynccontextmanager
async def two_workers(logs: Path, partitions: int = 2, **env: str) -> AsyncIterator[Tally]:
    """Two workers of one deployment, on as many partitions: each owns a part of them, so a
    transfer between accounts of different owners goes through ledger.transfers (one worker
    owning both settles it in its batch, ADR 5). Yields the first; both share its topics and
    run with `env` added to their environment."""
    first = Tally(partitions=partitions)
    second = Tally(run=first.run, partitions=partitions)
    try:
        first.start(logs / "first.log", **env)
        await first.wait_ready()
        second.start(logs / "second.log", **env)
        await second.wait_ready()
        await first.wait_ready()  # in the group again after the rebalance
        yield first
    finally:
        codes = [w.stop() for w in (first, second) if w.process is not None]
        await first.cleanup()
        assert codes == [0] * len(codes), (logs / "first.log").read_text()[-3000:]


class Producer:
    """An upstream producer: sends CloudEvents in binary (default) or structured mode."""

    def __init__(self, tally: Tally) -> None:
        self._tally = tally
        self._producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all")

    async def __aenter__(self) -> Producer:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send(
        self,
        command_type: str,
        data: Any,
        *,
        command_id: str | None = None,
        auth: str | None = None,
        key: str | None = None,
        structured: bool = False,
        extra_headers: list[tuple[str, bytes]] | None = None,
    ) -> str:
        command_id = command_id or str(uuid.uuid4())
        auth = token() if auth is None else auth
        if key is None and isinstance(data, dict):
            key = data.get("from_account") or data.get("account_id")
        attributes = {"specversion": "1.0", "id": command_id, "source": "e2e", "type": command_type}
        if auth:
            attributes["authtoken"] = auth
        if structured:
            value = orjson.dumps({**attributes, "data": data})
            headers = [("content-type", b"application/cloudevents+json")]
        else:
            value = orjson.dumps(data)
            headers = [(f"ce_{k}", v.encode()) for k, v in attributes.items()]
            headers.append(("content-type", b"application/json"))
        await self.raw(
            value, key=key.encode() if key else None, headers=headers + (extra_headers or [])
        )
        return command_id

    async def raw(
        self,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        await self._producer.send_and_wait(
            self._tally.topics["commands"], value, key=key, headers=headers or []
        )


class Reader:
    """A downstream consumer of one topic, from the beginning."""

    def __init__(self, topic: str) -> None:
        self._consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=KAFKA, auto_offset_reset="earliest", enable_auto_commit=False
        )
        self.records: list[Any] = []

    async def __aenter__(self) -> Reader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def until(self, predicate: Any, timeout: float = 30) -> list[Any]:
        deadline = time.monotonic() + timeout
        while not predicate(self.records):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met; have {len(self.records)} records")
            await self._read()
        return self.records

    async def to_end(self, timeout: float = 30) -> list[Any]:
        """Reads up to the end the topic has now, on every partition."""
        ends = await self._consumer.end_offsets(list(self._consumer.assignment()))
        deadline = time.monotonic() + timeout
        for tp, end in ends.items():
            while await self._consumer.position(tp) < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{tp} not read to offset {end}")
                await self._read()
        return self.records

    async def _read(self) -> None:
        batch = await self._consumer.getmany(timeout_ms=200)
        for records in batch.values():
            self.records.extend(records)


def outcome(record: Any) -> Outcome:
    headers = {k: v.decode() for k, v in record.headers}
    return Outcome(
        id=headers["ce_id"],
        type=headers["ce_type"],
        subject=headers.get("ce_subject"),
        correlationid=headers["ce_correlationid"],
        causationid=headers.get("ce_causationid"),
        key=record.key,
        headers=headers,
        data=orjson.loads(record.value),
    )


class Outcomes(Reader):
    """Outcome events, looked up by command id."""

    def by_command(self) -> dict[str, list[Outcome]]:
        found: dict[str, list[Outcome]] = {}
        for record in self.records:
            event = outcome(record)
            found.setdefault(event.correlationid, []).append(event)
        return found

    async def of(self, *command_ids: str, timeout: float = 30) -> dict[str, Outcome]:
        await self.until(lambda _: all(c in self.by_command() for c in command_ids), timeout)
        found = self.by_command()
        return {c: found[c][0] for c in command_ids}


async def all_outcomes(
    producer: Producer, outcomes: Outcomes, command_id: str, *keys: str
) -> list[Outcome]:
    """Every outcome of `command_id`, read once it has one and no later one can come.

    A worker decides a partition in order and publishes each batch's outcomes after the
    previous batch's, so the outcome of a marker command sent now on a key is published after
    anything the command (or a leg of it) published on that key's partition. One marker per
    key in turn (a transfer's source, then its destination: the later one is sent after every
    leg the earlier one's worker published), then the events topic read to its end."""
    await outcomes.of(command_id)
    for key in keys:
        marker = await producer.send(MARKER_TYPE, {"marker": key}, key=key)
        await outcomes.of(marker)
    await outcomes.to_end()
    return outcomes.by_command()[command_id]
