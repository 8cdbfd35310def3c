"""The velocity rule of the watch (contract §16): a sliding window, one alert per window."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.velocity import MICROS, Outflow, Rule, Velocity, expired, observe

pytestmark = pytest.mark.unit

RULE = Rule(max_outflows=5, window_s=10)
T0 = 1_800_000_000 * MICROS


def feed(
    times: list[int], rule: Rule = RULE, state: Velocity | None = None
) -> tuple[Velocity, list[int]]:
    """Apply outflows at `times` (offsets 0, 1, ...); the state and the indexes that alerted."""
    state = state or Velocity()
    alerted = []
    for offset, at in enumerate(times):
        state, alert = observe(state, Outflow(f"e{offset}", at, offset), rule)
        if alert is not None:
            alerted.append(offset)
    return state, alerted


def reference(times: list[int], rule: Rule) -> list[int]:
    """The rule by brute force over every outflow so far (times in order)."""
    alerted, muted_until = [], None
    for i, at in enumerate(times):
        count = sum(1 for earlier in times[: i + 1] if earlier > at - rule.window_us)
        if count > rule.max_outflows and (muted_until is None or at >= muted_until):
            alerted.append(i)
            muted_until = at + rule.window_us
    return alerted


def test_the_maximum_within_the_window_raises_nothing() -> None:
    _, alerted = feed([T0 + i * MICROS for i in range(5)])
    assert alerted == []


def test_one_outflow_past_the_maximum_raises_one_alert_naming_the_window() -> None:
    times = [T0 + i * MICROS for i in range(6)]
    state = Velocity()
    for offset, at in enumerate(times[:5]):
        state, _ = observe(state, Outflow(f"e{offset}", at, offset), RULE)
    state, alert = observe(state, Outflow("e5", times[5], 5), RULE)
    assert alert is not None
    assert (alert.count, alert.first_at, alert.last_at, alert.trigger) == (
        6,
        times[0],
        times[5],
        "e5",
    )
    assert state.alert == alert


def test_a_burst_alerts_once_per_window() -> None:
    burst = [T0 + i * 1000 for i in range(200)]  # 200 outflows in 0.2 s
    _, alerted = feed(burst)
    assert alerted == [5]


def test_a_burst_lasting_two_windows_alerts_once_in_each() -> None:
    times = [T0 + i * MICROS // 4 for i in range(100)]  # 4 a second for 25 s
    _, alerted = feed(times)
    assert alerted == reference(times, RULE)
    assert len(alerted) == 3  # t=1.25 s, then windows that start after each alert
    gaps = [times[b] - times[a] for a, b in itertools.pairwise(alerted)]
    assert all(gap >= RULE.window_us for gap in gaps)


def test_outflows_spread_wider_than_the_window_raise_nothing() -> None:
    _, alerted = feed([T0 + i * 3 * MICROS for i in range(50)])  # 3 in any 10 s
    assert alerted == []


def test_an_outflow_read_again_after_a_restart_changes_nothing() -> None:
    times = [T0 + i * MICROS for i in range(6)]
    state, alerted = feed(times)
    again, alert = observe(state, Outflow("e5", times[5], 5), RULE)
    assert (again, alert, alerted) == (state, None, [5])


def test_an_outcome_published_twice_counts_once() -> None:
    times = [T0 + i * MICROS for i in range(5)]
    state, _ = feed(times)
    state, alert = observe(state, Outflow("e4", times[4], 99), RULE)  # same id, later offset
    assert alert is None
    assert len(state.recent) == 5
    assert state.offset == 99


def test_an_outflow_older_than_the_window_does_not_count() -> None:
    state, _ = feed([T0 + 20 * MICROS + i for i in range(5)])
    state, alert = observe(state, Outflow("old", T0, 10), RULE)
    assert alert is None
    assert "old" not in {event_id for _, event_id in state.recent}


def test_the_state_keeps_at_most_the_maximum_plus_one_outflows() -> None:
    state, _ = feed([T0 + i for i in range(1000)])
    assert len(state.recent) == RULE.max_outflows + 1


@given(
    steps=st.lists(st.integers(min_value=0, max_value=4 * MICROS), min_size=1, max_size=120),
    max_outflows=st.integers(min_value=1, max_value=8),
    window_s=st.integers(min_value=1, max_value=20),
)
def test_alerts_are_those_of_the_rule_by_brute_force(
    steps: list[int], max_outflows: int, window_s: int
) -> None:
    rule = Rule(max_outflows, window_s)
    times = [T0 + sum(steps[: i + 1]) for i in range(len(steps))]
    assert feed(times, rule)[1] == reference(times, rule)


@given(
    steps=st.lists(st.integers(min_value=0, max_value=3 * MICROS), min_size=1, max_size=80),
    replay_from=st.integers(min_value=0, max_value=80),
    state_at=st.integers(min_value=0, max_value=80),
)
def test_a_restart_replaying_from_behind_its_state_alerts_as_the_first_run(
    steps: list[int], replay_from: int, state_at: int
) -> None:
    """After a crash the state read back may be ahead of the position replayed from (written,
    position not yet): the replay raises exactly the alerts the first run raised after that
    state, with the same triggers, and ends in the same state."""
    times = [T0 + sum(steps[: i + 1]) for i in range(len(steps))]
    states, alerts = [Velocity()], []
    for offset, at in enumerate(times):
        state, alert = observe(states[-1], Outflow(f"e{offset}", at, offset), RULE)
        states.append(state)
        alerts += [(offset, alert)] if alert else []
    start = min(replay_from, len(times))
    ahead = max(start, min(state_at, len(times)))
    replayed, again = states[ahead], []
    for offset in range(start, len(times)):
        replayed, alert = observe(replayed, Outflow(f"e{offset}", times[offset], offset), RULE)
        again += [(offset, alert)] if alert else []
    assert again == [(offset, alert) for offset, alert in alerts if offset >= ahead]
    assert replayed == states[-1]


def test_a_state_expires_once_idle_for_a_window_and_its_alert_is_old() -> None:
    state, _ = feed([T0 + i for i in range(6)])  # alerted at T0
    keep = 3600 * MICROS
    assert not expired(state, T0 + RULE.window_us * 2, RULE, keep)
    assert expired(state, T0 + keep + RULE.window_us * 2, RULE, keep)
    quiet, _ = feed([T0])
    assert expired(quiet, T0 + RULE.window_us + 1, RULE, keep)
