"""The naive loop a tutorial would write: one message at a time, every step awaited."""

# Validate (token and schema, with Tally's own models), find_one, update_one, insert_one,
# send_and_wait, commit; the same balance and journal effects as Tally for a deposit, a
# withdrawal and a transfer. It is what Tally is measured against, not a second
# implementation: no idempotence, no outbox, no dead letters.

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from models.commands import COMMAND_MODELS, Deposit, Transfer, Withdrawal
from tests.bench.progress import Progress
from tests.bench.workload import CURRENCY, INITIAL_BALANCE

Doc = dict[str, Any]


class NaiveWorker:
    def __init__(self, db: AsyncDatabase[Doc], producer: AIOKafkaProducer, secret: str) -> None:
        self.db = db
        self.producer = producer
        self.secret = secret

    async def handle(self, msg: Any, topic_out: str) -> None:
        headers = {k: v.decode() for k, v in msg.headers}
        claims = jwt.decode(headers["ce_authtoken"], self.secret, algorithms=["HS256"])
        command = COMMAND_MODELS[headers["ce_type"]].model_validate_json(msg.value)
        now = datetime.now(UTC)
        if isinstance(command, Transfer):
            outcome = await self.transfer(command, now)
        elif isinstance(command, Deposit | Withdrawal):
            outcome = await self.money(command, now)
        else:
            outcome = {"type": "ledger.command.rejected.v1", "reason": "unsupported_type"}
        event_headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", str(uuid.uuid4()).encode()),
            ("ce_source", b"naive"),
            ("ce_type", outcome["type"].encode()),
            ("ce_correlationid", headers["ce_id"].encode()),
            ("ce_subject", str(claims["sub"]).encode()),
        ]
        await self.producer.send_and_wait(
            topic_out, orjson.dumps(outcome), key=msg.key, headers=event_headers
        )

    async def money(self, cmd: Deposit | Withdrawal, now: datetime) -> Doc:
        account = await self.db["accounts"].find_one({"_id": cmd.account_id})
        sign = 1 if isinstance(cmd, Deposit) else -1
        if account is None or account["balance"] + sign * cmd.amount < 0:
            return {"type": "ledger.command.rejected.v1", "reason": "insufficient_funds"}
        balance = account["balance"] + sign * cmd.amount
        await self.db["accounts"].update_one(
            {"_id": cmd.account_id}, {"$set": {"balance": balance, "updated_at": now}}
        )
        kind = "deposit" if sign > 0 else "withdrawal"
        await self.db["entries"].insert_one(
            {"account_id": cmd.account_id, "amount": sign * cmd.amount, "kind": kind, "at": now}
        )
        return {"type": f"ledger.{'deposited' if sign > 0 else 'withdrawn'}.v1", "balance": balance}

    async def transfer(self, cmd: Transfer, now: datetime) -> Doc:
        source = await self.db["accounts"].find_one({"_id": cmd.from_account})
        target = await self.db["accounts"].find_one({"_id": cmd.to_account})
        if source is None or target is None or source["balance"] < cmd.amount:
            return {"type": "ledger.transfer.failed.v1", "reason": "insufficient_funds"}
        for account, amount in ((source, -cmd.amount), (target, cmd.amount)):
            await self.db["accounts"].update_one(
                {"_id": account["_id"]},
                {"$set": {"balance": account["balance"] + amount, "updated_at": now}},
            )
            await self.db["entries"].insert_one(
                {"account_id": account["_id"], "amount": amount, "kind": "transfer", "at": now}
            )
        await self.db["transfers"].insert_one(
            {"_id": cmd.transfer_id, "amount": cmd.amount, "state": "completed", "at": now}
        )
        return {"type": "ledger.transfer.completed.v1", "transfer_id": cmd.transfer_id}


async def run(
    bootstrap: str,
    uri: str,
    database: str,
    topics: tuple[str, str],
    group: str,
    secret: str,
    accounts: list[str],
    total: int,
) -> float:
    """Processes `total` preloaded commands one by one; returns commands/s."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(uri, w="majority", journal=True)
    db = client[database]
    await db["accounts"].insert_many(
        [{"_id": a, "balance": INITIAL_BALANCE, "currency": CURRENCY} for a in accounts]
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(
        topics[0],
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()
    worker = NaiveWorker(db, producer, secret)
    try:
        done, started = 0, 0.0
        with Progress("naive loop", total) as bar:
            async for msg in consumer:
                started = started or time.time()
                await worker.handle(msg, topics[1])
                await consumer.commit()
                done += 1
                bar.update(done)
                if done >= total:
                    break
        return done / (time.time() - started)
    finally:
        await consumer.stop()
        await producer.stop()
        await client.close()
