"""Isolation of one benchmark run: its own topics, databases, group ids and port; clean-up."""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient

from tests.bench.progress import note

PARTITIONS = 6  # Tally's default TALLY_PARTITIONS; every topic of the run gets the same


@dataclass(frozen=True, slots=True)
class Names:
    run: str
    bootstrap: str
    mongo_uri: str
    secret: str = field(repr=False)
    http_port: int

    def topic(self, part: str) -> str:
        return f"bench.{self.run}.{part}"

    def db(self, part: str) -> str:
        return f"bench_{self.run}_{part}"

    @property
    def tally_topics(self) -> dict[str, str]:
        return {
            "COMMANDS": self.topic("commands"),
            "EVENTS": self.topic("events"),
            "TRANSFERS": self.topic("transfers"),
            "DLQ": self.topic("dlq"),
        }

    @property
    def all_topics(self) -> list[str]:
        extra = ["ceiling-in", "ceiling-out", "naive-in", "naive-out"]
        return [*self.tally_topics.values(), *(self.topic(p) for p in extra)]

    @property
    def all_dbs(self) -> list[str]:
        return [self.db("tally"), self.db("ceiling"), self.db("naive")]

    def worker_env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
        env |= {f"TALLY_TOPIC_{k}": v for k, v in self.tally_topics.items()}
        env |= {
            "TALLY_KAFKA_BOOTSTRAP": self.bootstrap,
            "TALLY_MONGO_URI": self.mongo_uri,
            "TALLY_MONGO_DB": self.db("tally"),
            "TALLY_GROUP_ID": f"bench-{self.run}-tally",
            "TALLY_HTTP_PORT": str(self.http_port),
            "TALLY_JWT_SECRET": self.secret,
            "TALLY_PARTITIONS": str(PARTITIONS),
            "TALLY_LOG_LEVEL": "WARNING",
        }
        return env | extra


def new_names(bootstrap: str, mongo_uri: str) -> Names:
    run = f"{time.strftime('%H%M%S')}{secrets.token_hex(3)}"
    return Names(run, bootstrap, mongo_uri, secrets.token_urlsafe(48), free_port())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def create_topics(names: Names) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=names.bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in names.all_topics])
    finally:
        await admin.close()


async def clean_up(names: Names) -> None:
    """Delete the run's topics and databases; best effort, never raises."""
    admin = AIOKafkaAdminClient(bootstrap_servers=names.bootstrap, request_timeout_ms=15000)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        mine = [t for t in names.all_topics if t in existing]
        if mine:
            await admin.delete_topics(mine)
    except Exception as exc:
        note(f"clean-up of topics failed: {exc!r}")
    finally:
        await admin.close()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(names.mongo_uri)
    try:
        for db in names.all_dbs:
            await client.drop_database(db)
    except Exception as exc:
        note(f"clean-up of databases failed: {exc!r}")
    finally:
        await client.close()
