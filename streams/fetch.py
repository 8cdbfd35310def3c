"""Fetching records the Kafka client cannot parse without stopping: each becomes a dead letter."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

log = logging.getLogger("tally.fetch")
_STEP_WAIT_MS = 2000  # a step of the walk waits this long for the partition's next fetch
_WALK_SECONDS = 5.0  # how long a walk looks for the partition at fault before it returns


@dataclass(frozen=True, slots=True)
class UnreadableRecord:
    """Where a record sits that the client could not parse (its key, value and headers are
    out of reach): it is dead-lettered `invalid_envelope` with this position and error."""

    topic: str
    partition: int
    offset: int
    error: str
    key: None = None
    value: None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp: int = field(default_factory=lambda: int(time.time() * 1000))
    timestamp_type: int = 0


async def getmany(
    consumer: AIOKafkaConsumer, *, timeout_ms: int, max_records: int
) -> dict[Any, list[Any]]:
    """`consumer.getmany`, except that a record the client cannot parse never stops a partition.

    aiokafka decodes header names as UTF-8 and raises on any other bytes, on every fetch of
    that partition again: one record would stop the worker. Worse, records of other
    partitions taken in the same call are gone with the exception while their positions
    moved on. So the positions are noted first and put back; then the partitions are read
    one at a time, and the one at fault record by record: the record the client cannot read,
    and any other of its record batch (the client parses a batch whole), is returned as an
    UnreadableRecord at its offset, and the consumer seeks past it."""
    positions = _positions(consumer)
    try:
        fetched: dict[Any, list[Any]] = await consumer.getmany(
            timeout_ms=timeout_ms, max_records=max_records
        )
    except KafkaError:
        raise
    except Exception as exc:  # the client failed to parse what it fetched
        for tp, position in positions.items():
            consumer.seek(tp, position)
        return await _walk(consumer, max_records, exc)
    return fetched


def _positions(consumer: AIOKafkaConsumer) -> dict[Any, int]:
    """Each assigned partition's position, where it has one, without waiting.

    `consumer.position()` waits for a partition that has none yet (it would hold up a fetch
    meant not to wait), so the subscription state is read directly: aiokafka's own, pinned
    in constraints.txt, and exercised by tests/e2e/test_hostile_input.py. A partition with
    no position cannot have given records in the call that follows."""
    try:
        assignment = consumer._subscription.subscription.assignment
    except AttributeError:  # not subscribed (yet), or a stand-in consumer of a test
        return {}
    if assignment is None:
        return {}
    positions: dict[Any, int] = {}
    for tp in consumer.assignment():
        state = assignment.state_value(tp)
        if state is not None and state.has_valid_position:
            positions[tp] = state.position
    return positions


async def _walk(
    consumer: AIOKafkaConsumer, max_records: int, error: Exception
) -> dict[Any, list[Any]]:
    """What can be read, partition by partition, and the unreadable record where it is found.

    The partition at fault is refetched after the failure: until that fetch is back, and as
    long as nothing else was read, the walk waits a little and looks again."""
    taken: dict[Any, list[Any]] = {}
    room, deadline = max_records, time.monotonic() + _WALK_SECONDS
    while not taken and time.monotonic() < deadline:
        for tp in sorted(consumer.assignment()):
            try:
                records = (await consumer.getmany(tp, timeout_ms=0, max_records=room)).get(tp, [])
            except KafkaError:
                raise
            except Exception:
                records = await _step_through(consumer, tp, room)
            if records:
                taken[tp] = records
                room -= len(records)
            if room <= 0:
                break
        if not taken:
            await asyncio.sleep(0.05)
    if not taken:
        log.warning("fetch failed; the record at fault not found yet", extra={"error": repr(error)})
    return taken


async def _step_through(consumer: AIOKafkaConsumer, tp: Any, room: int) -> list[Any]:
    """Records of `tp` one at a time, up to and including the first one the client cannot
    read (returned as an UnreadableRecord; the consumer is then past it)."""
    got: list[Any] = []
    while len(got) < room:
        try:
            step = await consumer.getmany(tp, timeout_ms=_STEP_WAIT_MS, max_records=1)
        except KafkaError:
            raise
        except Exception as exc:
            offset = await consumer.position(tp)
            detail = f"the Kafka client cannot read this record: {type(exc).__name__}: {exc}"
            log.warning(
                "unreadable record dead-lettered",
                extra={"topic": tp.topic, "partition": tp.partition, "offset": offset},
            )
            got.append(UnreadableRecord(tp.topic, tp.partition, offset, detail[:300]))
            consumer.seek(tp, offset + 1)
            return got
        if not step:
            return got
        got.extend(step.get(tp, []))
    return got
