"""Local settlement on the real MongoDB-wire server: a transfer whose destination this worker
owns is credited in the same batch, and a crash at any step still gives every effect once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from streams.pipeline import Pipeline
from tests.integration.kit import CrashError, Record, Recorder, command, pipeline

pytestmark = pytest.mark.integration

# before-accounts:2: round 1 written, round 2 (the local credits) fails before writing.
CRASH_POINTS = ["accounts:1", "before-accounts:2", "accounts:2", "effects", "inbox", "publish"]


def batch() -> list[Record]:
    def open_(i: int, account: str) -> Record:
        data = {"account_id": account, "owner_id": "o", "currency": "EUR"}
        return command(i, "ledger.account.open.v1", data)

    def deposit(i: int, account: str, amount: int) -> Record:
        data = {"account_id": account, "amount": amount, "currency": "EUR", "external_ref": "r"}
        return command(i, "ledger.deposit.v1", data)

    def transfer(i: int, tid: str, source: str, destination: str, amount: int) -> Record:
        data = {"transfer_id": tid, "from_account": source, "to_account": destination}
        return command(i, "ledger.transfer.v1", data | {"amount": amount, "currency": "EUR"})

    return [
        open_(0, "a"),
        open_(1, "b"),
        open_(2, "c"),
        deposit(3, "a", 100),
        deposit(4, "b", 50),
        transfer(5, "t1", "a", "b", 40),  # b is credited in the batch...
        transfer(6, "t2", "b", "c", 30),  # ...and is itself a source: written twice
        transfer(7, "t3", "a", "x", 5),  # x does not exist: a Kafka leg, then a refund
    ]


async def deliver_legs(worker: Pipeline, publisher: Recorder) -> None:
    """Feeds every leg published so far back in, as ledger.transfers would, until none is new."""
    delivered: set[bytes] = set()
    while pending := [m for i, m in publisher.legs().items() if i not in delivered]:
        delivered |= {dict(m.headers)["ce_id"] for m in pending}
        records = [
            Record(m.topic, n, m.key or b"", m.value or b"", list(m.headers))
            for n, m in enumerate(pending)
        ]
        await worker.process(records, time.time())


async def test_a_transfer_to_an_owned_account_completes_in_the_same_batch(crash_env: Any) -> None:
    settings, store, db = crash_env
    publisher = Recorder()
    await pipeline(settings, store, publisher, local=True).process(batch(), time.time())

    assert set(publisher.legs()) == {b"cmd-7:credit"}  # only the one to a missing account
    outcomes = publisher.outcomes()
    assert outcomes["cmd-5"] == {b"ledger.transfer.completed.v1"}
    assert outcomes["cmd-6"] == {b"ledger.transfer.completed.v1"}
    balances = {d["_id"]: d["balance"] async for d in db.accounts.find({})}
    assert balances == {"a": 55, "b": 60, "c": 30}
    states = {d["_id"]: d["state"] async for d in db.transfers.find({})}
    assert states == {"t1": "completed", "t2": "completed", "t3": "debited"}
    inbox = await db.inbox.find_one({"_id": "c:cmd-5"})
    assert inbox["outcome"]["type"] == "ledger.transfer.completed.v1"
    assert inbox["leg"] is None  # a duplicate gets the outcome, not a second credit leg


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
async def test_a_batch_with_local_credits_replayed_after_a_crash_has_each_effect_once(
    crash_env: Any, crash_at: str
) -> None:
    settings, store, db = crash_env
    publisher = Recorder()
    store.crash_at = None if crash_at == "publish" else crash_at
    publisher.fail_next = crash_at == "publish"
    with pytest.raises(CrashError):
        await pipeline(settings, store, publisher, local=True).process(batch(), time.time())
    # A new process (fresh caches) gets the same records again, as after kill -9; then the
    # transfers topic delivers every leg either attempt published.
    worker = pipeline(settings, store, publisher, local=True)
    await worker.process(batch(), time.time())
    await deliver_legs(worker, publisher)

    balances = {d["_id"]: d["balance"] async for d in db.accounts.find({})}
    assert balances == {"a": 60, "b": 60, "c": 30}  # 150 deposited, t3 refunded
    for account, balance in balances.items():
        entries = [e["amount"] async for e in db.entries.find({"account_id": account})]
        assert sum(entries) == balance, (account, entries)
    assert await db.entries.count_documents({}) == 8  # 2 deposits, 3 debits, 2 credits, refund
    states = {d["_id"]: d["state"] async for d in db.transfers.find({})}
    assert states == {"t1": "completed", "t2": "completed", "t3": "failed"}
    outcomes = publisher.outcomes()
    assert set(outcomes) == {f"cmd-{i}" for i in range(8)}
    assert all(len(types) == 1 for types in outcomes.values()), outcomes
    assert outcomes["cmd-5"] == outcomes["cmd-6"] == {b"ledger.transfer.completed.v1"}
    assert outcomes["cmd-7"] == {b"ledger.transfer.failed.v1"}


async def test_a_duplicate_of_a_locally_settled_transfer_republishes_its_outcome(
    crash_env: Any,
) -> None:
    settings, store, db = crash_env
    publisher = Recorder()
    worker = pipeline(settings, store, publisher, local=True)
    await worker.process(batch()[:7], time.time())
    before = {d["_id"]: d["balance"] async for d in db.accounts.find({})}
    sent = len(publisher.sent)

    await pipeline(settings, store, publisher, local=True).process([batch()[5]], time.time())

    again = publisher.sent[sent:]
    assert [dict(m.headers)["ce_type"] for m in again] == [b"ledger.transfer.completed.v1"]
    assert {d["_id"]: d["balance"] async for d in db.accounts.find({})} == before
