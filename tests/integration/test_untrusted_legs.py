"""Only Tally moves money (contract §8.8), the pipeline on the real MongoDB-wire server: a leg moves
money only if it is signed and matches a debit still in flight; anything else is a dead letter."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from streams.legs import MAC_HEADER, sign_leg
from streams.pipeline import Pipeline
from streams.publish import Message
from tests.integration.kit import (
    Record,
    Recorder,
    command,
    deposit,
    opened,
    pipeline,
    transfer,
)

pytestmark = pytest.mark.integration


async def debited(env: Any) -> tuple[Pipeline, Recorder, Message]:
    """a (100 EUR) sends 10 EUR to b through ledger.transfers: the credit leg it published."""
    worker, publisher = await opened(env)
    await worker.process([deposit(2), transfer(3)], time.time())
    return worker, publisher, publisher.legs()[b"cmd-3:credit"]


def delivered(message: Message, offset: int = 0) -> Record:
    return Record(message.topic, offset, message.key or b"", message.value or b"", message.headers)


def forged(env: Any, message: Message, offset: int = 0, **changes: Any) -> Record:
    """The leg with `changes`, signed with the deployment's key (as a key thief would)."""
    value = orjson.dumps(orjson.loads(message.value or b"{}") | changes)
    mac = sign_leg(env[0].leg_key, value)
    headers = [(k, mac if k == MAC_HEADER else v) for k, v in message.headers]
    return Record(message.topic, offset, message.key or b"", value, headers)


def untrusted(publisher: Recorder) -> list[str]:
    details = []
    for m in publisher.sent:
        headers = dict(m.headers)
        if m.topic == "ledger.dlq" and headers["tally_error_reason"] == b"untrusted_leg":
            details.append(headers["tally_error_detail"].decode())
    return details


async def balances(db: Any) -> dict[str, int]:
    return {d["_id"]: d["balance"] async for d in db.accounts.find({})}


async def test_a_genuine_leg_completes_its_transfer(crash_env: Any) -> None:
    db = crash_env[2]
    worker, publisher, leg = await debited(crash_env)
    await worker.process([delivered(leg)], time.time())

    assert await balances(db) == {"a": 90, "b": 10}
    assert (await db.transfers.find_one({"_id": "t3"}))["state"] == "completed"
    assert untrusted(publisher) == []


async def test_a_signed_leg_of_a_transfer_never_debited_changes_nothing(crash_env: Any) -> None:
    db = crash_env[2]
    worker, publisher, leg = await debited(crash_env)
    fake = forged(crash_env, leg, transfer_id="t-none", command_id="cmd-none")
    await worker.process([fake], time.time())

    assert untrusted(publisher) == ["no transfer 't-none' was debited"]
    assert await balances(db) == {"a": 90, "b": 0}
    assert await db.inbox.find_one({"_id": "l:cmd-none:credit"}) is None


async def test_a_signed_leg_that_differs_from_its_debit_does_not_block_the_genuine_one(
    crash_env: Any,
) -> None:
    db = crash_env[2]
    worker, publisher, leg = await debited(crash_env)
    # Same message id as the genuine leg: it must not take its inbox record.
    fake = forged(crash_env, leg, amount=2_000_000)
    await worker.process([fake], time.time())
    await worker.process([delivered(leg, 1)], time.time())

    assert untrusted(publisher) == ["leg does not match transfer 't3': amount"]
    assert await balances(db) == {"a": 90, "b": 10}


async def test_a_refund_after_the_credit_in_the_same_batch_is_untrusted(crash_env: Any) -> None:
    db = crash_env[2]
    worker, publisher, leg = await debited(crash_env)
    refund = forged(crash_env, leg, 1, leg="refund", reason="account_closed")
    await worker.process([delivered(leg), refund], time.time())

    assert untrusted(publisher) == ["transfer 't3' is no longer in flight: completed"]
    assert await balances(db) == {"a": 90, "b": 10}


async def test_a_genuine_leg_sent_again_is_a_duplicate_while_its_inbox_record_lasts(
    crash_env: Any,
) -> None:
    db = crash_env[2]
    worker, publisher, leg = await debited(crash_env)
    await worker.process([delivered(leg)], time.time())
    await worker.process([delivered(leg, 1)], time.time())

    assert untrusted(publisher) == []
    assert len(publisher.outcomes()["cmd-3"]) == 1  # the same completed outcome, republished
    assert await balances(db) == {"a": 90, "b": 10}
    assert await db.entries.count_documents({}) == 3


