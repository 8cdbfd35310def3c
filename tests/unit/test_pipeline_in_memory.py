"""The whole pipeline on the in-memory store: decode, decide, apply, flush, without I/O."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY

from streams.memory import InMemoryStore
from streams.settings import Settings
from streams.writes import AccountWrite
from tests.integration.kit import SECRET, Recorder, command, deposit, opens, pipeline, transfer

pytestmark = pytest.mark.unit
Doc = dict[str, Any]


class CrashError(Exception):
    pass


class CrashingStore(InMemoryStore):
    """Dies once right after an account write, when armed: outboxes written, nothing else."""

    armed = False

    async def write_accounts(self, writes: Sequence[AccountWrite]) -> None:
        await super().write_accounts(writes)
        if self.armed:
            self.armed = False
            raise CrashError


class RivalStore(InMemoryStore):
    """Another worker inserts its own decision just before this one's first inbox insert."""

    async def put_inbox(self, records: Sequence[Doc]) -> list[str]:
        if records and not self.collections["inbox"]:
            theirs = {**records[0]["outcome"], "source": "rival"}
            self.collections["inbox"][records[0]["_id"]] = {**records[0], "outcome": theirs}
        return await super().put_inbox(records)


def withdraw_too_much(offset: int) -> Any:
    data = {"account_id": "a", "amount": 10_000, "currency": "EUR", "external_ref": "w"}
    return command(offset, "ledger.withdrawal.v1", data)


def _pipeline(local: bool = True) -> tuple[Any, InMemoryStore, Recorder]:
    store, publisher = InMemoryStore(), Recorder()
    worker = pipeline(Settings(jwt_secret=SECRET), store, publisher, local=local)
    return worker, store, publisher


async def test_a_batch_moves_money_once_and_a_duplicate_changes_nothing() -> None:
    worker, store, publisher = _pipeline()
    await worker.process([*opens("a", "b"), deposit(2), transfer(3)], time.time())
    await worker.process([deposit(4, "r2", cid="cmd-2")], time.time())  # cmd-2 again
    accounts = store.collections["accounts"]
    assert (accounts["a"]["balance"], accounts["b"]["balance"]) == (90, 10)
    assert len(store.collections["entries"]) == 3  # deposit, transfer out, transfer in
    assert publisher.outcomes()["cmd-3"] == {b"ledger.transfer.completed.v1"}
    assert publisher.outcomes()["cmd-2"] == {b"ledger.deposited.v1"}
    assert store.collections["transfers"]["t3"]["state"] == "completed"


async def test_a_transfer_to_another_workers_account_sends_its_credit_leg() -> None:
    worker, store, publisher = _pipeline(local=False)
    await worker.process([*opens("a", "b"), deposit(2), transfer(3)], time.time())
    assert set(publisher.legs()) == {b"cmd-3:credit"}
    assert store.collections["transfers"]["t3"]["state"] == "debited"


async def test_unknown_command_types_share_one_metric_label() -> None:
    worker, _, _ = _pipeline()
    before = (
        REGISTRY.get_sample_value(
            "tally_commands_total", {"type": "unknown", "outcome": "rejected"}
        )
        or 0.0
    )
    odd = [command(i, f"made.up.{i}", {"account_id": "a"}) for i in range(3)]
    await worker.process(odd, time.time())
    after = REGISTRY.get_sample_value(
        "tally_commands_total", {"type": "unknown", "outcome": "rejected"}
    )
    assert after == before + 3
    assert (
        REGISTRY.get_sample_value(
            "tally_commands_total", {"type": "made.up.1", "outcome": "rejected"}
        )
        is None
    )


async def test_outbox_records_keep_their_stored_fields_in_their_stored_order() -> None:
    worker, store, _ = _pipeline()
    await worker.process([*opens("a", "b"), deposit(2), transfer(3), withdraw_too_much(4)], 0.0)
    common = ["_id", "command_id", "outcome", "leg", "at"]
    outboxes = {key: doc["outbox"] for key, doc in store.collections["accounts"].items()}
    assert [list(r) for r in outboxes["a"]] == [
        [*common, "entries"],  # opened
        [*common, "entries"],  # deposited
        [*common, "entries", "transfer"],  # debited
        common,  # rejected: no entries field at all
    ]
    assert [list(r) for r in outboxes["b"]][-1] == [*common, "entries", "transfer", "completes"]
    assert set(store.collections["inbox"]["c:cmd-3"]) == set(common)


