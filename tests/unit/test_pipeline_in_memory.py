"""The whole pipeline on the in-memory store: decode, decide, apply, flush, without I/O."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client import REGISTRY

from streams.memory import InMemoryStore
from streams.settings import Settings
from tests.integration.kit import SECRET, Recorder, command, deposit, opens, pipeline, transfer

pytestmark = pytest.mark.unit


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
