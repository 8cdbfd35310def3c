"""Two workers deciding the same records at once (a revoked owner whose batch outlived the
revocation wait) should publish each outcome byte-identical, as a republication is."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import jwt
import orjson
import pytest
from pymongo import AsyncMongoClient

from handlers.auth import TokenKeys
from streams.intake import Decoder
from streams.pipeline import Pipeline
from streams.settings import Settings
from streams.store import MongoStore
from tests.conftest import MONGO_URI
from tests.integration.kit import Recorder

pytestmark = pytest.mark.integration

SECRET = "integration-secret-long-enough-for-hs256"


class Record:
    def __init__(self, cid: str, data: dict[str, Any], token: str) -> None:
        self.topic, self.partition, self.offset = "ledger.commands", 0, 0
        self.key = data["account_id"].encode()
        self.value = orjson.dumps(data)
        self.timestamp = int(time.time() * 1000)
        self.headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", cid.encode()),
            ("ce_source", b"test"),
            ("ce_type", b"ledger.deposit.v1"),
            ("ce_authtoken", token.encode()),
        ]


class OvertakenStore(MongoStore):
    """Lets another worker process the whole batch between this worker's load and write."""

    other: Pipeline | None = None
    records: list[Any] = []

    async def put_inbox(self, records: Sequence[dict[str, Any]]) -> list[str]:
        if self.other is not None:
            other, self.other = self.other, None
            await other.process(self.records, time.time())
        return await super().put_inbox(records)


@pytest.fixture
async def db_name() -> AsyncIterator[str]:
    name = f"it_{uuid.uuid4().hex[:8]}"
    yield name
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGO_URI)
    await client.drop_database(name)
    await client.close()


def pipeline(store: MongoStore, publisher: Recorder) -> Pipeline:
    settings = Settings(jwt_secret=SECRET, mongo_db="unused")
    decoder = Decoder(settings, TokenKeys(secret=SECRET))
    return Pipeline(settings, store, publisher, decoder)


async def test_an_outcome_decided_twice_at_once_is_published_in_one_version(
    db_name: str,
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGO_URI, tz_aware=True)
    token = jwt.encode({"sub": "psp", "roles": ["payments"], "exp": 1}, SECRET)  # expired
    data = {"account_id": "a", "amount": 5, "currency": "EUR", "external_ref": "r"}
    records = [Record("dep-1", data, token)]
    publisher = Recorder()
    zombie_store = OvertakenStore(client, db_name)
    zombie_store.records = records
    zombie_store.other = pipeline(MongoStore(client, db_name), publisher)
    await pipeline(zombie_store, publisher).process(records, time.time())
    await client.close()

    versions = {
        (m.value, tuple(sorted(m.headers))) for m in publisher.sent if m.topic == "ledger.events"
    }
    assert len(versions) == 1
