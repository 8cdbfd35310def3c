"""`tally dlq ls` and `tally dlq replay` against a running worker: a dead letter whose cause is
gone gets its outcome when replayed, and replaying it again changes nothing."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import TALLY, Outcomes, Producer, Reader, Tally

pytestmark = pytest.mark.e2e
PADDING = [("x-padding", b"p" * 700)]  # counts toward the record's size, means nothing else


@pytest.fixture(scope="module")
async def tally(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Tally]:
    """A worker whose size limit is too small for a padded deposit: the 'fault' to remove."""
    deployment = Tally()
    log = tmp_path_factory.mktemp("dlq") / "worker.log"
    deployment.start(log, TALLY_MAX_MESSAGE_BYTES="1000")
    try:
        await deployment.wait_ready()
        yield deployment
    finally:
        deployment.stop()
        await deployment.cleanup()


def dlq(tally: Tally, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TALLY, "dlq", *args], env=tally.env(), capture_output=True, text=True, timeout=60
    )


async def test_a_replayed_dead_letter_whose_cause_is_gone_gets_its_outcome_once(
    tally: Tally,
    producer: Producer,
    outcomes: Outcomes,
    dlq_reader: Reader,
    db: Any,
    new_id: Callable[[str], str],
    tmp_path: Path,
) -> None:
    account = new_id("acc")
    opened = await producer.send(
        "ledger.account.open.v1", {"account_id": account, "owner_id": "o", "currency": "EUR"}
    )
    await outcomes.of(opened)
    data = {"account_id": account, "amount": 700, "currency": "EUR", "external_ref": "big"}
    deposit = await producer.send("ledger.deposit.v1", data, extra_headers=PADDING)
    await dlq_reader.until(lambda records: len(records) >= 1)

    listed = dlq(tally, "ls", "--reason", "too_large")
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if f"key={account}" in line]
    assert len(lines) == 1, listed.stdout + listed.stderr
    line = lines[0]
    assert "too_large" in line and "authtoken" not in listed.stdout
    position = line.split()[0]

    dry = dlq(tally, "replay", "--offset", position, "--dry-run")
    assert dry.returncode == 0 and "would replay 1 dead letter" in dry.stderr

    # The cause goes away: the worker runs again with the default size limit.
    assert tally.stop() == 0
    tally.start(tmp_path / "worker.log")
    await tally.wait_ready()
    for _ in range(2):  # a second replay is a duplicate: same outcome, no second deposit
        replayed = dlq(tally, "replay", "--offset", position)
        assert replayed.returncode == 0, replayed.stderr
        assert "replayed 1 dead letter" in replayed.stderr
    await outcomes.until(lambda _: len(outcomes.by_command().get(deposit, [])) >= 2)
    sent = outcomes.by_command()[deposit]
    assert {o.type for o in sent} == {"ledger.deposited.v1"} and len({o.id for o in sent}) == 1
    await asyncio.sleep(0.5)
    account_doc = await db.accounts.find_one({"_id": account})
    assert account_doc["balance"] == 700
    assert await db.entries.count_documents({"account_id": account}) == 1


@pytest.fixture(scope="module")
async def dlq_reader(tally: Tally) -> AsyncIterator[Reader]:
    async with Reader(tally.topics["dlq"]) as reader:
        yield reader


def test_dlq_ls_of_an_empty_topic_says_so(tally: Tally) -> None:
    fresh = Tally()  # topics nobody created: no dead letters
    listed = subprocess.run(
        [TALLY, "dlq", "ls"], env=fresh.env(), capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    assert "no dead letters" in listed.stdout
