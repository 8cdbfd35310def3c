"""CPU used by each process of a section, and by the whole machine, from /proc; what bound it."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench.worker import cpu_seconds

_TICKS = os.sysconf("SC_CLK_TCK")
# Processes that do their work on one thread (an asyncio loop): one core is their ceiling.
ONE_THREAD = frozenset({"bench client", "api", "worker", "wrk"})
SATURATED = 0.9  # share of the machine's cores busy, from which the machine is the bound
BUSY_THREAD = 0.85  # cores, from which a one-thread process is taken as its own bound


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: float  # monotonic seconds
    cpu: dict[str, float]  # CPU seconds of each named process so far
    machine: float  # busy CPU seconds of the whole machine so far


@dataclass(frozen=True, slots=True)
class Usage:
    seconds: float
    cores: dict[str, float]  # per named process: CPU seconds per wall second
    machine: float  # busy cores of the whole machine, every process and the kernel
    cpus: int

    @property
    def others(self) -> float:
        """Cores busy outside the named processes: other programs, the kernel's own work."""
        return max(0.0, self.machine - sum(v for v in self.cores.values() if not math.isnan(v)))

    def line(self) -> str:
        named = ", ".join(f"{k} {v:.2f}" for k, v in sorted(self.cores.items(), key=_heaviest))
        return f"cores: {named}, other {self.others:.2f}; machine {self.machine:.2f} of {self.cpus}"

    def bound(self) -> str:
        """What limited the section, judged from CPU alone."""
        found = [
            f"{name} CPU-bound ({cores:.2f} cores on one thread)"
            for name, cores in sorted(self.cores.items(), key=_heaviest)
            if name in ONE_THREAD and cores >= BUSY_THREAD
        ]
        if self.machine >= SATURATED * self.cpus:
            top = max(self.cores.items(), key=lambda kv: kv[1], default=("nothing", 0.0))
            found.append(
                f"machine saturated ({self.machine:.2f} of {self.cpus} cores busy; "
                f"most: {top[0]} {top[1]:.2f})"
            )
        return "; ".join(found) or "no CPU bound: waiting on round trips"

    def as_dict(self) -> dict[str, object]:
        return {
            "cores": {k: round(v, 2) for k, v in self.cores.items()},
            "other_cores": round(self.others, 2),
            "machine_cores": round(self.machine, 2),
            "bound": self.bound(),
        }


def _heaviest(item: tuple[str, float]) -> float:
    return -item[1]


def snapshot(pids: dict[str, int | None]) -> Snapshot:
    return Snapshot(
        time.monotonic(), {name: cpu_seconds(pid) for name, pid in pids.items()}, machine_busy()
    )


def usage(before: Snapshot, after: Snapshot, cpus: int | None = None) -> Usage:
    seconds = max(after.at - before.at, 1e-9)
    cores = {name: (after.cpu[name] - before.cpu[name]) / seconds for name in before.cpu}
    machine = (after.machine - before.machine) / seconds
    return Usage(seconds, cores, machine, cpus or os.cpu_count() or 1)


def combined(parts: list[Usage]) -> Usage:
    """The usage of several windows as one: each figure weighted by its window's seconds."""
    seconds = sum(u.seconds for u in parts)
    names = {name for u in parts for name in u.cores}
    cores = {n: sum(u.cores.get(n, 0.0) * u.seconds for u in parts) / seconds for n in names}
    machine = sum(u.machine * u.seconds for u in parts) / seconds
    return Usage(seconds, cores, machine, parts[0].cpus)


def machine_busy(stat: str | None = None) -> float:
    """Busy CPU seconds of every core since boot: all of /proc/stat's `cpu` line but idle and
    iowait (guest time is already counted in user)."""
    text = stat if stat is not None else Path("/proc/stat").read_text()
    fields = [int(x) for x in text.splitlines()[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / _TICKS
