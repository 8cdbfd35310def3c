"""The API section's figures: reads against the direct PyMongo baseline, request-reply against
the worker's own end-to-end latency at the same rate; the table's lines and the JSON part."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tests.bench.loads import Measured, Timings, percentile
from tests.bench.openloop import Latencies
from tests.bench.usage import Usage

READ_TARGET = 0.5  # API reads/s ≥ this share of the same reads made directly with PyMongo
REPLY_MARGIN_MS = 50.0  # request-reply p99 ≤ the worker's end-to-end p99 at the same rate + this
# (label in the table, key in the JSON) of each closed-loop read, API first, then its baseline.
READS = {
    "account": (("GET account", "api_account"), ("PyMongo find_one", "pymongo_account")),
    "entries": (("GET entries page", "api_entries"), ("PyMongo find page", "pymongo_entries")),
}


@dataclass(slots=True)
class ApiFigures:
    clients: int
    seconds: float
    rate: float
    wait: int
    page: int  # entries asked for per page
    client: str  # what drove the API's reads, and its version
    reads: dict[str, Measured] = field(default_factory=dict)  # by JSON key of READS
    alone_ms: dict[str, float] = field(default_factory=dict)  # one call with nothing else asked
    clients_used: dict[str, int] = field(default_factory=dict)  # fewer than `clients` if slow
    entries_total: int = 0  # documents in `entries` when the reads ran
    section_seconds: float = 0.0  # wall time of the whole section, start-up included
    usage: dict[str, Usage] = field(default_factory=dict)  # by JSON key, and "request_reply"...
    page_sizes: dict[str, int] = field(default_factory=dict)  # entries one page held, by source
    request_reply: Timings | None = None
    statuses: dict[str, int] = field(default_factory=dict)  # HTTP status of each reply
    to_outcome_ms: list[float] = field(default_factory=list)  # POST sent → outcome record, sorted
    after_outcome_ms: list[float] = field(default_factory=list)  # outcome record → reply, sorted
    worker: Latencies | None = None

    def read_ratio(self, kind: str) -> float:
        (_, api), (_, direct) = READS[kind]
        if api not in self.reads or direct not in self.reads or not self.reads[direct].calls:
            return float("nan")
        return self.reads[api].per_s / self.reads[direct].per_s

    def reply_excess_ms(self) -> float:
        """Request-reply p99 less the worker's own end-to-end p99 at the same rate."""
        if self.request_reply is None or self.worker is None:
            return float("nan")
        return self.request_reply.p(99) - self.worker.percentile(99)

    def lines(self) -> list[str]:
        out = [
            f"API section ({self.section_seconds:.0f} s; tally api; {self.clients} concurrent "
            f"clients for {self.seconds:.0f} s per read in turns with its baseline, driven by "
            f"{self.client}; baseline: PyMongo AsyncMongoClient in this process)",
            f"{'':<22}{'reads/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'alone ms':>10}{'clients':>9}",
        ]
        for kind, pair in READS.items():
            for label, key in pair:
                if key in self.reads:
                    out.extend(self._read_lines(label, key))
            out.append(
                f"  API ÷ PyMongo, {kind}: {self.read_ratio(kind):.3f}   " + self._read_goal(kind)
            )
        if self.page_sizes:
            sizes = ", ".join(f"{k} {v}" for k, v in self.page_sizes.items())
            out.append(
                f"  largest page of the same accounts read both ways (limit {self.page}): {sizes}; "
                f"{self.entries_total} entries in the collection"
            )
        if fewer := [k for k, n in self.clients_used.items() if n < self.clients]:
            out.append(
                f"  fewer than {self.clients} clients for {', '.join(fewer)}: one call alone took "
                f"so long that {self.clients} clients would each finish fewer than 4 calls in "
                f"{self.seconds:.0f} s (a CPU-bound server serves them in turn)"
            )
        out.extend(self._reply_lines())
        return out

    def _read_lines(self, label: str, key: str) -> list[str]:
        t = self.reads[key]
        line = (
            f"{label:<22}{t.per_s:10.1f}{t.p(50):9.2f}{t.p(99):9.2f}"
            f"{self.alone_ms.get(key, math.nan):10.2f}{self.clients_used.get(key, 0):9d}"
        )
        if t.errors:
            line += f"   {t.errors} errors, first: {t.first_error}"
        found = [line]
        if key in self.usage:
            found.append(f"  {self.usage[key].line()}; {self.usage[key].bound()}")
        return found

    def _read_goal(self, kind: str) -> str:
        return f"(target ≥ {READ_TARGET}: {_verdict(self.read_ratio(kind) >= READ_TARGET)})"

    def _reply_lines(self) -> list[str]:
        rr, worker = self.request_reply, self.worker
        out: list[str] = []
        if rr is not None:
            statuses = ", ".join(f"{n} x {s}" for s, n in sorted(self.statuses.items()))
            out.append(
                f"request-reply at {self.rate:.0f}/s ({len(rr.millis) + rr.errors} POSTs, "
                f"Prefer: wait={self.wait}, sent at {rr.extra.get('achieved_per_s', 0):.1f}/s): "
                f"p50 {rr.p(50):.1f} ms, p99 {rr.p(99):.1f} ms; replies {statuses}"
            )
            if rr.errors:
                out.append(f"  {rr.errors} failed, first: {rr.first_error}")
            out.append(
                "  POST sent → outcome record: "
                f"p50 {percentile(self.to_outcome_ms, 50):.1f} ms, "
                f"p99 {percentile(self.to_outcome_ms, 99):.1f} ms; outcome record → reply: "
                f"p50 {percentile(self.after_outcome_ms, 50):.1f} ms, "
                f"p99 {percentile(self.after_outcome_ms, 99):.1f} ms"
            )
            out.extend(self._usage_line("request_reply"))
        if worker is not None:
            out.append(
                f"worker end to end at {worker.offered_per_s:.0f}/s ({worker.sent} deposits "
                f"through Kafka, same run): p50 {worker.percentile(50):.1f} ms, "
                f"p99 {worker.percentile(99):.1f} ms"
            )
            out.extend(self._usage_line("worker_open_loop"))
        if rr is not None and worker is not None:
            excess = self.reply_excess_ms()
            out.append(
                f"request-reply p99 - worker p99 = {excess:.1f} ms   "
                f"(target ≤ {REPLY_MARGIN_MS:.0f} ms: {_verdict(excess <= REPLY_MARGIN_MS)})"
            )
        return out

    def _usage_line(self, key: str) -> list[str]:
        used = self.usage.get(key)
        return [f"  {used.line()}; {used.bound()}"] if used else []

    def as_dict(self) -> dict[str, Any]:
        rr, worker = self.request_reply, self.worker
        return {
            "clients": self.clients,
            "seconds": self.seconds,
            "section_seconds": round(self.section_seconds, 1),
            "client": self.client,
            "reads": {
                k: t.as_dict()
                | {"alone_ms": round(self.alone_ms.get(k, math.nan), 2)}
                | {"clients": self.clients_used.get(k, 0)}
                for k, t in self.reads.items()
            },
            "entries_total": self.entries_total,
            "read_ratio": {k: round(self.read_ratio(k), 3) for k in READS},
            "page_sizes": self.page_sizes,
            "rate_per_s": self.rate,
            "request_reply": rr.as_dict() if rr else None,
            "request_reply_statuses": self.statuses,
            "to_outcome_p50_ms": round(percentile(self.to_outcome_ms, 50), 1),
            "to_outcome_p99_ms": round(percentile(self.to_outcome_ms, 99), 1),
            "after_outcome_p50_ms": round(percentile(self.after_outcome_ms, 50), 1),
            "after_outcome_p99_ms": round(percentile(self.after_outcome_ms, 99), 1),
            "worker_p50_ms": round(worker.percentile(50), 1) if worker else None,
            "worker_p99_ms": round(worker.percentile(99), 1) if worker else None,
            "reply_excess_p99_ms": round(self.reply_excess_ms(), 1),
            "usage": {k: u.as_dict() for k, u in self.usage.items()},
        }


def _verdict(met: bool) -> str:
    return "met" if met else "not met"
