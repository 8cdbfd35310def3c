"""Ground truth for the MongoDB-wire server (FerretDB locally): the calls Tally's store relies on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from tests.conftest import MONGO_URI

pytestmark = pytest.mark.integration

Doc = dict[str, Any]


@pytest.fixture
async def db(unique_name: str) -> AsyncIterator[AsyncDatabase[Doc]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(MONGO_URI, serverSelectionTimeoutMS=5000)
    try:
        yield client[unique_name]
        await client.drop_database(unique_name)
    finally:
        await client.close()


async def test_ping_answers(db: AsyncDatabase[Doc]) -> None:
    assert (await db.client.admin.command("ping"))["ok"] == 1


async def test_unique_index_rejects_a_duplicate_and_keeps_the_first(
    db: AsyncDatabase[Doc],
) -> None:
    await db.entries.create_index([("command_id", 1), ("kind", 1)], unique=True)
    await db.entries.insert_one({"command_id": "c1", "kind": "deposit", "amount": 5})
    with pytest.raises(DuplicateKeyError):
        await db.entries.insert_one({"command_id": "c1", "kind": "deposit", "amount": 7})
    found = await db.entries.find({"command_id": "c1"}, {"_id": 0}).to_list()
    assert found == [{"command_id": "c1", "kind": "deposit", "amount": 5}]


async def test_versioned_update_applies_once(db: AsyncDatabase[Doc]) -> None:
    await db.accounts.insert_one({"_id": "a", "version": 1, "balance": 100, "status": "open"})
    query = {"_id": "a", "version": 1}
    change = {"$set": {"status": "frozen"}, "$inc": {"version": 1, "balance": -30}}
    first = await db.accounts.update_one(query, change)
    stale = await db.accounts.update_one(query, change)
    assert (first.matched_count, stale.matched_count) == (1, 0)
    doc = await db.accounts.find_one({"_id": "a"})
    assert doc == {"_id": "a", "version": 2, "balance": 70, "status": "frozen"}


async def test_concurrent_versioned_updates_let_exactly_one_writer_win(
    db: AsyncDatabase[Doc],
) -> None:
    # ADR 4 fences a stale writer (a worker that lost its partitions) with this check alone:
    # two writers that loaded the same version must not both succeed. Unpatched FerretDB let
    # both match in about a quarter of such races (deploy/local/ferretdb/update-atomic.patch).
    other: AsyncMongoClient[Doc] = AsyncMongoClient(MONGO_URI, serverSelectionTimeoutMS=5000)
    try:
        theirs = other[db.name].accounts
        for i in range(100):
            await db.accounts.insert_one({"_id": f"a{i}", "version": 1, "by": None})
            query = {"_id": f"a{i}", "version": 1}
            results = await asyncio.gather(
                db.accounts.bulk_write([UpdateOne(query, {"$set": {"version": 2, "by": "mine"}})]),
                theirs.bulk_write([UpdateOne(query, {"$set": {"version": 2, "by": "theirs"}})]),
            )
            winners = [r.matched_count for r in results]
            assert sorted(winners) == [0, 1], f"race {i}: both writers matched"
    finally:
        await other.close()


async def test_upsert_with_set_on_insert_keeps_the_first_insert(db: AsyncDatabase[Doc]) -> None:
    for amount in (10, 99):
        await db.inbox.update_one(
            {"_id": "cmd-1"}, {"$setOnInsert": {"amount": amount}}, upsert=True
        )
    assert await db.inbox.find_one({"_id": "cmd-1"}) == {"_id": "cmd-1", "amount": 10}


async def test_unordered_insert_many_reports_each_duplicate_and_inserts_the_rest(
    db: AsyncDatabase[Doc],
) -> None:
    docs = [{"_id": 1}, {"_id": 2}, {"_id": 1}, {"_id": 3}, {"_id": 2}]
    with pytest.raises(BulkWriteError) as caught:
        await db.events.insert_many(docs, ordered=False)
    errors = caught.value.details["writeErrors"]
    assert [(e["index"], e["code"]) for e in errors] == [(2, 11000), (4, 11000)]
    assert caught.value.details["nInserted"] == 3
    assert sorted(await db.events.distinct("_id")) == [1, 2, 3]


@pytest.mark.parametrize("ordered", [True, False])
async def test_mixed_bulk_write_reports_the_duplicate_by_its_index(
    db: AsyncDatabase[Doc], ordered: bool
) -> None:
    await db.accounts.insert_one({"_id": "x", "v": 1})
    ops: list[Any] = [
        InsertOne({"_id": "y", "v": 1}),
        UpdateOne({"_id": "x", "v": 1}, {"$inc": {"v": 1}}),
        InsertOne({"_id": "x"}),
        ReplaceOne({"_id": "z"}, {"v": 9}, upsert=True),
        UpdateOne({"_id": "w"}, {"$setOnInsert": {"v": 0}}, upsert=True),
    ]
    with pytest.raises(BulkWriteError) as caught:
        await db.accounts.bulk_write(ops, ordered=ordered)
    details = caught.value.details
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(2, 11000)]
    expected = {"x": 2, "y": 1} if ordered else {"w": 0, "x": 2, "y": 1, "z": 9}
    stored = {d["_id"]: d["v"] async for d in db.accounts.find()}
    assert stored == expected


async def test_many_updates_in_one_bulk_write_all_apply(db: AsyncDatabase[Doc]) -> None:
    # Unpatched FerretDB 1.24 hangs on an update command of 100+ statements (ADR 0001).
    await db.accounts.insert_many([{"_id": f"a{i}", "version": 0} for i in range(250)])
    ops = [UpdateOne({"_id": f"a{i}", "version": 0}, {"$inc": {"version": 1}}) for i in range(250)]
    result = await db.accounts.bulk_write(ops, ordered=False)
    assert (result.matched_count, result.modified_count) == (250, 250)


async def test_in_on_id_returns_only_the_existing_documents(db: AsyncDatabase[Doc]) -> None:
    await db.accounts.insert_many([{"_id": f"a{i}"} for i in range(5)])
    found = await db.accounts.find({"_id": {"$in": ["a1", "a3", "missing"]}}).to_list()
    assert sorted(d["_id"] for d in found) == ["a1", "a3"]


async def test_unordered_bulk_update_reports_the_failing_statement_and_applies_the_rest(
    db: AsyncDatabase[Doc],
) -> None:
    await db.refs.create_index("ref", unique=True)
    await db.refs.insert_many([{"_id": i, "n": 0, "ref": f"r{i}"} for i in range(3)])
    ops = [
        UpdateOne({"_id": 0}, {"$inc": {"n": 1}}),
        UpdateOne({"_id": 9}, {"$setOnInsert": {"ref": "r1"}}, upsert=True),
        UpdateOne({"_id": 2}, {"$inc": {"n": 1}}),
    ]
    with pytest.raises(BulkWriteError) as caught:
        await db.refs.bulk_write(ops, ordered=False)
    details = caught.value.details
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(1, 11000)]
    assert details["nModified"] == 2
    assert {d["_id"]: d["n"] async for d in db.refs.find()} == {0: 1, 1: 0, 2: 1}
