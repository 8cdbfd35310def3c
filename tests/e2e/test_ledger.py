"""The running worker as a black box: every command type, sagas, duplicates, rejections."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.harness import all_outcomes, partition, token

pytestmark = pytest.mark.e2e


async def open_account(producer: Any, outcomes: Any, account: str, **extra: Any) -> None:
    data = {"account_id": account, "owner_id": f"owner-{account}", "currency": "EUR", **extra}
    cid = await producer.send("ledger.account.open.v1", data)
    result = await outcomes.of(cid)
    assert result[cid].type == "ledger.account.opened.v1", result[cid].data


async def deposit(producer: Any, outcomes: Any, account: str, amount: int, ref: str) -> Any:
    data = {"account_id": account, "amount": amount, "currency": "EUR", "external_ref": ref}
    cid = await producer.send("ledger.deposit.v1", data, auth=token("psp", ["payments"]))
    return (await outcomes.of(cid))[cid]


async def test_open_deposit_withdraw_updates_balance_journal_and_outcomes(
    producer: Any, outcomes: Any, db: Any, new_id: Any
) -> None:
    alice = new_id("alice")
    await open_account(producer, outcomes, alice)
    deposited = await deposit(producer, outcomes, alice, 10_000, "psp-1")
    data = {"account_id": alice, "amount": 2_500, "currency": "EUR", "external_ref": "atm-1"}
    cid = await producer.send("ledger.withdrawal.v1", data)
    withdrawn = (await outcomes.of(cid))[cid]

    assert deposited.type == "ledger.deposited.v1"
    assert deposited.data["balance"] == 10_000
    assert withdrawn.type == "ledger.withdrawn.v1"
    assert withdrawn.data == {**data, "balance": 7_500}
    assert withdrawn.subject == alice and withdrawn.key == alice.encode()
    assert withdrawn.correlationid == cid and withdrawn.causationid == cid
    assert withdrawn.headers["ce_source"] == "tally"
    assert withdrawn.headers["content-type"] == "application/json"
    account = await db.accounts.find_one({"_id": alice})
    assert account["balance"] == 7_500 and account["status"] == "open"
    entries = await db.entries.find({"account_id": alice}).to_list()
    assert sorted(e["amount"] for e in entries) == [-2_500, 10_000]
    assert {e["kind"] for e in entries} == {"deposit", "withdrawal"}


async def test_transfer_across_partitions_completes_with_one_outcome(
    producer: Any, outcomes: Any, db: Any, new_id: Any, tally: Any
) -> None:
    # This worker owns both partitions and settles the transfer in one batch (ADR 5); across
    # two workers, through ledger.transfers: test_transfers_across_workers.py.
    source = new_id("src")
    target = next(
        new_id(f"dst{i}")
        for i in range(50)
        if partition(new_id(f"dst{i}"), tally.partitions) != partition(source, tally.partitions)
    )
    for account in (source, target):
        await open_account(producer, outcomes, account)
    await deposit(producer, outcomes, source, 5_000, "psp-t")
    transfer = {
        "transfer_id": new_id("t"),
        "from_account": source,
        "to_account": target,
        "amount": 1_200,
        "currency": "EUR",
        "memo": "rent",
    }
    cid = await producer.send("ledger.transfer.v1", transfer)
    event = (await outcomes.of(cid))[cid]

    assert event.type == "ledger.transfer.completed.v1"
    assert event.data == transfer
    assert event.subject == source
    balances = {
        a["_id"]: a["balance"] async for a in db.accounts.find({"_id": {"$in": [source, target]}})
    }
    assert balances == {source: 3_800, target: 1_200}
    stored = await db.transfers.find_one({"_id": transfer["transfer_id"]})
    assert stored["state"] == "completed"
    assert [e.id for e in await all_outcomes(producer, outcomes, cid, source, target)] == [event.id]


async def test_transfer_to_missing_account_is_refunded_and_fails(
    producer: Any, outcomes: Any, db: Any, new_id: Any
) -> None:
    source = new_id("src")
    await open_account(producer, outcomes, source)
    await deposit(producer, outcomes, source, 700, "psp-r")
    transfer = {
        "transfer_id": new_id("t"),
        "from_account": source,
        "to_account": new_id("ghost"),
        "amount": 300,
        "currency": "EUR",
    }
    cid = await producer.send("ledger.transfer.v1", transfer)
    event = (await outcomes.of(cid))[cid]

    assert event.type == "ledger.transfer.failed.v1"
    assert event.data["reason"] == "account_not_found"
    assert (await db.accounts.find_one({"_id": source}))["balance"] == 700
    kinds = sorted([e["kind"] async for e in db.entries.find({"account_id": source})])
    assert kinds == ["deposit", "refund", "transfer_out"]
    assert (await db.transfers.find_one({"_id": transfer["transfer_id"]}))["state"] == "failed"


async def test_duplicate_command_id_republishes_the_same_outcome_and_changes_nothing(
    producer: Any, outcomes: Any, db: Any, new_id: Any
) -> None:
    account = new_id("dup")
    await open_account(producer, outcomes, account)
    data = {"account_id": account, "amount": 900, "currency": "EUR", "external_ref": "psp-d"}
    cid = await producer.send("ledger.deposit.v1", data, auth=token("psp", ["payments"]))
    await outcomes.of(cid)
    await producer.send("ledger.deposit.v1", data, command_id=cid, auth=token("psp", ["payments"]))
    await outcomes.until(lambda _: len(outcomes.by_command().get(cid, [])) >= 2)

    events = outcomes.by_command()[cid]
    assert {e.id for e in events} == {events[0].id}
    assert {e.type for e in events} == {"ledger.deposited.v1"}
    assert (await db.accounts.find_one({"_id": account}))["balance"] == 900
    assert await db.entries.count_documents({"command_id": cid}) == 1


async def test_account_lifecycle_freeze_unfreeze_limits_close(
    producer: Any, outcomes: Any, new_id: Any
) -> None:
    account = new_id("life")
    await open_account(producer, outcomes, account)
    steps = [
        (
            "ledger.account.freeze.v1",
            {"account_id": account, "reason": "kyc"},
            "ledger.account.frozen.v1",
        ),
        ("ledger.account.unfreeze.v1", {"account_id": account}, "ledger.account.unfrozen.v1"),
        (
            "ledger.account.limits.v1",
            {"account_id": account, "overdraft_limit": 500, "daily_outflow_limit": None},
            "ledger.account.limits_changed.v1",
        ),
        ("ledger.account.close.v1", {"account_id": account}, "ledger.account.closed.v1"),
    ]
    for command_type, data, expected in steps:
        cid = await producer.send(command_type, data)
        assert (await outcomes.of(cid))[cid].type == expected


@pytest.mark.parametrize(
    ("command_type", "data", "auth", "reason"),
    [
        ("ledger.teleport.v1", {"account_id": "x"}, None, "unsupported_type"),
        (
            "ledger.deposit.v1",
            {"account_id": "x", "amount": 1, "currency": "EUR", "external_ref": "r"},
            "not-a-jwt",
            "unauthenticated",
        ),
        (
            "ledger.deposit.v1",
            {"account_id": "x", "amount": "10", "currency": "EUR", "external_ref": "r"},
            None,
            "invalid",
        ),
        (
            "ledger.deposit.v1",
            {"account_id": "x", "amount": 1, "currency": "EUR", "external_ref": "r"},
            token("eve", ["customer"]),
            "forbidden",
        ),
        (
            "ledger.withdrawal.v1",
            {"account_id": "nobody-here", "amount": 1, "currency": "EUR", "external_ref": "r"},
            None,
            "account_not_found",
        ),
    ],
)
async def test_unacceptable_commands_get_one_rejection_with_the_reason(
    producer: Any, outcomes: Any, command_type: str, data: Any, auth: str | None, reason: str
) -> None:
    cid = await producer.send(command_type, data, auth=auth, key="x")
    event = (await outcomes.of(cid))[cid]
    assert event.type == "ledger.command.rejected.v1"
    assert event.data["reason"] == reason
    assert event.data["command_id"] == cid and event.data["command_type"] == command_type
    if reason == "invalid":
        assert event.data["errors"][0]["loc"] == ["amount"]
    assert "eyJ" not in str(event.data)  # no token ever echoed
    assert [e.id for e in await all_outcomes(producer, outcomes, cid, "x")] == [event.id]


async def test_insufficient_funds_is_rejected_and_balance_unchanged(
    producer: Any, outcomes: Any, db: Any, new_id: Any
) -> None:
    account = new_id("poor")
    await open_account(producer, outcomes, account)
    data = {"account_id": account, "amount": 1, "currency": "EUR", "external_ref": "r"}
    cid = await producer.send("ledger.withdrawal.v1", data)
    event = (await outcomes.of(cid))[cid]
    assert event.data["reason"] == "insufficient_funds"
    assert (await db.accounts.find_one({"_id": account}))["balance"] == 0


async def test_structured_mode_command_is_accepted(
    producer: Any, outcomes: Any, new_id: Any
) -> None:
    account = new_id("structured")
    data = {"account_id": account, "owner_id": "o", "currency": "USD"}
    cid = await producer.send("ledger.account.open.v1", data, structured=True)
    event = (await outcomes.of(cid))[cid]
    assert event.type == "ledger.account.opened.v1"
    assert event.data["currency"] == "USD"
