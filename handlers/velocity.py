"""The velocity rule of the watch (contract §16): outflows per account in a sliding window.

Times are integer microseconds since the epoch (the outcome's `time`), so a state read back
from its changelog is the state that was written, to the microsecond.
"""

from dataclasses import dataclass, replace

MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class Rule:
    """More than `max_outflows` outflows within `window_s` seconds is too many."""

    max_outflows: int
    window_s: int

    @property
    def window_us(self) -> int:
        return self.window_s * MICROS


@dataclass(frozen=True, slots=True)
class Outflow:
    """A withdrawal or a completed transfer out, as read at `offset` of its partition."""

    event_id: str
    at: int
    offset: int


@dataclass(frozen=True, slots=True)
class Alert:
    """An account passed the rule: `count` outflows from `first_at` to `last_at`."""

    count: int
    first_at: int
    last_at: int
    trigger: str  # the event id of the outflow that passed the threshold: names the alert


@dataclass(frozen=True, slots=True)
class Velocity:
    """One account's state: its newest outflows within the window (at most max + 1, oldest
    first), the last offset applied, and the end of the last alert's window."""

    recent: tuple[tuple[int, str], ...] = ()
    offset: int = -1
    muted_until: int = 0
    alert: Alert | None = None  # the last alert, for the latest-alerts view

    @property
    def last_at(self) -> int:
        """The newest time this state knows of (0: none)."""
        newest = self.recent[-1][0] if self.recent else 0
        return max(newest, self.alert.last_at if self.alert else 0)


def observe(state: Velocity, outflow: Outflow, rule: Rule) -> tuple[Velocity, Alert | None]:
    """The state after `outflow`, and the alert it raises, if any.

    Idempotent twice over: an offset at or below the last applied is a replay after a restart
    (changes nothing); an event id already among the recent ones is an outcome published again
    (counted once). An alert mutes the account until its window has passed: the next alert
    counts only outflows after this one's `last_at`, so each window alerts once.
    """
    if outflow.offset <= state.offset:
        return state, None
    if any(event_id == outflow.event_id for _, event_id in state.recent):
        return replace(state, offset=outflow.offset), None
    entry = (outflow.at, outflow.event_id)
    recent = _window([*state.recent, entry], rule)
    state = replace(state, recent=recent, offset=outflow.offset)
    if len(recent) <= rule.max_outflows or entry not in recent:
        return state, None
    now = recent[-1][0]
    if now < state.muted_until:
        return state, None
    alert = Alert(len(recent), recent[0][0], now, outflow.event_id)
    return replace(state, muted_until=now + rule.window_us, alert=alert), alert


def _window(entries: list[tuple[int, str]], rule: Rule) -> tuple[tuple[int, str], ...]:
    """The newest max + 1 entries within the window that ends at the newest one: enough to
    know whether the count passed the threshold, and a state of bounded size."""
    entries.sort()
    start = entries[-1][0] - rule.window_us
    inside = [e for e in entries if e[0] > start]
    return tuple(inside[-(rule.max_outflows + 1) :])


def expired(state: Velocity, now: int, rule: Rule, keep_alert_us: int) -> bool:
    """Whether the state can be forgotten at `now`: nothing recent counts any more, no mute
    is running, and its last alert (if any) is older than `keep_alert_us`."""
    idle = state.last_at + rule.window_us < now and state.muted_until < now
    alert_gone = state.alert is None or state.alert.last_at + keep_alert_us < now
    return idle and alert_gone
