"""A batch of events through the velocity rule and the live volumes, then durably published.

Order within a batch: admit each partition's records in offset order from the watch's own
position; decide (pure); publish the alerts and freezes and wait for the broker's acks; write
the states (the alert's mute among them) and wait for theirs; then the positions. A crash
anywhere in between replays from the last position written: a key's state ignores offsets it
has applied, and an alert decided again is the same alert, with the same id
(docs/adr/0011-tally-watch-on-faust.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from handlers.velocity import MICROS, Alert, Outflow, Rule, Velocity, observe
from handlers.volumes import Bucket, Volume, add
from streams import metrics
from streams.retry import Backoff
from streams.settings import Settings
from streams.watch import messages
from streams.watch.positions import Positions
from streams.watch.reading import Seen, read
from streams.watch.signing import Signer
from streams.watch.tables import Shelf, bucket_name

log = logging.getLogger("tally.watch")

Send = Callable[[messages.Message], Awaitable[Any]]
STALE_AFTER_US = 24 * 3600 * MICROS  # an alert whose window ended longer ago is not published
T = TypeVar("T")


@dataclass(slots=True)
class Decided:
    """What one batch changes: states by (partition, name), and the alerts to publish."""

    velocity: dict[tuple[int, str], Velocity] = field(default_factory=dict)
    volumes: dict[tuple[int, Bucket], Volume] = field(default_factory=dict)
    alerts: list[tuple[str, Alert]] = field(default_factory=list)


class Watcher:
    """Applies batches of `ledger.events` records to the velocity and volume tables."""

    def __init__(
        self,
        settings: Settings,
        velocity: Shelf[Velocity],
        volumes: Shelf[Volume],
        send: Send,
        signer: Signer | None,
        positions: Positions,
        problem: Callable[[str | None], None] = lambda _: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.rule = Rule(settings.watch_max_outflows, settings.watch_window_s)
        self._settings = settings
        self._velocity = velocity
        self._volumes = volumes
        self._send = send
        self._signer = signer
        self._problem = problem  # readiness: the reason publishing is failing, or None
        self._clock = clock
        self._source = f"{settings.event_source}/watch"
        self.positions = positions
        self.stream_time: dict[int, int] = {}  # partition -> newest event time seen

    async def take(self, records: Sequence[Any]) -> None:
        """Process one batch of faust events (`.message` carries the Kafka record)."""
        admitted, nexts = await self._durably(
            lambda: self.positions.admit(records), "reading positions"
        )
        seen = [s for s in map(_read, admitted) if s is not None]
        if log.isEnabledFor(logging.DEBUG):
            log.debug("batch", extra={"offsets": [(s.partition, s.offset) for s in seen]})
        decided = self.decide(seen)
        fresh = self._fresh(decided.alerts)
        await self._durably(self._publications(fresh), "publishing alerts")
        await self._durably(lambda: self._writes(decided), "writing state")
        await self._durably(lambda: self.positions.write(nexts), "writing positions")
        self.positions.advanced(nexts)
        metrics.WATCH_EVENTS.inc(len(admitted))

    def decide(self, seen: Iterable[Seen]) -> Decided:
        decided = Decided()
        for event in seen:
            self.stream_time[event.partition] = max(
                self.stream_time.get(event.partition, 0), event.at
            )
            self._outflow(event, decided)
            self._volume(event, decided)
        return decided

    def _outflow(self, event: Seen, decided: Decided) -> None:
        account = event.outflow_of
        if account is None:
            return
        key = (event.partition, account)
        state = decided.velocity.get(key) or self._velocity.get(*key) or Velocity()
        outflow = Outflow(event.id, event.at, event.offset)
        decided.velocity[key], alert = observe(state, outflow, self.rule)
        if alert is not None:
            decided.alerts.append((account, alert))

    def _volume(self, event: Seen, decided: Decided) -> None:
        found = event.bucket
        if found is None:
            return
        bucket, amount = found
        key = (event.partition, bucket)
        name = bucket_name(bucket)
        volume = decided.volumes.get(key) or self._volumes.get(event.partition, name) or Volume()
        decided.volumes[key] = add(volume, amount, event.offset)

    def _fresh(self, alerts: list[tuple[str, Alert]]) -> list[tuple[str, Alert]]:
        """The alerts to publish: a window that ended more than STALE_AFTER_S ago (a first start
        reading a long history) is kept as muted, but raises no alarm and freezes nothing."""
        now = int(self._clock().timestamp() * MICROS)
        fresh = [(a, alert) for a, alert in alerts if alert.last_at + STALE_AFTER_US >= now]
        if len(fresh) < len(alerts):
            log.info("stale alerts not published", extra={"count": len(alerts) - len(fresh)})
        return fresh

    def _publications(self, alerts: list[tuple[str, Alert]]) -> Callable[[], Awaitable[Any]]:
        s = self._settings
        window = self.rule.window_s

        async def publish() -> None:
            sends = []
            for account, alert in alerts:
                message = messages.alert_message(
                    s.topic_events, account, alert, window, self._source
                )
                sends.append(self._send(message))
                if self._signer is not None:
                    token = self._signer.token(self._clock())
                    freeze = messages.freeze_message(
                        s.topic_commands, account, alert, self._source, token
                    )
                    sends.append(self._send(freeze))
            await asyncio.gather(*sends)
            for account, alert in alerts:
                metrics.WATCH_ALERTS.inc()
                log.warning(
                    "velocity exceeded",
                    extra={
                        "account_id": account,
                        "count": alert.count,
                        "alert_id": messages.alert_id(account, alert),
                        "freeze": self._signer is not None,
                    },
                )

        return publish

    async def _writes(self, decided: Decided) -> None:
        velocity = ((p, account, state) for (p, account), state in decided.velocity.items())
        volumes = ((p, bucket_name(b), volume) for (p, b), volume in decided.volumes.items())
        await asyncio.gather(self._velocity.write(velocity), self._volumes.write(volumes))

    async def _durably(self, step: Callable[[], Awaitable[T]], what: str) -> T:
        """Run `step` until it succeeds: the broker away is an outage, never a lost alert."""
        backoff = Backoff(0.2, self._settings.retry_backoff_max)
        while True:
            try:
                done = await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(f"{what} failed; retrying", extra={"error": repr(exc)[:300]})
                self._problem(f"{what} failed: {type(exc).__name__}")
                await asyncio.sleep(backoff.delay())
                continue
            self._problem(None)
            return done


def _read(record: Any) -> Seen | None:
    message = record.message
    return read(message.value, message.headers, message.partition, message.offset)
