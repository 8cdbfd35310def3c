"""The pipeline on the real MongoDB-wire server: a batch replayed after a crash at any step."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
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
from streams.store import ConflictError, MongoStore
from tests.conftest import MONGO_URI
from tests.integration.kit import CrashError as SimulatedCrashError
from tests.integration.kit import Recorder as RecordingPublisher

pytestmark = pytest.mark.integration

SECRET = "integration-secret-long-enough-for-hs256"


@dataclass
class Record:
    """The fields of an aiokafka ConsumerRecord the pipeline reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int


class CrashingStore(MongoStore):
    """The real store, which 'crashes' once right after the named step succeeded."""

    crash_after: str | None = None
    interfere = False  # another writer changes the accounts between our load and our write

    async def _maybe_crash(self, step: str) -> None:
        if self.crash_after == step:
            self.crash_after = None
            raise SimulatedCrashError(step)

    async def put_inbox(self, records: Sequence[dict[str, Any]]) -> list[str]:
        taken = await super().put_inbox(records)
        await self._maybe_crash("put_inbox" if records else "")
        return taken

    async def write_accounts(self, writes: Any) -> None:
        if self.interfere:
            self.interfere = False
            await self.accounts.update_many({}, {"$inc": {"version": 1}})
        await super().write_accounts(writes)
        await self._maybe_crash("write_accounts")

    async def write_effects(self, effects: Any) -> None:
        await super().write_effects(effects)
        await self._maybe_crash("write_effects")


def command(offset: int, command_type: str, data: dict[str, Any], cid: str | None = None) -> Record:
    auth = jwt.encode({"sub": "ops", "roles": ["ops"], "exp": int(time.time()) + 600}, SECRET)
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", (cid or f"cmd-{offset}").encode()),
        ("ce_source", b"test"),
        ("ce_type", command_type.encode()),
        ("ce_authtoken", auth.encode()),
    ]
    key = (data.get("from_account") or data["account_id"]).encode()
    return Record(
        "ledger.commands", 0, offset, key, orjson.dumps(data), headers, int(time.time() * 1000)
    )


@pytest.fixture
async def env() -> AsyncIterator[tuple[Settings, CrashingStore, RecordingPublisher, Any]]:
    name = f"it_{uuid.uuid4().hex[:8]}"
    settings = Settings(jwt_secret=SECRET, mongo_db=name)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGO_URI, tz_aware=True)
    store = CrashingStore(client, name)
    await store.ensure_indexes()
    yield settings, store, RecordingPublisher(), client[name]
    await client.drop_database(name)
    await client.close()


def pipeline(settings: Settings, store: MongoStore, publisher: Any) -> Pipeline:
    decoder = Decoder(settings, TokenKeys(secret=SECRET))
    return Pipeline(settings, store, publisher, decoder)


def batch() -> list[Record]:
    return [
        command(
            0,
            "ledger.deposit.v1",
            {"account_id": "a", "amount": 5, "currency": "EUR", "external_ref": "early"},
        ),
        command(
            1, "ledger.account.open.v1", {"account_id": "a", "owner_id": "o", "currency": "EUR"}
        ),
        command(
            2,
            "ledger.deposit.v1",
            {"account_id": "a", "amount": 100, "currency": "EUR", "external_ref": "r1"},
        ),
        command(
            3,
            "ledger.withdrawal.v1",
            {"account_id": "a", "amount": 500, "currency": "EUR", "external_ref": "w1"},
        ),
        command(
            4,
            "ledger.transfer.v1",
            {
                "transfer_id": "t1",
                "from_account": "a",
                "to_account": "b",
                "amount": 40,
                "currency": "EUR",
            },
        ),
        command(
            5,
            "ledger.deposit.v1",
            {"account_id": "a", "amount": 100, "currency": "EUR", "external_ref": "r1"},
            cid="cmd-2",
        ),
    ]


