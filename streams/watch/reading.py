"""What the watch reads of an event on `ledger.events`: its id, type, time, partition, data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from handlers.volumes import Bucket, minute_of
from models.events import TransferCompleted, Withdrawn
from streams import codec

# Outcomes are Tally's own: no size limit of a command applies to reading them.
_LIMITS = codec.Limits(max_bytes=2**31, max_headers=2**16)


@dataclass(frozen=True, slots=True)
class Seen:
    """One event as the watch uses it; `at` is its `time` in epoch microseconds."""

    id: str
    type: str
    at: int
    data: Mapping[str, Any]
    partition: int
    offset: int

    @property
    def outflow_of(self) -> str | None:
        """The account this event takes money out of (contract §16), if it is an outflow."""
        name = {Withdrawn.TYPE: "account_id", TransferCompleted.TYPE: "from_account"}.get(self.type)
        account = self.data.get(name) if name else None
        return account if isinstance(account, str) else None

    @property
    def bucket(self) -> tuple[Bucket, int] | None:
        """Where the live volumes count it, and its amount (0 without one); None: no currency."""
        currency, amount = self.data.get("currency"), self.data.get("amount", 0)
        if not isinstance(currency, str):
            return None
        money = amount if isinstance(amount, int) and not isinstance(amount, bool) else 0
        return Bucket(minute_of(self.at), currency, self.type), money


def read(value: bytes | None, headers: Any, partition: int, offset: int) -> Seen | None:
    """The event, or None for a record that is no CloudEvent with a time and JSON object data."""
    event = codec.decode(value, _header_list(headers), _LIMITS)
    if not isinstance(event, codec.CloudEvent) or not isinstance(event.data, dict):
        return None
    at = micros(event.attributes.get("time"))
    if at is None:
        return None
    return Seen(event.id, event.type, at, event.data, partition, offset)


def _header_list(headers: Any) -> list[tuple[str, bytes | None]]:
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers) if isinstance(headers, Iterable) else []


def micros(text: str | None) -> int | None:
    """An RFC 3339 time as epoch microseconds, exactly; None if it is not one."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return _micros(moment)


def _micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def moment(at: int) -> datetime:
    """Epoch microseconds as a UTC datetime, exactly."""
    return _EPOCH + timedelta(microseconds=at)
