"""MongoStore's first-write-wins records are plain inserts: idempotent, and no collection scan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from streams.store import Effects, MongoStore
from tests.conftest import MONGO_URI

pytestmark = pytest.mark.integration


class Commands(monitoring.CommandListener):
    """The write commands the store sends, as (command name, collection)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("insert", "update", "delete", "findAndModify"):
            self.seen.append((event.command_name, str(event.command[event.command_name])))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def store(unique_name: str) -> AsyncIterator[tuple[MongoStore, Commands]]:
    listener = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        MONGO_URI, tz_aware=True, event_listeners=[listener]
    )
    yield MongoStore(client, unique_name), listener
    await client.drop_database(unique_name)
    await client.close()


async def test_inbox_records_are_inserted_and_the_first_one_wins(
    store: tuple[MongoStore, Commands],
) -> None:
    mongo, commands = store
    await mongo.put_inbox([{"_id": "c:1", "command_id": "1", "outcome": {"v": "first"}}])
    await mongo.put_inbox(
        [
            {"_id": "c:1", "command_id": "1", "outcome": {"v": "second"}},
            {"_id": "c:2", "command_id": "2", "outcome": {"v": "other"}},
        ]
    )
    found = await mongo.find_by_ids("inbox", ["c:1", "c:2"])
    assert found["c:1"]["outcome"] == {"v": "first"}
    assert found["c:2"]["outcome"] == {"v": "other"}
    # FerretDB runs an update or upsert by _id as a scan of the whole collection.
    assert {name for name, _ in commands.seen} == {"insert"}


async def test_repeated_effects_are_inserts_that_keep_the_first_document(
    store: tuple[MongoStore, Commands],
) -> None:
    mongo, commands = store
    effects = Effects(
        entries=[{"_id": "t1:transfer_out", "account_id": "a", "amount": -5}],
        new_transfers=[{"_id": "t1", "command_id": "c1", "state": "debited"}],
        refs=[{"_id": "a/r1", "command_id": "c1"}],
    )
    await mongo.write_effects(effects)
    settled = {"_id": "t1", "command_id": "c1", "set": {"state": "completed"}}
    await mongo.write_effects(Effects(transfer_updates=[settled]))
    await mongo.write_effects(effects)  # a replayed flush after a crash
    transfer = await mongo.find_by_ids("transfers", ["t1"])
    assert transfer["t1"]["state"] == "completed"
    assert await mongo.find_by_ids("external_refs", ["a/r1"]) == {
        "a/r1": {"_id": "a/r1", "command_id": "c1"}
    }
    updates = [collection for name, collection in commands.seen if name == "update"]
    assert updates == ["transfers"]  # only the settlement, never a first write
