"""The short chaos run of `make test`: kill -9, group churn and SIGTERM under poisoned load."""

from __future__ import annotations

import pytest

from tests.chaos.config import Config
from tests.chaos.runner import run
from tests.chaos.summary import dumps
from tests.conftest import KAFKA_BOOTSTRAP, MONGO_URI

pytestmark = pytest.mark.chaos

SHORT = Config(
    commands=1000,
    seed=7,
    scenarios=frozenset({"kill", "group", "sigterm"}),
    workers=2,
    rate=100.0,
    accounts=30,
    kills=4,
    group_changes=4,
    sigterms=1,
    drain_timeout=150.0,
    kafka=KAFKA_BOOTSTRAP,
    mongo=MONGO_URI,
)


@pytest.mark.timeout(300)
async def test_no_command_is_lost_or_applied_twice_under_kills_rebalances_and_sigterm() -> None:
    summary, report = await run(SHORT)
    failures = {check: report.examples[check] for check in report.counts}
    assert report.ok, f"{dumps(summary)}\n{failures}"
    assert summary["kills"] >= SHORT.kills
    assert summary["lost"] == summary["duplicate_effects"] == 0
