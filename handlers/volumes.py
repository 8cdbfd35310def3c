"""Live volumes of the watch (contract §16): counts and amounts per currency, type and minute."""

from collections.abc import Iterable
from dataclasses import dataclass, replace

MINUTE_US = 60_000_000


@dataclass(frozen=True, slots=True)
class Volume:
    """One tumbling minute of one currency and outcome type, within one partition: `offset`
    is the last one applied, so an event read again after a restart is not counted twice."""

    count: int = 0
    amount: int = 0
    offset: int = -1


@dataclass(frozen=True, slots=True, order=True)
class Bucket:
    """Where an event is counted: its minute (epoch microseconds of its start), currency, type."""

    minute: int
    currency: str
    type: str


def minute_of(at: int) -> int:
    """The start of the tumbling minute holding `at` (epoch microseconds)."""
    return at - at % MINUTE_US


def add(volume: Volume, amount: int, offset: int) -> Volume:
    if offset <= volume.offset:
        return volume
    return Volume(volume.count + 1, volume.amount + amount, offset)


def since(now: int, minutes: int) -> int:
    """The first minute of the last `minutes` minutes, the current one included."""
    return minute_of(now) - (minutes - 1) * MINUTE_US


def totals(
    found: Iterable[tuple[Bucket, Volume]], first_minute: int
) -> list[tuple[Bucket, Volume]]:
    """Volumes of the buckets from `first_minute` on, summed over partitions, in bucket order."""
    summed: dict[Bucket, Volume] = {}
    for bucket, volume in found:
        if bucket.minute < first_minute:
            continue
        seen = summed.get(bucket, Volume())
        summed[bucket] = replace(
            seen, count=seen.count + volume.count, amount=seen.amount + volume.amount
        )
    return sorted(summed.items())
