"""Helpers for the pipeline's integration tests: records as aiokafka gives them, signed
commands, a publisher that records, and a store that 'crashes' after a chosen step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import jwt
import orjson
from aiokafka import AIOKafkaConsumer

from handlers.auth import TokenKeys
from streams.batch_trace import UNTRACED, Tracing
from streams.intake import Decoder
from streams.pipeline import Pipeline
from streams.ports import Store
from streams.publish import Message
from streams.settings import Settings
from streams.store import MongoStore
from tests.conftest import KAFKA_BOOTSTRAP

SECRET = "integration-secret-long-enough-for-hs256"


class CrashError(Exception):
    pass


class Record:
    """The fields of an aiokafka ConsumerRecord the pipeline reads."""

    def __init__(
        self,
        topic: str,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> None:
        self.topic, self.partition, self.offset = topic, 0, offset
        self.key, self.value, self.headers = key, value, headers
        self.timestamp = int(time.time() * 1000)


def command(
    offset: int,
    ctype: str,
    data: dict[str, Any],
    *,
    cid: str | None = None,
    token: str | None = None,
) -> Record:
    """A command record; command id `cid` (default cmd-<offset>), signed by `token` (default
    an ops token valid for ten minutes)."""
    if token is None:
        claims = {"sub": "ops", "roles": ["ops"], "exp": int(time.time()) + 600}
        token = jwt.encode(claims, SECRET)
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", (cid or f"cmd-{offset}").encode()),
        ("ce_source", b"test"),
        ("ce_type", ctype.encode()),
        ("ce_authtoken", token.encode()),
    ]
    key = (data.get("from_account") or data["account_id"]).encode()
    return Record("ledger.commands", offset, key, orjson.dumps(data), headers)


def opens(*accounts: str) -> list[Record]:
    """Open these accounts (EUR), at offsets 0, 1, ..."""
    return [
        command(i, "ledger.account.open.v1", {"account_id": a, "owner_id": "o", "currency": "EUR"})
        for i, a in enumerate(accounts)
    ]


def deposit(
    offset: int,
    ref: str | None = None,
    *,
    account: str = "a",
    amount: int = 100,
    cid: str | None = None,
) -> Record:
    """`amount` EUR into `account`; external_ref `ref` (default r<offset>); `cid` another
    command id."""
    data = {"account_id": account, "amount": amount, "currency": "EUR"}
    return command(
        offset, "ledger.deposit.v1", data | {"external_ref": ref or f"r{offset}"}, cid=cid
    )


def transfer(
    offset: int, tid: str | None = None, *, amount: int = 10, cid: str | None = None
) -> Record:
    """`amount` EUR from a to b; transfer_id `tid` (default t<offset>); `cid` another command
    id."""
    data = {"transfer_id": tid or f"t{offset}", "from_account": "a", "to_account": "b"}
    return command(
        offset, "ledger.transfer.v1", data | {"amount": amount, "currency": "EUR"}, cid=cid
    )


class CrashingStore(MongoStore):
    """The real store, which 'crashes' once at the step named by `crash_at`.

    Right after it succeeded: `accounts` (the next account write), `accounts:<n>` (the
    store's n-th account write, from 1), `effects`, `inbox` (a non-empty inbox insert);
    `before-accounts:<n>`: the n-th account write, before it writes. A situation of a test's
    own (another writer, say) is a subclass overriding a write, calling this one's."""

    crash_at: str | None = None
    account_rounds = 0
    # (reached, release): the next non-empty put_inbox sets `reached`, waits for `release`
    inbox_gate: tuple[asyncio.Event, asyncio.Event] | None = None

    def _maybe_crash(self, step: str) -> None:
        if self.crash_at == step:
            self.crash_at = None
            raise CrashError(step)

    async def write_accounts(self, writes: Any) -> None:
        self.account_rounds += 1
        self._maybe_crash(f"before-accounts:{self.account_rounds}")
        await super().write_accounts(writes)
        self._maybe_crash(f"accounts:{self.account_rounds}")
        self._maybe_crash("accounts")

    async def write_effects(self, effects: Any) -> None:
        await super().write_effects(effects)
        self._maybe_crash("effects")

    async def put_inbox(self, records: Sequence[dict[str, Any]]) -> list[str]:
        if records and self.inbox_gate is not None:  # a slow database call
            (reached, release), self.inbox_gate = self.inbox_gate, None
            reached.set()
            await release.wait()
        taken = await super().put_inbox(records)
        if records:
            self._maybe_crash("inbox")
        return taken


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.fail_next = False

    async def publish(self, messages: Sequence[Message]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise CrashError("publish")
        self.sent.extend(messages)

    def legs(self) -> dict[bytes, Message]:
        return {dict(m.headers)["ce_id"]: m for m in self.sent if m.topic == "ledger.transfers"}

    def outcomes(self) -> dict[str, set[bytes]]:
        found: dict[str, set[bytes]] = {}
        for m in self.sent:
            if m.topic == "ledger.events":
                headers = dict(m.headers)
                found.setdefault(headers["ce_correlationid"].decode(), set()).add(
                    headers["ce_type"]
                )
        return found


def pipeline(
    settings: Settings,
    store: Store,
    publisher: Recorder,
    *,
    local: bool = False,
    tracing: Tracing = UNTRACED,
) -> Pipeline:
    """A pipeline on `store` (the real one, or InMemoryStore); `local`: this worker owns every
    account (ADR 5)."""
    decoder = Decoder(settings, TokenKeys(secret=SECRET))
    owns = (lambda account: True) if local else None
    return Pipeline(settings, store, publisher, decoder, local=owns, tracing=tracing)  # type: ignore[arg-type]


async def opened(env: Any, *, local: bool = False) -> tuple[Pipeline, Recorder]:
    """A pipeline on `crash_env`'s store with accounts a and b opened, and its publisher."""
    settings, store, _ = env
    publisher = Recorder()
    worker = pipeline(settings, store, publisher, local=local)
    await worker.process(opens("a", "b"), time.time())
    return worker, publisher


async def group_consumer(topic: str) -> AIOKafkaConsumer:
    """A started consumer of `topic` in its own group (named after the topic), from the start,
    committing only when told."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=KAFKA_BOOTSTRAP,
        group_id=topic,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    return consumer
