"""Recovery times, measured on the outcome topic: when each partition publishes again."""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import TYPE_CHECKING

from tests.chaos.kafka_io import Seen, partition_of
from tests.chaos.messages import Message

if TYPE_CHECKING:
    from tests.chaos.runner import Recovery


def resume_times(
    recoveries: list[Recovery], events: list[Seen], commands: dict[str, Message], partitions: int
) -> None:
    """Set each recovery's `resume_s`: from the fault's end until every command partition has
    published an outcome again (by record create time; the probes give each one work)."""
    stamps: dict[int, list[float]] = defaultdict(list)
    for event in events:
        corr = event.headers.get("ce_correlationid")
        if corr is None or corr != event.headers.get("ce_causationid"):
            continue  # a transfer leg's outcome: published on behalf of another partition
        message = commands.get(corr.decode())
        if message is not None and message.key is not None:
            stamps[partition_of(message.key, partitions)].append(event.timestamp)
    for times in stamps.values():
        times.sort()
    for recovery in recoveries:
        waits = []
        for p in range(partitions):
            times = stamps[p]
            i = bisect.bisect_right(times, recovery.end)
            waits.append(times[i] - recovery.end if i < len(times) else None)
        known = [w for w in waits if w is not None]
        recovery.resume_s = round(max(known), 2) if len(known) == len(waits) else None
