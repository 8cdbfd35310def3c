"""The pipeline on the real MongoDB-wire server: a batch replayed after a crash at any step."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from streams.publish import Message
from streams.store import ConflictError
from tests.integration.kit import (
    CrashError,
    CrashingStore,
    Record,
    Recorder,
    command,
    deposit,
    opens,
    pipeline,
    transfer,
)

pytestmark = pytest.mark.integration


class ChangedUnderfootStore(CrashingStore):
    """Once `interfere` is set, another writer changes every account between this worker's
    load and its next account write."""

    interfere = False

    async def write_accounts(self, writes: Any) -> None:
        if self.interfere:
            self.interfere = False
            await self.accounts.update_many({}, {"$inc": {"version": 1}})
        await super().write_accounts(writes)


def batch() -> list[Record]:
    open_a = {"account_id": "a", "owner_id": "o", "currency": "EUR"}
    withdrawal = {"account_id": "a", "amount": 500, "currency": "EUR", "external_ref": "w1"}
    return [
        deposit(0, "early", amount=5),
        command(1, "ledger.account.open.v1", open_a),
        deposit(2, "r1"),
        command(3, "ledger.withdrawal.v1", withdrawal),
        transfer(4, "t1", amount=40),
        deposit(5, "r1", cid="cmd-2"),
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


@pytest.mark.parametrize("crash_at", ["inbox", "accounts", "effects", "publish"])
async def test_a_batch_replayed_after_a_crash_has_its_effects_once_and_the_same_outcomes(
    crash_env: Any, crash_at: str
) -> None:
    settings, store, db = crash_env
    publisher = Recorder()
    store.crash_at = None if crash_at == "publish" else crash_at
    publisher.fail_next = crash_at == "publish"
    with pytest.raises(CrashError):
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


async def test_an_account_changed_by_another_writer_makes_the_batch_conflict(
    crash_env: Any,
) -> None:
    settings, _, db = crash_env
    store = ChangedUnderfootStore(db.client, db.name)
    first = pipeline(settings, store, Recorder())
    await first.process(batch()[1:3], time.time())
    store.interfere = True
    with pytest.raises(ConflictError):
        await first.process([deposit(9, "late", amount=1)], time.time())
    await first.process([deposit(9, "late", amount=1)], time.time())
    assert (await db.accounts.find_one({"_id": "a"}))["balance"] == 101


async def test_a_settled_transfer_records_its_outcome_on_the_transfer_commands_inbox_record(
    crash_env: Any,
) -> None:
    settings, store, db = crash_env
    publisher = Recorder()
    worker = pipeline(settings, store, publisher)
    await worker.process(
        [*opens("a", "b"), deposit(2, "r"), transfer(3, "t1", amount=40)], time.time()
    )
    leg = next(m for m in publisher.sent if m.topic == "ledger.transfers")
    await worker.process([Record(leg.topic, 0, leg.key, leg.value, leg.headers)], time.time())

    inbox = await db.inbox.find_one({"_id": "c:cmd-3"})
    assert inbox["outcome"]["type"] == "ledger.transfer.completed.v1"
    assert await db.inbox.find_one({"_id": "cmd-3"}) is None
