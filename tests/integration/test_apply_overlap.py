"""Applying a batch while the previous one still flushes (the worker's overlap), on the real
MongoDB-wire server: an account written again keeps the unflushed records of the batch
before in its outbox, so a crash at any point loses nothing and doubles nothing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from streams.store import outbox_records
from tests.integration.kit import (
    CrashError,
    Recorder,
    deposit,
    opened,
    pipeline,
    transfer,
)

pytestmark = pytest.mark.integration


async def state(db: Any) -> dict[str, Any]:
    a = await db.accounts.find_one({"_id": "a"})
    b = await db.accounts.find_one({"_id": "b"})
    return {
        "balances": (a["balance"], b["balance"]),
        "entries": await db.entries.count_documents({}),
        "transfers": await db.transfers.count_documents({}),
        "refs": await db.external_refs.count_documents({}),
    }


async def test_a_crash_before_the_earlier_flush_loses_nothing(crash_env: Any) -> None:
    settings, store, db = crash_env
    worker, _ = await opened(crash_env)

    batches = [[deposit(2), transfer(3)], [deposit(4), transfer(5)]]
    first = await worker.decide(batches[0], time.time())
    await worker.apply(first)
    second = await worker.decide(batches[1], time.time())
    await worker.apply(second)  # over the outbox the first batch has not flushed yet
    # kill -9 here: neither batch flushed, no offset committed. A new process gets both again.
    publisher = Recorder()
    restarted = pipeline(settings, store, publisher)
    await restarted.process([*batches[0], *batches[1]], time.time())

    assert await state(db) == {"balances": (180, 0), "entries": 4, "transfers": 2, "refs": 2}
    # republished from the outbox (the first batch's records were carried): both deposits'
    # outcomes and both transfers' credit legs (their destination is another worker's here)
    assert {"cmd-2", "cmd-4"} <= publisher.outcomes().keys()
    assert len(publisher.legs()) == 2
    assert await db.inbox.count_documents({"_id": {"$regex": "^c:cmd-[2-5]$"}}) == 4


async def test_a_failed_earlier_flush_is_retried_with_the_batch_applied_after_it(
    crash_env: Any,
) -> None:
    _, store, db = crash_env
    worker, publisher = await opened(crash_env, local=True)

    batches = [[deposit(2), transfer(3)], [transfer(4), deposit(5, account="b")]]
    first = await worker.decide(batches[0], time.time())
    await worker.apply(first)
    second = await worker.decide(batches[1], time.time())
    await worker.apply(second)
    store.crash_at = "effects"
    with pytest.raises(CrashError):
        await worker.flush(first)  # the worker then decides both again, together
    await worker.process([*batches[0], *batches[1]], time.time())

    assert await state(db) == {"balances": (80, 120), "entries": 6, "transfers": 2, "refs": 2}
    assert {"cmd-2", "cmd-3", "cmd-4", "cmd-5"} <= publisher.outcomes().keys()


async def test_carried_records_leave_the_outbox_once_their_batch_is_flushed(
    crash_env: Any,
) -> None:
    db = crash_env[2]
    worker, _ = await opened(crash_env)

    first = await worker.decide([deposit(2)], time.time())
    await worker.apply(first)
    second = await worker.decide([deposit(3)], time.time())
    await worker.apply(second)
    stored = outbox_records(await db.accounts.find_one({"_id": "a"}))
    assert [r["command_id"] for r in stored] == ["cmd-2", "cmd-3"]  # carried, then its own

    await worker.flush(first)
    third = await worker.decide([deposit(4)], time.time())
    await worker.apply(third)
    stored = outbox_records(await db.accounts.find_one({"_id": "a"}))
    assert [r["command_id"] for r in stored] == ["cmd-3", "cmd-4"]  # not the flushed batch's
    await worker.flush(second)
    await worker.flush(third)
    assert await state(db) == {"balances": (300, 0), "entries": 3, "transfers": 0, "refs": 3}


async def test_a_flush_failing_while_the_next_batch_is_applied_loses_no_record(
    crash_env: Any,
) -> None:
    # The chaos suite's seed-11 failure: the earlier flush failed while the next batch's
    # apply waited on its account-less decisions (a rejection); the apply then wrote
    # account a without the earlier batch's unflushed records, and a transfer's debit stayed
    # in a's balance with no journal entry and no transfer document.
    _, store, db = crash_env
    worker, publisher = await opened(crash_env, local=True)

    batches = [[deposit(2), transfer(3)], [deposit(9, account="nobody"), deposit(4)]]
    first = await worker.decide(batches[0], time.time())
    await worker.apply(first)
    second = await worker.decide(batches[1], time.time())
    reached, release = asyncio.Event(), asyncio.Event()
    store.inbox_gate = (reached, release)
    applying = asyncio.ensure_future(worker.apply(second))
    await reached.wait()  # the apply waits in put_inbox (the rejection)
    store.crash_at = "effects"
    with pytest.raises(CrashError):
        await worker.flush(first)  # the database fails the earlier flush meanwhile
    release.set()
    with contextlib.suppress(Exception):  # refused or not: the worker retries both batches
        await applying
    await worker.process([*batches[0], *batches[1]], time.time())

    assert await state(db) == {"balances": (190, 10), "entries": 4, "transfers": 1, "refs": 2}
    for key in ("a", "b"):
        account = await db.accounts.find_one({"_id": key})
        entries = await db.entries.find({"account_id": key}).to_list(None)
        assert account["balance"] == sum(e["amount"] for e in entries)
    outcomes = publisher.outcomes()  # one outcome each, the one first decided (contract §8.1)
    assert outcomes["cmd-2"] == outcomes["cmd-4"] == {b"ledger.deposited.v1"}
    assert outcomes["cmd-3"] == {b"ledger.transfer.completed.v1"}
