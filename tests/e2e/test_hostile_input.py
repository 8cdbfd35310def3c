"""Hostile records against the running worker: each ends as a dead letter or an outcome, and a
valid command sent after them still gets its outcome (contract §7)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import pytest
from aiohttp import ClientSession

from tests.e2e.harness import KAFKA, Tally, token

pytestmark = pytest.mark.e2e

CE = [("ce_specversion", b"1.0"), ("ce_source", b"e2e"), ("ce_type", b"ledger.deposit.v1")]


def hostile(marker: str) -> list[tuple[str, bytes | None, list[tuple[str, bytes | None]], str]]:
    """(name, value, headers, the dead letter's reason)."""
    ce_id = [("ce_id", f"{marker}-id".encode())]
    deep = b'{"a":' * 3000 + b"1" + b"}" * 3000
    return [
        (
            "null-specversion",
            b"{}",
            [("ce_specversion", None), *CE[1:], *ce_id],
            "invalid_envelope",
        ),
        ("tombstone", None, [], "undecodable"),
        ("non-utf8-type", b"{}", [*CE[:2], ("ce_type", b"\xff\xfe"), *ce_id], "invalid_envelope"),
        ("twice-id", b"{}", [*CE, *ce_id, ("CE_ID", b"other")], "invalid_envelope"),
        ("many-headers", b"{}", [(f"x-{i}", b"") for i in range(2000)], "invalid_envelope"),
        ("fat-headers", b"{}", [("x-pad", b"p" * 40_000), ("x-pad2", b"p" * 30_000)], "too_large"),
        ("deep", deep, [], "undecodable"),
        (
            "structured-id-number",
            b'{"specversion":"1.0","id":7,"source":"s","type":"t"}',
            [],
            "invalid_envelope",
        ),
    ]


async def test_hostile_records_are_dead_lettered_and_the_next_command_gets_its_outcome(
    tally: Tally, producer: Any, dlq: Any, outcomes: Any, new_id: Any
) -> None:
    marker = uuid.uuid4().hex[:8]
    cases = hostile(marker)
    for name, value, headers, _ in cases:
        await producer.raw(value, key=f"{marker}-{name}".encode(), headers=headers)
    await producer.raw(b"{}", key=None, headers=[("ce_specversion", None)])  # null key too
    account = new_id("after-poison")
    valid = await producer.send(
        "ledger.account.open.v1", {"account_id": account, "owner_id": "o", "currency": "EUR"}
    )
    found = await outcomes.of(valid, timeout=60)
    assert found[valid].type == "ledger.account.opened.v1"
    keys = {f"{marker}-{name}".encode(): reason for name, _, _, reason in cases}
    records = await dlq.until(lambda rs: set(keys) <= {r.key for r in rs}, timeout=60)
    for record in records:
        if record.key in keys:
            assert dict(record.headers)["tally_error_reason"] == keys[record.key].encode()
    async with ClientSession() as http, http.get(f"http://127.0.0.1:{tally.port}/readyz") as r:
        assert r.status == 200, await r.text()


async def test_an_amount_of_hundreds_of_digits_is_an_invalid_command(
    producer: Any, outcomes: Any, new_id: Any
) -> None:
    account = new_id("digits")
    value = (
        b'{"account_id": "'
        + account.encode()
        + b'", "amount": '
        + b"9" * 400
        + b', "currency": "EUR", "external_ref": "r"}'
    )
    command_id = str(uuid.uuid4())
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", command_id.encode()),
        ("ce_source", b"e2e"),
        ("ce_type", b"ledger.deposit.v1"),
        ("ce_authtoken", token().encode()),
    ]
    await producer.raw(value, key=account.encode(), headers=headers)
    found = await outcomes.of(command_id, timeout=60)
    assert found[command_id].type == "ledger.command.rejected.v1"
    assert found[command_id].data["reason"] == "invalid"


# A header *name* that is not UTF-8: aiokafka raises on it at every fetch of the partition.
# Producing one needs aiokafka's pure-Python record builder and a name whose encode() gives
# raw bytes; a separate process, so this test's own client keeps its C extension.
_RAW_HEADER_NAME = """
import asyncio, os, sys
os.environ["AIOKAFKA_NO_EXTENSIONS"] = "1"
from aiokafka import AIOKafkaProducer

class RawName(str):
    def encode(self, *args, **kwargs):
        return b"ce_\\xff\\xfe"

async def main():
    producer = AIOKafkaProducer(bootstrap_servers=sys.argv[1])
    await producer.start()
    batch = producer.create_batch()
    batch.append(key=b"before", value=b"{}", timestamp=None, headers=[])
    batch.append(key=b"bad", value=b"{}", timestamp=None, headers=[(RawName("x"), b"v")])
    batch.append(key=b"after", value=b"{}", timestamp=None, headers=[])
    batch.close()
    await (await producer.send_batch(batch, sys.argv[2], partition=int(sys.argv[3])))
    await producer.stop()

asyncio.run(main())
"""


async def test_a_header_name_that_is_not_utf8_does_not_stop_the_partition(
    tally: Tally, producer: Any, dlq: Any, outcomes: Any, new_id: Any
) -> None:
    account = new_id("after-bad-name")
    data = {"account_id": account, "owner_id": "o", "currency": "EUR"}
    partition = _partition_of(account.encode(), tally.partitions)
    subprocess.run(
        [sys.executable, "-c", _RAW_HEADER_NAME, KAFKA, tally.topics["commands"], str(partition)],
        check=True,
        timeout=60,
    )
    valid = await producer.send("ledger.account.open.v1", data)
    found = await outcomes.of(valid, timeout=90)
    assert found[valid].type == "ledger.account.opened.v1"
    dead = await dlq.until(
        lambda rs: sum(1 for r in rs if _unreadable(r, partition)) >= 2, timeout=60
    )
    reasons = {dict(r.headers)["tally_error_reason"] for r in dead if _unreadable(r, partition)}
    assert reasons == {b"invalid_envelope"}
    # the record before the bad one in its batch is read and handled as any other
    assert any(r.key == b"before" for r in dead)


def _unreadable(record: Any, partition: int) -> bool:
    headers = dict(record.headers)
    return (
        record.key is None
        and headers.get("tally_original_partition") == str(partition).encode()
        and b"cannot read" in headers.get("tally_error_detail", b"")
    )


def _partition_of(key: bytes, partitions: int) -> int:
    from aiokafka.partitioner import murmur2

    return int(murmur2(key) & 0x7FFFFFFF) % partitions
