"""The watch's state in faust tables, each key written to its changelog partition explicitly.

Keys are `<partition>:<name>`, the partition of `ledger.events` whose events change the key.
faust's own `table[key] = value` picks the changelog partition from the event being processed,
which a batch of events (`take_events`) does not provide, and hands each write to a buffer that
feeds the producer one message at a time. Here a batch's states go straight to the producer,
each to the changelog partition named by its key, and the batch waits for their acks before it
writes its position (docs/adr/0011-tally-watch-on-faust.md). faust reads the changelogs back
into the tables at start-up, as its own writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator
from dataclasses import asdict
from typing import Any, Generic, TypeVar

import orjson

from handlers.velocity import Alert, Velocity
from handlers.volumes import Bucket, Volume

S = TypeVar("S")
# (topic, partition, key, value) -> the future of the broker's ack, once the record is queued.
Send = Callable[[str, int, bytes, bytes | None], Awaitable[Awaitable[Any]]]


class Shelf(Generic[S]):
    """One faust table of one kind of state (kept as its JSON-ready dict)."""

    def __init__(
        self,
        table: Any,
        topic: str,
        send: Send,
        load: Callable[[dict[str, Any]], S],
        dump: Callable[[S], dict[str, Any]],
    ) -> None:
        self.table = table
        self.topic = topic  # the table's changelog
        self._send = send
        self._load = load
        self._dump = dump

    def get(self, partition: int, name: str) -> S | None:
        stored = self.table.data.get(_key(partition, name))
        return self._load(stored) if stored else None

    async def write(self, changes: Iterable[tuple[int, str, S]]) -> None:
        """Keep the states and write them to the changelog; returns once the broker acked all."""
        acks = []
        for partition, name, state in changes:
            key, value = _key(partition, name), self._dump(state)
            self.table.data[key] = value
            record = (orjson.dumps(key), orjson.dumps(value))
            acks.append(await self._send(self.topic, partition, *record))
        await asyncio.gather(*acks)

    async def drop(self, partition: int, name: str) -> None:
        """Forget the key, here and (a tombstone) in the changelog."""
        key = _key(partition, name)
        self.table.data.pop(key, None)
        await self._send(self.topic, partition, orjson.dumps(key), None)

    def items(self, partitions: Collection[int]) -> Iterator[tuple[int, str, S]]:
        """(partition, name, state) of the keys of these partitions (the ones this watch owns:
        after a rebalance, keys of another's partitions may linger in memory)."""
        for key, stored in list(self.table.data.items()):
            partition, _, name = str(key).partition(":")
            if stored and partition.isdigit() and int(partition) in partitions:
                yield int(partition), name, self._load(stored)


def _key(partition: int, name: str) -> str:
    return f"{partition}:{name}"


def load_velocity(stored: dict[str, Any]) -> Velocity:
    alert = stored.get("alert")
    return Velocity(
        recent=tuple((at, event_id) for at, event_id in stored["recent"]),
        offset=stored["offset"],
        muted_until=stored["muted_until"],
        alert=Alert(**alert) if alert else None,
    )


def dump_velocity(state: Velocity) -> dict[str, Any]:
    return {
        "recent": [list(entry) for entry in state.recent],
        "offset": state.offset,
        "muted_until": state.muted_until,
        "alert": asdict(state.alert) if state.alert else None,
    }


def load_volume(stored: dict[str, Any]) -> Volume:
    return Volume(**stored)


def dump_volume(volume: Volume) -> dict[str, Any]:
    return asdict(volume)


def bucket_name(bucket: Bucket) -> str:
    return f"{bucket.minute}:{bucket.currency}:{bucket.type}"


def bucket_of(name: str) -> Bucket:
    minute, currency, event_type = name.split(":", 2)
    return Bucket(int(minute), currency, event_type)
