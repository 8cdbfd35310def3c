"""A batch large enough to be decoded and decided in a thread, on the real MongoDB-wire server."""

from __future__ import annotations

import time
from typing import Any

import pytest

from streams.pipeline import THREAD_MIN_RECORDS
from tests.integration.kit import deposit, opened

pytestmark = pytest.mark.integration


async def test_a_large_batch_decided_in_a_thread_is_decided_as_a_small_one(
    crash_env: Any,
) -> None:
    db = crash_env[2]
    worker, publisher = await opened(crash_env)
    offsets = range(2, 2 + THREAD_MIN_RECORDS)
    records = [deposit(i) for i in offsets]
    records.append(deposit(9999, ref="r2"))  # reuses cmd-2's external_ref: refused, in order
    assert len(records) >= THREAD_MIN_RECORDS  # the thread path
    await worker.process(records, time.time())

    account = await db.accounts.find_one({"_id": "a"})
    assert account is not None and account["balance"] == 100 * THREAD_MIN_RECORDS
    assert await db.entries.count_documents({}) == THREAD_MIN_RECORDS
    outcomes = publisher.outcomes()
    assert all(outcomes[f"cmd-{i}"] == {b"ledger.deposited.v1"} for i in offsets)
    assert outcomes["cmd-9999"] == {b"ledger.command.rejected.v1"}
