"""A client written only from docs/contract.md: CloudEvents SDK Kafka binding, PyJWT, PyMongo, Prometheus."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from aiohttp import ClientSession
from aiokafka import AIOKafkaProducer
from cloudevents.v1.http import CloudEvent
from cloudevents.v1.kafka import KafkaMessage, from_binary, to_binary, to_structured
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import KAFKA, SECRET, Reader, Tally

pytestmark = pytest.mark.e2e

ACCOUNT_FIELDS = {
    "_id",
    "owner_id",
    "currency",
    "status",
    "balance",
    "overdraft_limit",
    "daily_outflow_limit",
    "created_at",
    "updated_at",
}
ENTRY_FIELDS = {"account_id", "amount", "balance_after", "command_id", "kind", "at"}
TRANSFER_FIELDS = {
    "_id",
    "from_account",
    "to_account",
    "amount",
    "currency",
    "state",
    "created_at",
    "updated_at",
}


def sdk_command(
    command_type: str, data: dict[str, Any], roles: list[str], sub: str = "spec"
) -> CloudEvent:
    claims = {"sub": sub, "roles": roles, "exp": int(time.time()) + 300}
    attributes = {
        "id": str(uuid.uuid4()),
        "source": "spec-client",
        "type": command_type,
        "datacontenttype": "application/json",
        "authtoken": jwt.encode(claims, SECRET, algorithm="HS256"),
        "partitionkey": data.get("from_account") or data["account_id"],
    }
    return CloudEvent(attributes, data)


async def test_a_spec_only_client_drives_the_ledger_and_reads_everything_back(
    tally: Tally, db: Any
) -> None:
    run = uuid.uuid4().hex[:6]
    a, b = f"spec-a-{run}", f"spec-b-{run}"
    commands = [
        (
            sdk_command(
                "ledger.account.open.v1",
                {"account_id": a, "owner_id": "spec", "currency": "GBP"},
                ["customer"],
            ),
            "ledger.account.opened.v1",
        ),
        (
            sdk_command(
                "ledger.account.open.v1",
                {"account_id": b, "owner_id": "other", "currency": "GBP"},
                ["ops"],
            ),
            "ledger.account.opened.v1",
        ),
        (
            sdk_command(
                "ledger.deposit.v1",
                {"account_id": a, "amount": 1000, "currency": "GBP", "external_ref": "x1"},
                ["payments"],
            ),
            "ledger.deposited.v1",
        ),
        (
            sdk_command(
                "ledger.transfer.v1",
                {
                    "transfer_id": f"t-{run}",
                    "from_account": a,
                    "to_account": b,
                    "amount": 400,
                    "currency": "GBP",
                },
                ["customer"],
            ),
            "ledger.transfer.completed.v1",
        ),
        (
            sdk_command(
                "ledger.withdrawal.v1",
                {"account_id": a, "amount": 100, "currency": "GBP", "external_ref": "w1"},
                ["customer"],
            ),
            "ledger.withdrawn.v1",
        ),
        (
            sdk_command(
                "ledger.withdrawal.v1",
                {"account_id": b, "amount": 100, "currency": "GBP", "external_ref": "w2"},
                ["customer"],
            ),
            "ledger.command.rejected.v1",
        ),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all")
    await producer.start()
    try:
        for index, (event, _) in enumerate(commands):
            # Alternate the two content modes of the CloudEvents Kafka binding.
            message = to_structured(event) if index % 2 else to_binary(event)
            await producer.send_and_wait(
                tally.topics["commands"],
                message.value,
                key=message.key.encode() if isinstance(message.key, str) else message.key,
                headers=list(message.headers.items()),
            )
    finally:
        await producer.stop()

    wanted = {event["id"]: expected for event, expected in commands}
    async with Reader(tally.topics["events"]) as reader:

        def received(records: list[Any]) -> dict[str, CloudEvent]:
            events = [from_binary(KafkaMessage(dict(r.headers), r.key, r.value)) for r in records]
            return {e["correlationid"]: e for e in events if e["correlationid"] in wanted}

        await reader.until(lambda rs: len(received(rs)) == len(wanted))
        outcomes = received(reader.records)

    for command_id, expected in wanted.items():
        event = outcomes[command_id]
        assert event["type"] == expected
        assert event["source"] == "tally"
        assert event["datacontenttype"] == "application/json"
        assert event["causationid"]
        assert event["subject"] in (a, b)
    assert outcomes[commands[-1][0]["id"]].data["reason"] == "forbidden"

    account = await db.accounts.find_one({"_id": a})
    assert set(account) >= ACCOUNT_FIELDS
    assert account["balance"] == 500
    entries = await db.entries.find({"account_id": a}).to_list()
    assert all(set(e) >= ENTRY_FIELDS for e in entries)
    assert sum(e["amount"] for e in entries) == account["balance"]
    transfer = await db.transfers.find_one({"_id": f"t-{run}"})
    assert set(transfer) >= TRANSFER_FIELDS and transfer["state"] == "completed"

    async with ClientSession() as http, http.get(f"http://127.0.0.1:{tally.port}/metrics") as r:
        families = {f.name: f for f in text_string_to_metric_families(await r.text())}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for s in families["tally_commands"].samples
    }
    accepted = samples[
        ("tally_commands_total", (("outcome", "accepted"), ("type", "ledger.deposit.v1")))
    ]
    assert accepted >= 1
    assert any(s.labels.get("reason") == "forbidden" for s in families["tally_rejections"].samples)
