"""Retention on the real servers: with a tiny TALLY_IDEMPOTENCY_DAYS the worker's sweep
removes old inbox records (FerretDB has no TTL index), and money stays safe after it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.e2e.harness import Outcomes, Producer, Tally

pytestmark = pytest.mark.e2e
WINDOW_S = 4.0


@pytest.fixture(scope="module")
async def tally(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Tally]:
    deployment = Tally()
    log = tmp_path_factory.mktemp("retention") / "worker.log"
    deployment.start(log, TALLY_IDEMPOTENCY_DAYS=str(WINDOW_S / 86400))
    try:
        await deployment.wait_ready()
        yield deployment
    finally:
        assert deployment.stop() == 0, log.read_text()[-3000:]
        await deployment.cleanup()


async def test_a_command_id_is_forgotten_after_the_window_and_its_deposit_still_counts_once(
    producer: Producer, outcomes: Outcomes, db: Any, new_id: Callable[[str], str]
) -> None:
    account = new_id("acc")
    opened = await producer.send(
        "ledger.account.open.v1", {"account_id": account, "owner_id": "o", "currency": "EUR"}
    )
    data = {"account_id": account, "amount": 100, "currency": "EUR", "external_ref": "psp-1"}
    deposit = await producer.send("ledger.deposit.v1", data)
    first = (await outcomes.of(opened, deposit))[deposit]
    assert first.type == "ledger.deposited.v1"
    assert await db.inbox.find_one({"_id": f"c:{deposit}"}) is not None

    deadline = time.monotonic() + 60
    while await db.inbox.find_one({"_id": f"c:{deposit}"}) is not None:
        assert time.monotonic() < deadline, "the inbox record outlived its window"
        await asyncio.sleep(0.5)

    # Sent again after the window, the id is new to Tally; its external_ref is not.
    await producer.send("ledger.deposit.v1", data, command_id=deposit)
    await outcomes.until(lambda _: len(outcomes.by_command().get(deposit, [])) >= 2)
    again = outcomes.by_command()[deposit][-1]
    assert again.data["reason"] == "duplicate_external_ref"
    assert (await db.accounts.find_one({"_id": account}))["balance"] == 100
