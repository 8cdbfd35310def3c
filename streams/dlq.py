"""Dead letters read back and replayed (contract §14): the code behind `tally dlq` and the console.

A replay sends a dead letter to the topic it came from with its original key, value and
headers, minus the `tally_*` headers Tally added, plus `tally_replayed_from` =
`<partition>:<offset>`. Replaying is safe to repeat: a command that was decided meanwhile is
a duplicate by its id, and answered with its first outcome (contract §8.2)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer

from streams.publish import Message

log = logging.getLogger("tally.dlq")
REPLAYED_FROM = "tally_replayed_from"
_OURS = "tally_"
_ASSIGNMENT_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic, as Tally wrote it."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name and value is not None:
                return value.decode("utf-8", "replace")
        return None

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def reason(self) -> str:
        return self.header("tally_error_reason") or "unknown"

    @property
    def detail(self) -> str:
        return self.header("tally_error_detail") or ""

    @property
    def failed_at(self) -> datetime:
        """When Tally dead-lettered it (its `tally_failed_at`, else the record's time)."""
        stamped = self.header("tally_failed_at")
        if stamped:
            try:
                return datetime.fromisoformat(stamped)
            except ValueError:
                pass
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def origin(self) -> str | None:
        return self.header("tally_original_topic")


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters: by reason, position (`N` any partition, or `P:N`), time, count."""

    reason: str | None = None
    positions: frozenset[str] = frozenset()
    since: datetime | None = None
    limit: int | None = None

    def admits(self, letter: DeadLetter) -> bool:
        if self.reason is not None and letter.reason != self.reason:
            return False
        if self.positions and not {str(letter.offset), letter.position} & self.positions:
            return False
        return self.since is None or letter.failed_at >= self.since


async def read(consumer: AIOKafkaConsumer, topic: str, selection: Selection) -> list[DeadLetter]:
    """The selected dead letters, oldest first per partition, up to the log end as it was when
    reading began (letters arriving meanwhile are left for the next look)."""
    if topic not in await consumer.topics():
        return []
    # Without a group, a subscription is assigned every partition of the topic.
    consumer.subscribe([topic])
    async with asyncio.timeout(_ASSIGNMENT_TIMEOUT_S):
        while not consumer.assignment():  # noqa: ASYNC110  (group-less: no event to await)
            await asyncio.sleep(0.05)
    partitions = sorted(consumer.assignment())
    ends = await consumer.end_offsets(partitions)
    await consumer.seek_to_beginning(*partitions)
    remaining = {tp for tp in partitions if ends[tp] > await consumer.position(tp)}
    found: list[DeadLetter] = []
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=1000)
        for tp, records in batches.items():
            for record in records:
                if record.offset >= ends[tp]:
                    continue
                letter = _letter(record)
                if selection.admits(letter):
                    found.append(letter)
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
        if selection.limit is not None and len(found) >= selection.limit:
            break
    return found[: selection.limit] if selection.limit is not None else found


def _letter(record: Any) -> DeadLetter:
    return DeadLetter(
        record.partition,
        record.offset,
        record.timestamp,
        record.key,
        record.value,
        tuple(record.headers or ()),
    )


def replay_message(letter: DeadLetter) -> Message | None:
    """The record to send again, or None if the letter does not say where it came from."""
    origin = letter.origin
    if origin is None:
        return None
    headers = [(k, v) for k, v in letter.headers if not k.startswith(_OURS)]
    headers.append((REPLAYED_FROM, letter.position.encode()))
    # A header that was null stays null: the record goes back exactly as it came.
    return Message(origin, letter.key, letter.value, headers)  # type: ignore[arg-type]


@dataclass(slots=True)
class Replayed:
    sent: int = 0
    skipped: int = 0  # no original topic to send them to

    def summary(self, dry_run: bool) -> str:
        verb = "would replay" if dry_run else "replayed"
        tail = f", {self.skipped} without an original topic skipped" if self.skipped else ""
        return f"{verb} {self.sent} dead letter{'s' * (self.sent != 1)}{tail}"


async def replay(
    letters: Sequence[DeadLetter],
    send: Callable[[Sequence[Message]], Any],
    *,
    operator: str | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
    chunk: int = 200,
) -> Replayed:
    """Send the letters back where they came from, in chunks, reporting progress."""
    result = Replayed()
    messages: list[Message] = []
    for letter in letters:
        message = replay_message(letter)
        if message is None:
            result.skipped += 1
        else:
            messages.append(message)
    for start in range(0, len(messages), chunk):
        part = messages[start : start + chunk]
        await send(part)
        result.sent += len(part)
        progress(result.sent, len(messages))
    log.info(
        "dead letters replayed",
        extra={"sent": result.sent, "skipped": result.skipped, "operator": operator},
    )
    return result


def listing(letters: Iterable[DeadLetter]) -> list[str]:
    """`tally dlq ls`: one line per letter; the key, never the headers (they may hold tokens)."""
    lines = []
    for letter in letters:
        key = letter.key.decode("utf-8", "replace") if letter.key is not None else "-"
        when = letter.failed_at.isoformat().replace("+00:00", "Z")
        detail = " ".join(letter.detail.split())[:120]
        lines.append(f"{letter.position:>8}  {when}  {letter.reason:<17} key={key}  {detail}")
    return lines
