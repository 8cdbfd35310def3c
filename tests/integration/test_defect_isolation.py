"""A defect never stalls a partition: the record at fault is dead-lettered, the rest goes on.

The worker runs in this process on the real broker and database, with one fault injected:
the database refuses every account write that carries one chosen command (as it would a
document it cannot store). That command's batch holds many others, on the same partition."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bson.errors import InvalidDocument

from streams import kafka
from streams.app import Worker
from streams.settings import Settings
from streams.store import AccountWrite, MongoStore
from tests.e2e.harness import SECRET, Outcomes, Producer, Reader, Tally

pytestmark = pytest.mark.integration


@pytest.fixture
async def deployment() -> AsyncIterator[Tally]:
    tally = Tally(partitions=1)  # one partition: the fault sits among the others' records
    yield tally
    await tally.cleanup()


def settings_of(tally: Tally) -> Settings:
    return Settings(
        jwt_secret=SECRET,
        mongo_db=tally.db,
        group_id=f"it-{tally.run}",
        http_port=tally.port,
        partitions=tally.partitions,
        record_max_attempts=2,
        retry_backoff_max=0.2,
        topic_commands=tally.topics["commands"],
        topic_events=tally.topics["events"],
        topic_transfers=tally.topics["transfers"],
        topic_dlq=tally.topics["dlq"],
    )


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        worker.stop()
        assert await asyncio.wait_for(task, 30) == 0


async def test_a_record_the_database_refuses_is_dead_lettered_and_its_batch_goes_on(
    deployment: Tally, monkeypatch: pytest.MonkeyPatch
) -> None:
    poisoned: set[str] = set()
    refused: list[str] = []
    real_write = MongoStore.write_accounts

    async def refusing(self: MongoStore, writes: list[AccountWrite]) -> None:
        carried = {r["command_id"] for w in writes for r in w.outbox}
        if carried & poisoned:
            refused.append(next(iter(carried & poisoned)))
            raise InvalidDocument("cannot encode object: the injected fault")
        await real_write(self, writes)

    monkeypatch.setattr(MongoStore, "write_accounts", refusing)
    settings = settings_of(deployment)
    worker = Worker(settings)
    admin = kafka.admin(settings)
    await admin.start()
    await kafka.ensure_topics(admin, settings)
    await admin.close()
    async with Producer(deployment) as producer:
        # Everything is on the topic before the worker starts: one batch holds it all.
        opened = [
            await producer.send(
                "ledger.account.open.v1",
                {"account_id": f"acc-{i}", "owner_id": "o", "currency": "EUR"},
            )
            for i in range(20)
        ]
        poison = await producer.send(
            "ledger.account.open.v1", {"account_id": "acc-x", "owner_id": "o", "currency": "EUR"}
        )
        poisoned.add(poison)
        deposits = [
            await producer.send(
                "ledger.deposit.v1",
                {"account_id": f"acc-{i}", "amount": 100, "currency": "EUR", "external_ref": "r"},
            )
            for i in range(20)
        ]
        async with (
            Outcomes(deployment.topics["events"]) as outcomes,
            Reader(deployment.topics["dlq"]) as dlq,
            running(worker),
        ):
            found = await outcomes.of(*opened, *deposits, timeout=90)
            dead = await dlq.until(lambda rs: len(rs) >= 1, timeout=60)
            later = await producer.send(
                "ledger.deposit.v1",
                {"account_id": "acc-0", "amount": 5, "currency": "EUR", "external_ref": "late"},
            )
            after = await outcomes.of(later, timeout=60)
    assert {o.type for o in found.values()} == {"ledger.account.opened.v1", "ledger.deposited.v1"}
    assert after[later].data["balance"] == 105
    assert poison not in outcomes.by_command()
    headers: dict[str, Any] = dict(dead[0].headers)
    assert headers["tally_error_reason"] == b"processing_error"
    assert headers["tally_error_detail"].startswith(b"InvalidDocument: ")
    assert dict(dead[0].headers)["ce_id"] == poison.encode()
    assert len(dead) == 1
    assert len(refused) >= 2 + 2  # the whole batch twice, then the record alone twice
