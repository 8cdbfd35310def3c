"""The intake: each consumer record becomes a command, a transfer leg, or a dead letter."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from handlers.admit import admit
from handlers.auth import Principal, TokenKeys
from handlers.decision import Rejection
from models.commands import Command
from models.documents import TransferLeg
from models.ids import LEG_TYPE, command_inbox_id, leg_inbox_id
from streams.codec import CloudEvent, Limits, RawHeaders, Undecodable, decode
from streams.fetch import UnreadableRecord
from streams.jwks import KeySource, StaticKeys
from streams.legs import verify_leg
from streams.settings import Settings

LOG_APPEND_TIME = 1  # a record's timestamp_type when the broker stamped it (ADR 0007)


@dataclass(frozen=True, slots=True)
class CommandItem:
    record: Any
    event: CloudEvent
    admission: tuple[Command, Principal] | Rejection

    @property
    def inbox_id(self) -> str:
        return command_inbox_id(self.event.id)


@dataclass(frozen=True, slots=True)
class LegItem:
    record: Any
    leg: TransferLeg

    @property
    def inbox_id(self) -> str:
        return leg_inbox_id(self.leg.command_id, self.leg.leg)


@dataclass(frozen=True, slots=True)
class DeadItem:
    record: Any
    reason: str
    detail: str


Item = CommandItem | LegItem | DeadItem
Envelope = CloudEvent | DeadItem


def record_time(record: Any) -> datetime | None:
    """The record's Kafka timestamp; None if it is not a time (a producer may write any)."""
    try:
        return datetime.fromtimestamp(record.timestamp / 1000, UTC)
    except (OverflowError, ValueError, OSError, TypeError):
        return None


def record_day(record: Any) -> str:
    """The UTC day of the record's Kafka timestamp (contract §4 daily limit)."""
    return (record_time(record) or datetime.now(UTC)).strftime("%Y-%m-%d")


_TOKEN_LIKE = re.compile(r"eyJ[\w-]*\.[\w-]*\.?[\w-]*")


def failure_detail(error: BaseException) -> str:
    """`tally_error_detail` of a processing error: class and message, never a token."""
    return _TOKEN_LIKE.sub("[token]", f"{type(error).__name__}: {error}")[:300]


class Decoder:
    """Stateless checks of contract §5/§7, in order: envelope → type → token → schema.

    Every record becomes exactly one item: a command (accepted for deciding or already
    rejected), a transfer leg, or a dead letter. An exception while reading a record is a
    defect: the record is read again up to TALLY_RECORD_MAX_ATTEMPTS times, then dead-lettered
    `processing_error`; it never reaches the batch."""

    def __init__(self, settings: Settings, keys: TokenKeys | KeySource) -> None:
        self._keys: KeySource = StaticKeys(keys) if isinstance(keys, TokenKeys) else keys
        self._legs_topic = settings.topic_transfers
        self._limits = Limits(settings.max_message_bytes, settings.max_headers)
        self._max_amount = settings.max_amount
        self._attempts = settings.record_max_attempts
        self._leg_key = settings.leg_key

    def envelopes(self, records: Sequence[Any]) -> list[Envelope]:
        """Step 1, pure: each record's CloudEvent, or its dead letter."""
        return [self._attempted(self._envelope, record) for record in records]

    async def keys_for(self, envelopes: Sequence[Envelope]) -> TokenKeys:
        """Step 2, may fetch: the keys for the batch's tokens (OutageError if unreachable)."""
        tokens = [
            token
            for e in envelopes
            if isinstance(e, CloudEvent) and (token := e.attributes.get("authtoken"))
        ]
        return await self._keys.keys_for(tokens)

    def items(
        self,
        records: Sequence[Any],
        envelopes: Sequence[Envelope],
        keys: TokenKeys,
        now: datetime,
    ) -> list[Item]:
        """Step 3, pure: admit each command (type, token, schema) or read each leg."""
        return [
            e if isinstance(e, DeadItem) else self._attempted(self._item, r, e, keys, now)
            for r, e in zip(records, envelopes, strict=True)
        ]

    async def decode_all(self, records: Sequence[Any], now: datetime) -> list[Item]:
        """The three steps in a row (tests and tools; the pipeline runs them itself)."""
        envelopes = self.envelopes(records)
        return self.items(records, envelopes, await self.keys_for(envelopes), now)

    def _attempted(self, read: Any, record: Any, *args: Any) -> Any:
        error: Exception | None = None
        for _ in range(self._attempts):
            try:
                return read(record, *args)
            except Exception as exc:  # a defect in reading this one record: never the batch's
                error = exc
        assert error is not None
        return DeadItem(record, "processing_error", failure_detail(error))

    def _envelope(self, record: Any) -> Envelope:
        if isinstance(record, UnreadableRecord):
            return DeadItem(record, "invalid_envelope", record.error)
        headers: RawHeaders = list(record.headers or ())
        event = decode(record.value, headers, self._limits, key=record.key)
        if isinstance(event, Undecodable):
            return DeadItem(record, event.reason, event.detail)
        if record.topic == self._legs_topic:
            untrusted = verify_leg(self._leg_key, record.value, headers)
            if untrusted is not None:
                return DeadItem(record, "untrusted_leg", untrusted)
        return event

    def _item(self, record: Any, event: CloudEvent, keys: TokenKeys, now: datetime) -> Item:
        if record.topic == self._legs_topic:
            return self._leg(record, event)
        admission = admit(
            event.type,
            event.data,
            event.attributes.get("authtoken"),
            keys,
            token_time(record, now),
            self._max_amount,
        )
        return CommandItem(record, event, admission)

    def _leg(self, record: Any, event: CloudEvent) -> Item:
        if event.type != LEG_TYPE:
            return DeadItem(
                record, "invalid_envelope", f"unexpected type {event.type[:64]!r} on legs topic"
            )
        try:
            return LegItem(record, TransferLeg.model_validate(event.data))
        except ValidationError as exc:
            return DeadItem(
                record, "invalid_envelope", f"invalid transfer leg: {exc.errors()[0]['msg']}"
            )


def token_time(record: Any, now: datetime) -> datetime:
    """When a command's token is judged (contract §6): the broker's append time where the topic
    stamps it (`message.timestamp.type=LogAppendTime`), so a backlog never expires a token;
    on a topic with producer timestamps, `now`, since a producer could backdate its record."""
    if getattr(record, "timestamp_type", None) == LOG_APPEND_TIME:
        return record_time(record) or now
    return now


def leg_value(leg: dict[str, Any]) -> bytes:
    return orjson.dumps(leg)
