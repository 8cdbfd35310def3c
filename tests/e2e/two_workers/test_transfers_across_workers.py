"""Transfers between accounts of two workers: the credit leg goes through ledger.transfers to the
destination's worker, and a refused credit comes back to the source's worker as a refund leg.

The deployment has two workers, each owning one of its two partitions; the source is on
partition 0 and the destination on partition 1, so they are decided by different workers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.harness import (
    Outcome,
    Outcomes,
    Producer,
    Reader,
    all_outcomes,
    on_partition,
    token,
)
from tests.e2e.two_workers.conftest import PARTITIONS

pytestmark = pytest.mark.e2e


async def send(producer: Producer, outcomes: Outcomes, ctype: str, data: dict[str, Any]) -> Any:
    auth = token("psp", ["payments"]) if ctype == "ledger.deposit.v1" else None
    cid = await producer.send(ctype, data, auth=auth)
    return (await outcomes.of(cid))[cid]


async def open_account(producer: Producer, outcomes: Outcomes, account: str) -> None:
    data = {"account_id": account, "owner_id": "owner", "currency": "EUR"}
    opened = await send(producer, outcomes, "ledger.account.open.v1", data)
    assert opened.type == "ledger.account.opened.v1", opened.data


async def funded_source(
    producer: Producer, outcomes: Outcomes, new_id: Callable[[str], str]
) -> str:
    source = on_partition(new_id, "src", 0, PARTITIONS)
    await open_account(producer, outcomes, source)
    data = {"account_id": source, "amount": 1_000, "currency": "EUR", "external_ref": "in"}
    deposited = await send(producer, outcomes, "ledger.deposit.v1", data)
    assert deposited.type == "ledger.deposited.v1", deposited.data
    return source


async def transfer(
    producer: Producer, outcomes: Outcomes, source: str, target: str, transfer_id: str
) -> tuple[str, Outcome]:
    data = {"transfer_id": transfer_id, "from_account": source, "to_account": target}
    cid = await producer.send("ledger.transfer.v1", data | {"amount": 300, "currency": "EUR"})
    return cid, (await outcomes.of(cid))[cid]


async def journal(db: Any, *accounts: str) -> list[tuple[str, str, int]]:
    entries = db.entries.find({"account_id": {"$in": list(accounts)}})
    return sorted([(e["account_id"], e["kind"], e["amount"]) async for e in entries])


async def balances(db: Any, *accounts: str) -> dict[str, int]:
    return {a["_id"]: a["balance"] async for a in db.accounts.find({"_id": {"$in": accounts}})}


async def leg_types(legs: Reader, command_id: str, expected: set[str]) -> set[str]:
    """The legs of the command read from ledger.transfers (credit, refund), once all expected."""

    def found(records: list[Any]) -> set[str]:
        ids = {dict(r.headers)["ce_id"].decode() for r in records}
        return {leg for leg in ("credit", "refund") if f"{command_id}:{leg}" in ids}

    await legs.until(lambda records: found(records) >= expected)
    return found(await legs.to_end())


async def test_a_transfer_to_an_account_of_the_other_worker_completes_through_ledger_transfers(
    producer: Producer, outcomes: Outcomes, legs: Reader, db: Any, new_id: Callable[[str], str]
) -> None:
    source = await funded_source(producer, outcomes, new_id)
    target = on_partition(new_id, "dst", 1, PARTITIONS)
    await open_account(producer, outcomes, target)

    cid, event = await transfer(producer, outcomes, source, target, new_id("t"))

    assert event.type == "ledger.transfer.completed.v1", event.data
    assert event.subject == source and event.data["amount"] == 300
    assert [e.id for e in await all_outcomes(producer, outcomes, cid, source, target)] == [event.id]
    assert await leg_types(legs, cid, {"credit"}) == {"credit"}
    assert await balances(db, source, target) == {source: 700, target: 300}
    assert await journal(db, source, target) == sorted(
        [
            (source, "deposit", 1_000),
            (source, "transfer_out", -300),
            (target, "transfer_in", 300),
        ]
    )
    stored = await db.transfers.find_one({"_id": event.data["transfer_id"]})
    assert stored["state"] == "completed"


@pytest.mark.parametrize("destination", ["closed", "missing"])
async def test_a_transfer_refused_by_the_other_worker_is_refunded_and_fails(
    producer: Producer,
    outcomes: Outcomes,
    legs: Reader,
    db: Any,
    new_id: Callable[[str], str],
    destination: str,
) -> None:
    source = await funded_source(producer, outcomes, new_id)
    target = on_partition(new_id, destination, 1, PARTITIONS)
    if destination == "closed":
        await open_account(producer, outcomes, target)
        closed = await send(producer, outcomes, "ledger.account.close.v1", {"account_id": target})
        assert closed.type == "ledger.account.closed.v1", closed.data

    cid, event = await transfer(producer, outcomes, source, target, new_id("t"))

    assert event.type == "ledger.transfer.failed.v1", event.data
    reason = {"closed": "account_closed", "missing": "account_not_found"}[destination]
    assert event.data["reason"] == reason
    assert [e.id for e in await all_outcomes(producer, outcomes, cid, source, target)] == [event.id]
    assert await leg_types(legs, cid, {"credit", "refund"}) == {"credit", "refund"}
    expected_balances = {source: 1_000} | ({target: 0} if destination == "closed" else {})
    assert await balances(db, source, target) == expected_balances
    assert await journal(db, source, target) == sorted(
        [
            (source, "deposit", 1_000),
            (source, "refund", 300),
            (source, "transfer_out", -300),
        ]
    )
    stored = await db.transfers.find_one({"_id": event.data["transfer_id"]})
    assert stored["state"] == "failed"
