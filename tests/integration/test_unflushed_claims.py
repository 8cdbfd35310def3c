"""An external_ref or transfer_id claimed by a decision a crash left unflushed stays claimed."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
import orjson
import pytest
from pymongo import AsyncMongoClient

from handlers.auth import TokenKeys
from streams.intake import Decoder
from streams.pipeline import Pipeline
from streams.publish import Message
from streams.settings import Settings
from streams.store import MongoStore
from tests.conftest import MONGO_URI
from tests.integration.kit import Recorder

pytestmark = pytest.mark.integration

SECRET = "integration-secret-long-enough-for-hs256"


class CrashError(Exception):
    pass


class CrashAfterAccounts(MongoStore):
    """Dies once right after the account writes: outboxes written, journal and claims not."""

    armed = False

    async def write_accounts(self, writes: Any) -> None:
        await super().write_accounts(writes)
        if self.armed:
            self.armed = False
            raise CrashError("kill -9 between the account write and the effects")


class Record:
    def __init__(self, offset: int, ctype: str, data: dict[str, Any], cid: str) -> None:
        token = jwt.encode({"sub": "ops", "roles": ["ops"], "exp": int(time.time()) + 600}, SECRET)
        self.topic, self.partition, self.offset = "ledger.commands", 0, offset
        self.key = (data.get("from_account") or data["account_id"]).encode()
        self.value = orjson.dumps(data)
        self.timestamp = int(time.time() * 1000)
        self.headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", cid.encode()),
            ("ce_source", b"test"),
            ("ce_type", ctype.encode()),
            ("ce_authtoken", token.encode()),
        ]


def deposit(offset: int, cid: str) -> Record:
    data = {"account_id": "a", "amount": 100, "currency": "EUR", "external_ref": "psp-1"}
    return Record(offset, "ledger.deposit.v1", data, cid)


def transfer(offset: int, cid: str) -> Record:
    data = {"transfer_id": "t1", "from_account": "a", "to_account": "b", "amount": 10}
    return Record(offset, "ledger.transfer.v1", data | {"currency": "EUR"}, cid)


@pytest.fixture
async def store() -> AsyncIterator[CrashAfterAccounts]:
    name = f"it_{uuid.uuid4().hex[:8]}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGO_URI, tz_aware=True)
    yield CrashAfterAccounts(client, name)
    await client.drop_database(name)
    await client.close()


def pipeline(store: MongoStore, publisher: Recorder) -> Pipeline:
    settings = Settings(jwt_secret=SECRET, mongo_db="unused")
    decoder = Decoder(settings, TokenKeys(secret=SECRET))
    return Pipeline(settings, store, publisher, decoder)


def reasons(messages: list[Message]) -> dict[str, str]:
    found = {}
    for m in messages:
        headers = dict(m.headers)
        if m.topic == "ledger.events":
            data = orjson.loads(m.value or b"{}")
            found[headers["ce_correlationid"].decode()] = data.get("reason", "accepted")
    return found


async def test_a_reused_external_ref_or_transfer_id_is_refused_after_a_crash(
    store: CrashAfterAccounts,
) -> None:
    publisher = Recorder()
    opened = Record(0, "ledger.account.open.v1", {"account_id": "a", "owner_id": "o"}, "open")
    opened.value = orjson.dumps({"account_id": "a", "owner_id": "o", "currency": "EUR"})
    await pipeline(store, publisher).process([opened], time.time())
    first = [deposit(1, "dep-1"), transfer(2, "tr-1")]
    store.armed = True
    with pytest.raises(CrashError):
        await pipeline(store, publisher).process(first, time.time())
    # The new owner gets the uncommitted records again, followed by the reuses.
    again = [*first, deposit(3, "dep-2"), transfer(4, "tr-2")]
    await pipeline(store, publisher).process(again, time.time())

    verdicts = reasons(publisher.sent)
    assert verdicts["dep-1"] == "accepted"
    assert verdicts["dep-2"] == "duplicate_external_ref"
    assert verdicts["tr-2"] == "duplicate_transfer"
    account = await store.accounts.find_one({"_id": "a"})
    assert account is not None
    assert account["balance"] == 90  # one deposit of 100, one transfer of 10 in flight