async def test_what_a_crash_left_in_an_outbox_is_finished_and_kept_there_unchanged() -> None:
    store, publisher = CrashingStore(), Recorder()
    worker = pipeline(Settings(jwt_secret=SECRET), store, publisher, local=True)
    await worker.process(opens("a", "b"), time.time())
    store.armed = True
    with pytest.raises(CrashError):
        await worker.process([deposit(2), transfer(3), withdraw_too_much(4)], time.time())
    left = store.collections["accounts"]["a"]["outbox"]
    assert [r["_id"] for r in left] == ["c:cmd-2", "c:cmd-3", "c:cmd-4"]
    assert "c:cmd-2" not in store.collections["inbox"]
    after, recorder = _restarted(store)
    await after.process([deposit(5)], time.time())
    assert store.collections["accounts"]["a"]["outbox"][:3] == left  # rewritten as it was
    assert {"c:cmd-2", "c:cmd-3", "c:cmd-4", "c:cmd-5"} <= store.collections["inbox"].keys()
    # the debit was durable, its credit not: the adopted transfer goes on through its leg
    assert set(recorder.legs()) == {b"cmd-3:credit"}
    assert store.collections["transfers"]["t3"]["state"] == "debited"
    assert recorder.outcomes()["cmd-4"] == {b"ledger.command.rejected.v1"}


async def test_an_account_less_decision_another_worker_made_first_is_the_one_published() -> None:
    store, publisher = RivalStore(), Recorder()
    worker = pipeline(Settings(jwt_secret=SECRET), store, publisher)
    odd = command(1, "made.up", {"account_id": "a"})
    await worker.process([odd, odd], time.time())  # the second is a duplicate of the first
    sources = [dict(m.headers)["ce_source"] for m in publisher.sent]
    assert sources == [b"rival", b"rival"]
    assert store.collections["inbox"]["c:cmd-1"]["outcome"]["source"] == "rival"


def _restarted(store: InMemoryStore) -> tuple[Any, Recorder]:
    publisher = Recorder()
    return pipeline(Settings(jwt_secret=SECRET), store, publisher, local=True), publisher


async def test_an_outbox_record_older_than_the_inbox_memory_is_not_flushed_again() -> None:
    # Retention removed its inbox record long after it was flushed; the account's outbox still
    # holds it because nothing was decided on the account since. It must not be republished.
    store, publisher = InMemoryStore(), Recorder()
    settings = Settings(jwt_secret=SECRET, idempotency_days=0.02 / 86400)  # 20 ms
    worker = pipeline(settings, store, publisher, local=True)
    await worker.process([*opens("a"), deposit(1)], time.time())
    inbox = store.collections["inbox"]
    swept = [k for k, doc in inbox.items() if doc["command_id"] == "cmd-1"]
    for key in swept:
        del inbox[key]
    time.sleep(0.05)
    worker.forget_accounts()  # as after a restart: the outbox is read from the store
    publisher.sent.clear()
    await worker.process([deposit(2)], time.time())
    assert set(publisher.outcomes()) == {"cmd-2"}
    assert store.collections["accounts"]["a"]["balance"] == 200
    assert swept and not (inbox.keys() & set(swept))


async def test_the_sweep_removes_old_inbox_records_only() -> None:
    from datetime import UTC, datetime, timedelta

    from streams.retention import sweep

    store, publisher = InMemoryStore(), Recorder()
    worker = pipeline(Settings(jwt_secret=SECRET), store, publisher, local=True)
    await worker.process([*opens("a"), deposit(1)], time.time())
    assert await sweep(store, datetime.now(UTC) - timedelta(days=1)) == 0
    assert await sweep(store, datetime.now(UTC) + timedelta(seconds=1)) == 2
    assert store.collections["inbox"] == {}
