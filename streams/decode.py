"""Turn consumer records into work items: a command, a transfer leg, or a dead letter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from handlers.admit import admit
from handlers.auth import Principal, TokenKeys
from handlers.decision import Rejection
from models.commands import Command
from models.documents import TransferLeg
from streams.codec import CloudEvent, Headers, Undecodable, decode

LEG_TYPE = "tally.transfer.leg.v1"


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
        return f"l:{self.leg.message_id}"


@dataclass(frozen=True, slots=True)
class DeadItem:
    record: Any
    reason: str
    detail: str


Item = CommandItem | LegItem | DeadItem


class KeySource(Protocol):
    """Where the token keys of a batch come from: fixed keys, or a JWKS endpoint's."""

    async def keys_for(self, tokens: Sequence[str]) -> TokenKeys:
        """Keys that verify `tokens` (as far as they can be found); raises OutageError when
        the keys cannot be fetched."""
        ...


@dataclass(frozen=True, slots=True)
class StaticKeys:
    """TALLY_JWT_SECRET / TALLY_JWT_PUBLIC_KEY: the same keys for every batch."""

    keys: TokenKeys

    async def keys_for(self, tokens: Sequence[str]) -> TokenKeys:
        return self.keys


def command_inbox_id(command_id: str) -> str:
    # Commands and legs share the inbox; prefixes keep a command id from posing as a leg id.
    return f"c:{command_id}"


def record_day(record: Any) -> str:
    """The UTC day of the record's Kafka timestamp (SPEC §4 daily limit)."""
    return datetime.fromtimestamp(record.timestamp / 1000, UTC).strftime("%Y-%m-%d")


class Decoder:
    """Stateless checks of SPEC §5/§7, in order: envelope → type → token → schema."""

    def __init__(self, legs_topic: str, keys: TokenKeys, max_bytes: int, max_amount: int) -> None:
        self._legs_topic = legs_topic
        self._keys = keys
        self._max_bytes = max_bytes
        self._max_amount = max_amount

    def item(self, record: Any, now: datetime) -> Item:
        headers: Headers = list(record.headers or ())
        event = decode(record.value, headers, self._max_bytes)
        if isinstance(event, Undecodable):
            return DeadItem(record, event.reason, event.detail)
        if record.topic == self._legs_topic:
            return self._leg(record, event)
        attrs = event.attributes
        admission = admit(
            event.type, event.data, attrs.get("authtoken"), self._keys, now, self._max_amount
        )
        return CommandItem(record, event, admission)

    def _leg(self, record: Any, event: CloudEvent) -> Item:
        if event.type != LEG_TYPE:
            return DeadItem(
                record, "invalid_envelope", f"unexpected type {event.type!r} on legs topic"
            )
        try:
            return LegItem(record, TransferLeg.model_validate(event.data))
        except ValidationError as exc:
            return DeadItem(
                record, "invalid_envelope", f"invalid transfer leg: {exc.errors()[0]['msg']}"
            )


def leg_value(leg: dict[str, Any]) -> bytes:
    return orjson.dumps(leg)
