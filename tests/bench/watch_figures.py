"""The watch section's figures: the table's lines and the JSON part."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# The watch keeps up if, when the worker's drain ends, what it has yet to apply takes it at most
# a second: it follows the worker at the worker's top rate, a batch or so behind.
KEEP_UP_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Phase:
    """The watch over one stretch of the events log."""

    events: int  # records of ledger.events it had to apply
    seconds: float  # wall time: alone, until applied; beside, the worker's drain
    cpu_seconds: float  # the watch's
    commands: int = 0  # beside: commands the worker drained
    lag_at_end: int = 0  # beside: records not yet applied when the drain's last outcome was out
    catch_up_seconds: float = 0.0  # beside: from then until all were applied
    worker_cpu_seconds: float = math.nan

    @property
    def per_s(self) -> float:
        return self.events / self.seconds if self.seconds else math.nan

    @property
    def cpu_s_per_1000(self) -> float:
        return self.cpu_seconds / self.events * 1000 if self.events else math.nan

    @property
    def worker_per_s(self) -> float:
        return self.commands / self.seconds if self.seconds else math.nan

    @property
    def keeps_up(self) -> bool:
        return self.catch_up_seconds <= KEEP_UP_SECONDS

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "seconds": round(self.seconds, 2),
            "events_per_s": round(self.per_s, 1),
            "cpu_s_per_1000_events": round(self.cpu_s_per_1000, 3),
            "commands": self.commands,
            "worker_cmds_per_s": round(self.worker_per_s, 1) if self.commands else None,
            "lag_at_end": self.lag_at_end,
            "catch_up_seconds": round(self.catch_up_seconds, 2),
        }


@dataclass(slots=True)
class WatchFigures:
    alone: Phase | None = None
    drain: Phase | None = None
    alerts: int = 0
    peak_rss_mib: float = math.nan

    def lines(self) -> list[str]:
        out = ["Watch section (tally watch, faust-streaming, memory tables with changelogs)"]
        if self.alone is not None:
            a = self.alone
            out.append(
                f"  alone, the events log from its start: {a.events:,} records in "
                f"{a.seconds:.1f} s once ready = {a.per_s:,.0f}/s, "
                f"CPU per 1,000 events {a.cpu_s_per_1000:.3f} s"
            )
        if self.drain is not None:
            d = self.drain
            verdict = "kept up" if d.keeps_up else "fell behind"
            out.append(
                f"  beside the worker's drain of {d.commands:,} commands at "
                f"{d.worker_per_s:,.0f}/s: {d.events:,} events, watch CPU per 1,000 events "
                f"{d.cpu_s_per_1000:.3f} s"
            )
            out.append(
                f"  lag at the end of the drain {d.lag_at_end:,} records, caught up "
                f"{d.catch_up_seconds:.2f} s later   (target: within {KEEP_UP_SECONDS:.0f} s: "
                f"{verdict})"
            )
        out.append(
            f"  velocity alerts published {self.alerts:,}; peak RSS {self.peak_rss_mib:.0f} MiB"
        )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "alone": self.alone.as_dict() if self.alone else None,
            "drain": self.drain.as_dict() if self.drain else None,
            "keeps_up": self.drain.keeps_up if self.drain else None,
            "alerts": self.alerts,
            "peak_rss_mib": round(self.peak_rss_mib, 1),
        }
