"""The run's summary: counts, failed checks, recovery and readiness figures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from tests.chaos import faults
from tests.chaos.verify import Report

if TYPE_CHECKING:
    from tests.chaos.runner import Recovery, Run


def summarize(r: Run, report: Report, seconds: float) -> dict[str, Any]:
    """The one JSON line of a run; harness-observed problems become failed checks."""
    for problem in r.problems:
        report.fail("harness", problem)
    # A slow recovery is a figure, not a broken guarantee: a probe never answered is `lost`.
    slow = sum(1 for x in r.recoveries if x.catch_up_s is None)
    resumed = [x.resume_s for x in r.recoveries if x.resume_s is not None]
    caught_up = [x.catch_up_s for x in r.recoveries if x.catch_up_s is not None]
    c = report.counts
    sends = r.producer.count
    return {
        "scenarios": sorted(r.cfg.scenarios),
        "seed": r.cfg.seed,
        "commands": len(r.commands),
        "sends": sends,
        "duplicate_sends": sends - len(r.commands) - len(r.poison),
        "poison": len(r.poison),
        "kills": r.fleet.kills,
        "rebalances": faults.assignment_rounds(r.fleet),
        "membership_changes": r.membership_changes,
        "broker_restarts": r.infra.outages.get("kafka", 0),
        "mongo_restarts": r.infra.outages.get("mongo", 0),
        "sigterms": len(r.fleet.stops),
        "sigterm_max_exit_s": max((round(x.seconds, 2) for x in r.fleet.stops), default=None),
        "lost": c["lost"],
        "duplicate_effects": c["duplicate_effects"],
        "conflicting_outcomes": c["conflicting_outcomes"],
        "unexpected_outcomes": c["unexpected_outcomes"],
        "unexpected_dead_letters": c["unexpected_dead_letters"],
        "poison_missing": c["poison_missing"],
        "conserved": not (c["not_conserved"] or c["balance_mismatches"]),
        "lag": report.info.get("lag_total"),
        "max_recovery_s": max(resumed, default=None),
        "max_catch_up_s": max(caught_up, default=None),
        "recoveries": _by_kind(r.recoveries),
        "probes_slower_than_timeout": slow,
        "readyz": r.readiness,
        "outcomes_republished": report.info.get("outcomes_republished"),
        "outcomes_with_header_variants": report.info.get("outcomes_with_header_variants"),
        "duration_s": round(seconds, 1),
        "offered_rate": round(r.producer.count / max(r.traffic_s, 0.001), 1),
        "throughput": round(len(r.commands) / seconds, 1),
        "failed_checks": dict(+c),
        "ok": report.ok,
    }


def _by_kind(recoveries: list[Recovery]) -> dict[str, list[float | None]]:
    """kind -> resume times (seconds from a fault's end until every partition publishes)."""
    out: dict[str, list[float | None]] = {}
    for x in recoveries:
        out.setdefault(x.kind, []).append(x.resume_s)
    return out


def dumps(summary: dict[str, Any]) -> str:
    return orjson.dumps(summary).decode()
