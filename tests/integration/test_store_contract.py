"""The store port's contract, run against MongoStore (the real server) and InMemoryStore.

What the pipeline relies on (ADR 4): first write wins, one account write is atomic and
version-checked, every write is safe to repeat, documents come back as stored."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams.memory import InMemoryStore
from streams.ports import Store
from streams.store import ConflictError, MongoStore, outbox_records
from streams.writes import AccountWrite, Effects
from tests.conftest import MONGO_URI

pytestmark = pytest.mark.integration

AT = datetime(2026, 12, 7, 6, 17, 52, 123456, tzinfo=UTC)


@pytest.fixture(params=["memory", "mongo"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    name = f"contract_{uuid.uuid4().hex[:8]}"
    mongo = MongoStore.connect(MONGO_URI, name)
    await mongo.ensure_indexes()
    yield mongo
    await mongo._client.drop_database(name)
    await mongo.close()


def account(key: str, balance: int = 0) -> dict[str, Any]:
    return {"_id": key, "owner_id": "o", "currency": "EUR", "balance": balance, "updated_at": AT}


def decision(_id: str) -> dict[str, Any]:
    return {"_id": _id, "command_id": _id[2:], "outcome": {"id": _id}, "leg": None, "at": AT}


async def test_find_by_ids_gives_the_documents_that_exist_by_id(store: Store) -> None:
    assert await store.find_by_ids("inbox", []) == {}
    await store.put_inbox([decision("c:1"), decision("c:2")])
    found = await store.find_by_ids("inbox", ["c:2", "c:9", "c:2"])
    assert list(found) == ["c:2"] and found["c:2"]["command_id"] == "2"


async def test_the_first_inbox_record_of_an_id_wins(store: Store) -> None:
    assert await store.put_inbox([decision("c:1")]) == []
    second = {**decision("c:1"), "outcome": {"id": "other"}}
    assert await store.put_inbox([second, decision("c:2")]) == ["c:1"]
    found = await store.find_by_ids("inbox", ["c:1", "c:2"])
    assert found["c:1"]["outcome"] == {"id": "c:1"} and "c:2" in found


async def test_a_completed_saga_puts_its_outcome_on_the_command_record(store: Store) -> None:
    await store.put_inbox([decision("c:t")])
    outcome = {"id": "done", "correlationid": "t", "time": "x"}
    await store.complete_commands([outcome, {**outcome, "correlationid": "u"}])
    found = await store.find_by_ids("inbox", ["c:t", "c:u"])
    assert found["c:t"]["outcome"] == outcome and found["c:t"]["command_id"] == "t"
    assert found["c:u"]["outcome"]["correlationid"] == "u"  # upserted


async def test_an_account_write_is_version_checked_and_the_others_still_land(
    store: Store,
) -> None:
    await store.write_accounts(
        [AccountWrite(account("a"), None, []), AccountWrite(account("b"), None, [])]
    )
    found = await store.find_by_ids("accounts", ["a", "b"])
    assert [found[k]["version"] for k in ("a", "b")] == [1, 1]
    with pytest.raises(ConflictError):
        await store.write_accounts(
            [AccountWrite(account("a", 5), 1, []), AccountWrite(account("b", 7), 3, [])]
        )
    found = await store.find_by_ids("accounts", ["a", "b"])
    assert (found["a"]["balance"], found["a"]["version"]) == (5, 2)
    assert (found["b"]["balance"], found["b"]["version"]) == (0, 1)  # stale: refused


async def test_opening_an_account_that_exists_is_a_conflict(store: Store) -> None:
    await store.write_accounts([AccountWrite(account("a"), None, [])])
    with pytest.raises(ConflictError):
        await store.write_accounts([AccountWrite(account("a", 9), None, [])])
    assert (await store.find_by_ids("accounts", ["a"]))["a"]["balance"] == 0


async def test_an_account_comes_back_with_its_outbox_and_times_to_the_millisecond(
    store: Store,
) -> None:
    outbox = [decision("c:1"), {**decision("c:2"), "entries": [{"amount": -5, "at": AT}]}]
    await store.write_accounts([AccountWrite(account("a"), None, outbox)])
    found = (await store.find_by_ids("accounts", ["a"]))["a"]
    as_stored = AT.replace(microsecond=123000)
    assert found["updated_at"] == as_stored
    records = outbox_records(found)
    assert [r["_id"] for r in records] == ["c:1", "c:2"]
    assert records[1]["entries"][0]["at"] == as_stored


async def test_effects_are_safe_to_repeat_and_settlements_keep_to_their_command(
    store: Store,
) -> None:
    entry = {"_id": "t:transfer_out", "account_id": "a", "amount": -5, "command_id": "t", "at": AT}
    debited = {"_id": "t-1", "command_id": "t", "state": "debited", "reason": None}
    effects = Effects(
        entries=[entry],
        new_transfers=[debited],
        refs=[{"_id": "a/r", "command_id": "d"}],
    )
    await store.write_effects(effects)
    await store.write_effects(
        Effects(entries=[{**entry, "amount": -9}], refs=[{"_id": "a/r", "command_id": "x"}])
    )
    assert (await store.find_by_ids("entries", ["t:transfer_out"]))["t:transfer_out"][
        "amount"
    ] == -5
    assert (await store.find_by_ids("external_refs", ["a/r"]))["a/r"]["command_id"] == "d"
    other = {"_id": "t-1", "command_id": "u", "set": {"state": "failed"}}
    mine = {"_id": "t-1", "command_id": "t", "set": {"state": "completed"}}
    await store.write_effects(Effects(transfer_updates=[other]))
    assert (await store.find_by_ids("transfers", ["t-1"]))["t-1"]["state"] == "debited"
    # debit and settlement in one flush: inserted settled; the settlement applies only where
    # an earlier flush had inserted the debited document
    settled_new = {"_id": "t-2", "command_id": "v", "state": "completed", "reason": None}
    await store.write_effects(
        Effects(
            new_transfers=[{**debited, "state": "completed"}, settled_new],
            settle_if_present=[mine, {"_id": "t-2", "command_id": "v", "set": {"state": "x"}}],
        )
    )
    found = await store.find_by_ids("transfers", ["t-1", "t-2"])
    assert (found["t-1"]["state"], found["t-2"]["state"]) == ("completed", "completed")


async def test_a_sweep_removes_inbox_records_decided_before_a_time_a_bounded_number_at_once(
    store: Store,
) -> None:
    old = [{**decision(f"c:old{i}"), "at": datetime(2026, 1, 1, tzinfo=UTC)} for i in range(3)]
    await store.put_inbox([*old, decision("c:new")])
    before = datetime(2026, 6, 1, tzinfo=UTC)
    assert await store.sweep_inbox(before, limit=2) == 2
    assert await store.sweep_inbox(before, limit=2) == 1
    assert await store.sweep_inbox(before, limit=2) == 0
    assert list(await store.find_by_ids("inbox", ["c:old0", "c:old1", "c:old2", "c:new"])) == [
        "c:new"
    ]


async def test_a_completed_saga_creates_a_dated_inbox_record_retention_can_remove(
    store: Store,
) -> None:
    await store.complete_commands([{"correlationid": "t1", "id": "o1"}])
    record = (await store.find_by_ids("inbox", ["c:t1"]))["c:t1"]
    assert record["outcome"]["id"] == "o1" and isinstance(record["at"], datetime)


def heartbeat(worker: str, at: datetime, ready: bool = True) -> dict[str, Any]:
    return {"_id": worker, "host": "h", "pid": 1, "partitions": [], "ready": ready, "at": at}


async def test_a_heartbeat_replaces_the_last_of_its_worker(store: Store) -> None:
    await store.beat(heartbeat("h:1", AT, ready=False))
    await store.beat(heartbeat("h:1", AT + timedelta(seconds=5)))
    await store.beat(heartbeat("h:2", AT))
    seen = await store.workers(AT)
    assert [w["_id"] for w in seen] == ["h:1", "h:2"]
    assert seen[0]["ready"] is True and seen[0]["at"] > AT


async def test_workers_gives_the_heartbeats_since_a_time_and_old_ones_are_forgotten(
    store: Store,
) -> None:
    await store.beat(heartbeat("old:1", AT - timedelta(days=2)))
    await store.beat(heartbeat("new:1", AT))
    assert [w["_id"] for w in await store.workers(AT - timedelta(minutes=1))] == ["new:1"]
    assert await store.forget_workers(AT - timedelta(days=1)) == 1
    assert [w["_id"] for w in await store.workers(AT - timedelta(days=3))] == ["new:1"]
