"""Dead letters for the console: read and replayed by the code of `tally dlq`, shown masked.

A dead letter keeps the original record's headers and value, so it may carry the sender's
JWT (`ce_authtoken`, or `authtoken` in a structured event). Nothing of it reaches a browser
unmasked: secret-looking headers are replaced whole, an `authtoken` attribute in a JSON value
is replaced, and anything shaped like a JWT anywhere is replaced too."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from streams import dlq, kafka
from streams.dlq import DeadLetter, Selection
from streams.publish import KafkaPublisher
from streams.settings import Settings

log = logging.getLogger("tally.api.console")
MASK = "«masked»"
SHOWN_BYTES = 4096  # of a key or value; the rest is cut, and said to be
CACHE_S = 5.0  # the topic is read again at most this often for lists and counts
_SECRET_HEADER = re.compile(r"auth|token|secret|passw|cookie|credential", re.IGNORECASE)
# A JWT (or a piece of one): base64url of '{"' is 'eyJ'; header, payload and signature.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}")


def masked_text(raw: bytes | None, limit: int = SHOWN_BYTES) -> str | None:
    """Bytes as text for a person: UTF-8 (bad bytes replaced), cut at `limit`, JWTs masked."""
    if raw is None:
        return None
    text = raw[:limit].decode("utf-8", "replace")
    if len(raw) > limit:
        text += f"… ({len(raw) - limit} more bytes)"
    return _JWT.sub(MASK, text)


def masked_value(raw: bytes | None) -> str | None:
    """A value; a structured CloudEvent's `authtoken` attribute masked whatever its form."""
    if raw is not None and len(raw) <= SHOWN_BYTES:
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            event = None
        if isinstance(event, dict) and any(_SECRET_HEADER.search(k) for k in event):
            shown = {k: MASK if _SECRET_HEADER.search(k) else v for k, v in event.items()}
            return masked_text(orjson.dumps(shown, option=orjson.OPT_INDENT_2))
    return masked_text(raw)


def masked_header(name: str, value: bytes | None) -> dict[str, str | None]:
    if value is not None and _SECRET_HEADER.search(name):
        return {"name": name, "value": MASK}
    return {"name": name, "value": masked_text(value, 1024)}


def letter_view(letter: DeadLetter) -> dict[str, Any]:
    """What the console shows of a dead letter (the `DeadLetterView` of the OpenAPI document)."""
    return {
        "position": letter.position,
        "partition": letter.partition,
        "offset": letter.offset,
        "reason": letter.reason,
        "detail": masked_text(letter.detail.encode(), 1024),
        "failed_at": letter.failed_at,
        "original_topic": letter.origin,
        "key": masked_text(letter.key, 512),
        "value": masked_value(letter.value),
        "value_bytes": len(letter.value) if letter.value is not None else None,
        "headers": [masked_header(name, value) for name, value in letter.headers],
    }


@dataclass(frozen=True, slots=True)
class Filter:
    """Which letters a list shows: by reason, and `failed_at` within [since, until]."""

    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def admits(self, letter: DeadLetter) -> bool:
        if self.reason and letter.reason != self.reason:
            return False
        if self.since is not None and letter.failed_at < self.since:
            return False
        return self.until is None or letter.failed_at <= self.until


@dataclass(slots=True)
class DeadLetters:
    """The dead-letter topic as the console sees it: re-read at most every CACHE_S seconds."""

    settings: Settings
    _letters: list[DeadLetter] = field(default_factory=list)
    _read_at: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def all(self) -> list[DeadLetter]:
        async with self._lock:  # concurrent polls share one read of the topic
            if time.monotonic() - self._read_at > CACHE_S:
                self._letters = await self.read(Selection())
                self._read_at = time.monotonic()
            return self._letters

    async def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(letter.reason for letter in await self.all()).items()))

    async def listed(self, selected: Filter, limit: int) -> tuple[list[DeadLetter], int]:
        """Up to `limit` letters of the filter, newest first, and how many it admits."""
        admitted = [letter for letter in await self.all() if selected.admits(letter)]
        admitted.sort(key=lambda letter: (letter.failed_at, letter.position), reverse=True)
        return admitted[:limit], len(admitted)

    async def read(self, selection: Selection) -> list[DeadLetter]:
        """The selected letters, read as `tally dlq` reads them (streams.dlq.read)."""
        consumer = AIOKafkaConsumer(
            **self.settings.kafka_options, enable_auto_commit=False, client_id="tally-api-dlq"
        )
        await consumer.start()
        try:
            return await dlq.read(consumer, self.settings.topic_dlq, selection)
        finally:
            await kafka.stop(consumer)

    async def replay(
        self, positions: Sequence[str], publisher: KafkaPublisher, operator: str
    ) -> tuple[dlq.Replayed, list[str]]:
        """Replay the letters at these `P:N` positions, as `tally dlq replay --offset` does;
        also the positions that hold no letter."""
        letters = await self.read(Selection(positions=frozenset(positions)))
        log.info(
            "console replay asked",
            extra={"operator": operator, "positions": [letter.position for letter in letters]},
        )
        done = await dlq.replay(letters, publisher.publish, operator=operator)
        self._read_at = float("-inf")
        found = {letter.position for letter in letters}
        return done, [p for p in positions if p not in found]
