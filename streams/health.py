"""Readiness: named checks that the probe task, the rebalance listener and the loop update."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams import metrics


@dataclass(slots=True)
class Health:
    """Each check is None when healthy, or a short reason; all start unknown (unready)."""

    checks: dict[str, str | None] = field(
        default_factory=lambda: {
            "kafka": "not connected yet",
            "consumer_group": "not joined yet",
            "mongodb": "not connected yet",
            "pipeline": None,
        }
    )

    def __post_init__(self) -> None:
        metrics.READY.set(0)

    def set(self, name: str, problem: str | None) -> None:
        self.checks[name] = problem
        metrics.READY.set(1 if self.ready else 0)

    @property
    def ready(self) -> bool:
        return all(problem is None for problem in self.checks.values())

    def report(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "unready",
            "checks": {name: problem or "ok" for name, problem in self.checks.items()},
        }
