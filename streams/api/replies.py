"""Request-reply over Kafka: one consumer of `ledger.events` per API process serves every waiter.

As Spring's ReplyingKafkaTemplate: requests wait on a future keyed by correlation id, and one
consumer completes them. It reads from the end of each partition, with no consumer group (so
any number of API processes each see every outcome) and no commits. A reply is never missed:
a waiter is registered before its command is produced; an outcome consumed before anyone
waited is kept for a while among the recent ones; and the caller looks in the store as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from streams import kafka

log = logging.getLogger("tally.api.replies")
RECENT = 20_000  # outcomes kept after they were consumed, newest last
Raw = tuple[list[tuple[str, bytes]], bytes | None]  # headers and value, as consumed


class Replies:
    """Completes waiters by the `ce_correlationid` of the outcomes on `ledger.events`."""

    def __init__(self, make_consumer: Callable[[], AIOKafkaConsumer], topic: str) -> None:
        self._make_consumer = make_consumer
        self._topic = topic
        self._waiting: dict[str, list[asyncio.Future[Raw]]] = {}
        self._recent: OrderedDict[str, Raw] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self.consumer: AIOKafkaConsumer | None = None
        # Called with the headers of each outcome once (not again for a republished duplicate
        # among the recent ones): the console counts throughput here (contract §15).
        self.observers: list[Callable[[list[tuple[str, bytes]]], None]] = []

    async def start(self) -> None:
        self.consumer = consumer = self._make_consumer()
        consumer.subscribe([self._topic])
        await consumer.start()
        self._task = asyncio.create_task(self._consume(consumer), name="replies")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.consumer is not None:
            await kafka.stop(self.consumer)

    @property
    def assigned(self) -> bool:
        return self.consumer is not None and bool(self.consumer.assignment())

    @contextlib.contextmanager
    def expect(self, command_id: str) -> Any:
        """A future of the command's outcome, registered for the duration of the block."""
        future: asyncio.Future[Raw] = asyncio.get_running_loop().create_future()
        seen = self._recent.get(command_id)
        if seen is not None:
            future.set_result(seen)
        self._waiting.setdefault(command_id, []).append(future)
        try:
            yield future
        finally:
            waiters = self._waiting.get(command_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiting.pop(command_id, None)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            except Exception as exc:  # the broker away: aiokafka reconnects; keep asking
                log.warning("replies consumer failed; retrying", extra={"error": repr(exc)[:200]})
                await asyncio.sleep(1.0)
                continue
            for records in batches.values():
                for record in records:
                    self._arrived(record.headers, record.value)

    def _arrived(self, headers: list[tuple[str, bytes]], value: bytes | None) -> None:
        command_id = _correlation_id(headers)
        if command_id is None:
            return
        if command_id not in self._recent:
            for observe in self.observers:
                observe(headers)
        raw: Raw = (list(headers), value)
        self._recent[command_id] = raw
        self._recent.move_to_end(command_id)
        if len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        for future in self._waiting.get(command_id, ()):
            if not future.done():
                future.set_result(raw)


def _correlation_id(headers: list[tuple[str, bytes]]) -> str | None:
    for name, value in headers:
        if name == "ce_correlationid" and value is not None:
            try:
                return value.decode()
            except UnicodeDecodeError:
                return None
    return None


def structured(raw: Raw) -> dict[str, Any]:
    """A consumed outcome as the structured CloudEvent `GET /v1/commands/{id}` answers with."""
    headers, value = raw
    attributes: dict[str, Any] = {}
    for name, text in headers:
        if name.startswith("ce_") and text is not None:
            attributes[name[3:]] = text.decode("utf-8", "replace")
    attributes.pop("specversion", None)
    attributes["data"] = orjson.loads(value) if value else None
    return event_json(attributes)


def event_json(stored: dict[str, Any]) -> dict[str, Any]:
    """An outcome (as stored, or as consumed) as one structured-mode CloudEvent object."""
    event: dict[str, Any] = {"specversion": "1.0"}
    for name in ("id", "source", "type", "time", "subject"):
        event[name] = stored.get(name)
    event["datacontenttype"] = "application/json"
    for name in ("correlationid", "causationid", "traceparent"):
        if stored.get(name):
            event[name] = stored[name]
    event["data"] = stored.get("data")
    return event