def outcomes(messages: list[Message]) -> dict[str, set[tuple[str, bytes | None]]]:
    found: dict[str, set[tuple[str, bytes | None]]] = {}
    for m in messages:
        headers = dict(m.headers)
        if m.topic == "ledger.events":
            found.setdefault(headers["ce_correlationid"].decode(), set()).add(
                (headers["ce_id"].decode(), m.value)
            )
    return found


@pytest.mark.parametrize("crash_after", ["put_inbox", "write_accounts", "write_effects", "publish"])
async def test_a_batch_replayed_after_a_crash_has_its_effects_once_and_the_same_outcomes(
    env: Any, crash_after: str
) -> None:
    settings, store, publisher, db = env
    store.crash_after = None if crash_after == "publish" else crash_after
    publisher.fail_next = crash_after == "publish"
    with pytest.raises(SimulatedCrashError):
        await pipeline(settings, store, publisher).process(batch(), time.time())
    # A new process (fresh caches) receives the same records again, as after kill -9.
    await pipeline(settings, store, publisher).process(batch(), time.time())

    account = await db.accounts.find_one({"_id": "a"})
    assert account["balance"] == 60  # +100, withdrawal of 500 rejected, -40 in flight
    entries = await db.entries.find({"account_id": "a"}).to_list()
    assert sorted(e["amount"] for e in entries) == [-40, 100]
    events = outcomes(publisher.sent)
    assert {c: len(v) for c, v in events.items()} == {f"cmd-{i}": 1 for i in range(4)}
    reasons = {c: orjson.loads(next(iter(v))[1]).get("reason") for c, v in events.items()}
    assert reasons["cmd-0"] == "account_not_found"  # decided before the account existed
    assert reasons["cmd-3"] == "insufficient_funds"
    legs = [m for m in publisher.sent if m.topic == "ledger.transfers"]
    assert {dict(m.headers)["ce_id"] for m in legs} == {b"cmd-4:credit"}
    assert (await db.transfers.find_one({"_id": "t1"}))["state"] == "debited"
    assert await db.inbox.count_documents({}) == 5


async def test_an_account_changed_by_another_writer_makes_the_batch_conflict(env: Any) -> None:
    settings, store, publisher, db = env
    first = pipeline(settings, store, publisher)
    await first.process(batch()[1:3], time.time())
    store.interfere = True
    deposit = {"account_id": "a", "amount": 1, "currency": "EUR", "external_ref": "late"}
    with pytest.raises(ConflictError):
        await first.process([command(9, "ledger.deposit.v1", deposit)], time.time())
    await first.process([command(9, "ledger.deposit.v1", deposit)], time.time())
    assert (await db.accounts.find_one({"_id": "a"}))["balance"] == 101


async def test_a_settled_transfer_records_its_outcome_on_the_transfer_commands_inbox_record(
    env: Any,
) -> None:
    settings, store, publisher, db = env
    opens = [
        command(
            0, "ledger.account.open.v1", {"account_id": "a", "owner_id": "o", "currency": "EUR"}
        ),
        command(
            1, "ledger.account.open.v1", {"account_id": "b", "owner_id": "o", "currency": "EUR"}
        ),
        command(
            2,
            "ledger.deposit.v1",
            {"account_id": "a", "amount": 100, "currency": "EUR", "external_ref": "r"},
        ),
        command(
            3,
            "ledger.transfer.v1",
            {
                "transfer_id": "t1",
                "from_account": "a",
                "to_account": "b",
                "amount": 40,
                "currency": "EUR",
            },
        ),
    ]
    worker = pipeline(settings, store, publisher)
    await worker.process(opens, time.time())
    leg = next(m for m in publisher.sent if m.topic == "ledger.transfers")
    record = Record(
        "ledger.transfers", 0, 0, leg.key, leg.value, leg.headers, int(time.time() * 1000)
    )
    await worker.process([record], time.time())

    inbox = await db.inbox.find_one({"_id": "c:cmd-3"})
    assert inbox["outcome"]["type"] == "ledger.transfer.completed.v1"
    assert await db.inbox.find_one({"_id": "cmd-3"}) is None
