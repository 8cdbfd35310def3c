"""Deciding a batch while the previous one flushes (the worker's overlap), on the real
MongoDB-wire server: the batch in flight counts as decided, its claims as taken, and a
failure of its flush makes the next batch's decisions stale."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from streams.pipeline import StaleDecisionError
from tests.integration.kit import CrashError, Recorder, deposit, opened, transfer

pytestmark = pytest.mark.integration


def reasons(publisher: Recorder) -> dict[str, str | None]:
    found = {}
    for m in publisher.sent:
        if m.topic == "ledger.events":
            headers = dict(m.headers)
            found[headers["ce_correlationid"].decode()] = orjson.loads(m.value or b"{}").get(
                "reason"
            )
    return found


async def test_the_batch_in_flight_counts_as_decided_for_the_batch_decided_meanwhile(
    crash_env: Any,
) -> None:
    db = crash_env[2]
    worker, publisher = await opened(crash_env)

    first = await worker.decide([deposit(2, "r1"), transfer(3, "t1")], time.time())
    await worker.apply(first)
    # Decided before the first batch's journal, claims and inbox records are written:
    # a duplicate of its deposit, its external_ref and its transfer_id reused.
    second = await worker.decide(
        [deposit(4, "r1-again", cid="cmd-2"), deposit(5, "r1"), transfer(6, "t1")], time.time()
    )
    await worker.flush(first)
    await worker.apply(second)
    await worker.flush(second)

    assert (await db.accounts.find_one({"_id": "a"}))["balance"] == 90  # one deposit, one debit
    assert await db.entries.count_documents({"account_id": "a"}) == 2
    assert reasons(publisher)["cmd-5"] == "duplicate_external_ref"
    assert reasons(publisher)["cmd-6"] == "duplicate_transfer"
    outcomes = [m for m in publisher.sent if m.topic == "ledger.events"]
    deposited = [m for m in outcomes if dict(m.headers)["ce_correlationid"] == b"cmd-2"]
    assert len(deposited) == 2 and deposited[0].value == deposited[1].value  # republished


async def test_a_failed_flush_makes_the_batch_decided_meanwhile_stale(crash_env: Any) -> None:
    _, store, db = crash_env
    worker, _ = await opened(crash_env)

    first = await worker.decide([deposit(2, "r1")], time.time())
    await worker.apply(first)
    second = await worker.decide([deposit(3, "r2")], time.time())
    store.crash_at = "effects"
    with pytest.raises(CrashError):
        await worker.flush(first)
    with pytest.raises(StaleDecisionError):
        await worker.apply(second)

    # What the worker does next: the failed batch again, then the next one decided afresh.
    await worker.process([deposit(2, "r1")], time.time())
    await worker.process([deposit(3, "r2")], time.time())
    assert (await db.accounts.find_one({"_id": "a"}))["balance"] == 200
    assert await db.entries.count_documents({"account_id": "a"}) == 2
    assert await db.inbox.count_documents({"_id": {"$in": ["c:cmd-2", "c:cmd-3"]}}) == 2