async def test_a_genuine_leg_sent_after_its_transfer_ended_and_its_inbox_expired_is_untrusted(
    crash_env: Any,
) -> None:
    db = crash_env[2]
    worker, publisher, leg = await debited(crash_env)
    await worker.process([delivered(leg)], time.time())
    # b is written again (its outbox no longer holds the credit), then retention removes the
    # leg's inbox record; a restarted worker has nothing cached.
    await worker.process([deposit(4, account="b")], time.time())
    await db.inbox.delete_one({"_id": "l:cmd-3:credit"})
    worker.forget_accounts()
    await worker.process([delivered(leg, 1)], time.time())

    assert untrusted(publisher) == ["transfer 't3' is no longer in flight: completed"]
    assert await balances(db) == {"a": 90, "b": 110}
    assert await db.entries.count_documents({}) == 4


async def reused_transfer_id(env: Any) -> tuple[Pipeline, Recorder, Message, Message]:
    """Two workers accept a transfer with one transfer id in one batch window (ADR 4), 10 EUR
    from a (cmd-5) and from c (cmd-6) to b: both debit, only cmd-5 has a transfers document.
    The first worker, which owns b, and the credit legs of cmd-5 and cmd-6."""
    settings, store, db = env
    first, sent_first = await opened(env)
    c = {"account_id": "c", "owner_id": "o", "currency": "EUR"}
    await first.process(
        [command(2, "ledger.account.open.v1", c), deposit(3), deposit(4, account="c")],
        time.time(),
    )
    sent_second = Recorder()
    second = pipeline(settings, store, sent_second)
    data = {"transfer_id": "ts", "from_account": "c", "to_account": "b"}
    from_c = command(6, "ledger.transfer.v1", data | {"amount": 10, "currency": "EUR"})
    # Both decide before either writes: each sees the transfer id free.
    decided = [
        (first, await first.decide([transfer(5, "ts")], time.time())),
        (second, await second.decide([from_c], time.time())),
    ]
    for worker, batch in decided:
        await worker.apply(batch)
        await worker.flush(batch)
    assert (await db.transfers.find_one({"_id": "ts"}))["command_id"] == "cmd-5"
    return (
        first,
        sent_first,
        sent_first.legs()[b"cmd-5:credit"],
        sent_second.legs()[b"cmd-6:credit"],
    )


async def test_a_leg_of_a_reused_transfer_id_settles_on_its_debit_entry_until_its_saga_ends(
    crash_env: Any,
) -> None:
    db = crash_env[2]
    worker, publisher, leg_first, leg_second = await reused_transfer_id(crash_env)
    await worker.process([delivered(leg_second), delivered(leg_first, 1)], time.time())

    assert untrusted(publisher) == []
    assert await balances(db) == {"a": 90, "b": 20, "c": 90}
    assert publisher.outcomes()["cmd-6"] == {b"ledger.transfer.completed.v1"}
    # The second saga never writes onto the first one's document.
    stored = await db.transfers.find_one({"_id": "ts"})
    assert (stored["command_id"], stored["state"]) == ("cmd-5", "completed")

    # Sent again after its saga ended, once its inbox record is gone: it moves nothing.
    await worker.process([deposit(7, account="b")], time.time())
    await db.inbox.delete_one({"_id": "l:cmd-6:credit"})
    worker.forget_accounts()
    await worker.process([delivered(leg_second, 2)], time.time())

    assert untrusted(publisher) == ["transfer 'ts' is no longer in flight: completed"]
    assert await balances(db) == {"a": 90, "b": 120, "c": 90}
    assert await db.entries.count_documents({"command_id": "cmd-6"}) == 2


async def test_a_refund_after_a_credit_of_a_reused_transfer_id_in_the_same_batch_is_untrusted(
    crash_env: Any,
) -> None:
    db = crash_env[2]
    worker, publisher, _, leg_second = await reused_transfer_id(crash_env)
    refund = forged(crash_env, leg_second, 1, leg="refund", reason="account_closed")
    await worker.process([delivered(leg_second), refund], time.time())

    assert untrusted(publisher) == ["transfer 'ts' is no longer in flight: completed"]
    assert await balances(db) == {"a": 90, "b": 10, "c": 90}
    stored = await db.transfers.find_one({"_id": "ts"})
    assert (stored["command_id"], stored["state"]) == ("cmd-5", "debited")
