"""The benchmark's figures: a table, a chart (PNG) and one JSON line."""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.bench.api_figures import ApiFigures
from tests.bench.db_ceiling import Writes
from tests.bench.openloop import Latencies
from tests.bench.watch_figures import WatchFigures


@dataclass(slots=True)
class Result:
    run: str
    commands: int
    accounts: int
    seed: int
    batch_max_records: int
    kafka_ceiling_per_s: float = math.nan
    db_ceiling_per_s: float = math.nan
    db_writes: Writes | None = None
    naive_per_s: float | None = None
    naive_commands: int = 0
    tally_per_s: float = math.nan
    tally_seconds: float = math.nan
    tally_records_in: int = 0  # commands + transfer legs the worker consumed
    cpu_s_per_1000: float = math.nan
    server_cpu_s_per_1000: dict[str, float] = field(default_factory=dict)
    ceiling_server_cpu_s_per_1000: float = math.nan  # the database's, for the same writes
    peak_rss_mib: float = math.nan
    latencies: Latencies | None = None
    mongo_seconds: dict[str, float] = field(default_factory=dict)
    drain_metrics: dict[str, float] = field(default_factory=dict)
    drain_batches: dict[str, float] = field(default_factory=dict)
    open_loop_batches: dict[str, float] = field(default_factory=dict)
    ceiling_seconds: dict[str, float] = field(default_factory=dict)
    batches: int = 0
    worker_env: dict[str, str] = field(default_factory=dict)
    worker_source: str | None = None
    load_average: list[float] = field(default_factory=list)  # before, after Tally's runs
    commit: str = ""
    api: ApiFigures | None = None
    api_error: str | None = None
    watch: WatchFigures | None = None
    watch_error: str | None = None

    @property
    def ceiling(self) -> float:
        return min(self.kafka_ceiling_per_s, self.db_ceiling_per_s)

    def line(self) -> dict[str, Any]:
        lat = self.latencies
        naive = self.naive_per_s
        return {
            "tally_cmds_per_s": round(self.tally_per_s, 1),
            "kafka_ceiling_per_s": round(self.kafka_ceiling_per_s, 1),
            "db_ceiling_per_s": round(self.db_ceiling_per_s, 1),
            "naive_cmds_per_s": round(naive, 1) if naive is not None else None,
            "ratio_vs_ceiling": round(self.tally_per_s / self.ceiling, 3),
            "ratio_vs_naive": round(self.tally_per_s / naive, 2) if naive else None,
            "p50_ms": round(lat.percentile(50), 1) if lat else None,
            "p99_ms": round(lat.percentile(99), 1) if lat else None,
            "p50_transfer_ms": round(lat.percentile(50, True), 1) if lat else None,
            "p99_transfer_ms": round(lat.percentile(99, True), 1) if lat else None,
            "open_loop_offered_per_s": round(lat.offered_per_s, 1) if lat else None,
            "open_loop_commands": lat.sent if lat else 0,
            "cpu_s_per_1000_cmds": round(self.cpu_s_per_1000, 3),
            "server_cpu_s_per_1000_cmds": {
                k: round(v, 3) for k, v in self.server_cpu_s_per_1000.items()
            },
            "ceiling_server_cpu_s_per_1000_cmds": round(self.ceiling_server_cpu_s_per_1000, 3),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "commands": self.commands,
            "accounts": self.accounts,
            "naive_commands": self.naive_commands,
            "db_writes": asdict(self.db_writes) if self.db_writes else None,
            "batches": self.batches,
            "batch_max_records": self.batch_max_records,
            "seed": self.seed,
            "run": self.run,
            "open_loop_batches": {k: round(v, 1) for k, v in self.open_loop_batches.items()},
            "drain_batches": {k: round(v, 1) for k, v in self.drain_batches.items()},
            "worker_env": self.worker_env,
            "worker_source": self.worker_source,
            "load_average": self.load_average,
            "commit": self.commit,
            "api": self.api.as_dict() if self.api else None,
            "api_error": self.api_error,
            "watch": self.watch.as_dict() if self.watch else None,
            "watch_error": self.watch_error,
        }


def table(r: Result) -> str:
    lat = r.latencies
    naive = (
        f"{r.naive_per_s:10.1f}  one at a time; sample of {r.naive_commands} commands, per second"
        if r.naive_per_s
        else "   skipped"
    )
    writes = r.db_writes.total if r.db_writes else 0
    rows = [
        ("Kafka ceiling", f"{r.kafka_ceiling_per_s:10.1f}  getmany → produce → commit, no work"),
        (
            "database ceiling",
            f"{r.db_ceiling_per_s:10.1f}  Tally's {writes} writes, bulk by _id, no reads",
        ),
        ("naive loop", naive),
        (
            "Tally (tally worker)",
            f"{r.tally_per_s:10.1f}  {r.commands} commands ({r.tally_records_in} records) "
            f"in {r.tally_seconds:.1f}s",
        ),
    ]
    out = [f"{'':<22}{'commands/s':>10}", *(f"{name:<22}{text}" for name, text in rows), ""]
    out.append(f"Tally ÷ min(ceilings)   {r.tally_per_s / r.ceiling:8.3f}   (target ≥ 0.5)")
    if r.naive_per_s:
        out.append(f"Tally ÷ naive           {r.tally_per_s / r.naive_per_s:8.2f}   (target ≥ 10)")
    if lat:
        out.append(
            f"open loop at {lat.offered_per_s:.0f}/s ({lat.sent} commands, sent at "
            f"{lat.achieved_per_s:.0f}/s): p50 {lat.percentile(50):.1f} ms, "
            f"p99 {lat.percentile(99):.1f} ms   (target p99 ≤ 250 ms)"
        )
        out.append(
            f"  transfers (debit, then credit on the destination's partition): "
            f"p50 {lat.percentile(50, True):.1f} ms, p99 {lat.percentile(99, True):.1f} ms"
        )
        b = r.open_loop_batches
        if b.get("batches"):
            waited = b.get("mean_end_to_end_ms", 0) - b.get("mean_processing_ms", 0)
            out.append(
                f"  {b['batches']:.0f} batches of {b['mean_records']:.0f} records on average, "
                f"{b['mean_mongo_ms']:.0f} ms of MongoDB calls each (summed, some run together); "
                f"on average {waited:.0f} ms from record to fetch, "
                f"{b.get('mean_processing_ms', 0):.0f} ms from fetch to outcome; "
                f"{b.get('account_updates_per_record', 0):.2f} account updates per record"
            )
            ops = [
                (k.removeprefix("mongo_ms_"), v) for k, v in b.items() if k.startswith("mongo_ms_")
            ]
            if ops:
                out.append("  MongoDB ms per batch: " + ", ".join(f"{k} {v:.1f}" for k, v in ops))
            stages = [
                (k.removeprefix("stage_ms_"), v) for k, v in b.items() if k.startswith("stage_ms_")
            ]
            if stages:
                out.append("  stage ms per batch: " + ", ".join(f"{k} {v:.1f}" for k, v in stages))
    d = r.drain_batches
    if d.get("batches"):
        drain_stages = ", ".join(
            f"{k.removeprefix('stage_ms_')} {v:.0f}"
            for k, v in d.items()
            if k.startswith("stage_ms_")
        )
        out.append(
            f"drain: {d['batches']:.0f} batches of {d['mean_records']:.0f} records, "
            f"{d.get('account_updates_per_record', 0):.2f} account updates per record; "
            f"stage ms per batch: {drain_stages}"
        )
    out.append(
        f"worker CPU per 1,000 commands {r.cpu_s_per_1000:.3f} s; peak RSS {r.peak_rss_mib:.0f} MiB"
    )
    if r.load_average:
        loads = " -> ".join(f"{x:.1f}" for x in r.load_average)
        out.append(
            f"machine load (1-min average, {os.cpu_count()} cores), before the run -> after "
            f"Tally's runs: {loads}; code at {r.commit}"
        )
    if r.server_cpu_s_per_1000:
        servers = ", ".join(f"{k} {v:.3f} s" for k, v in r.server_cpu_s_per_1000.items())
        out.append(f"server CPU per 1,000 commands during the drain: {servers}")
    if not math.isnan(r.ceiling_server_cpu_s_per_1000):
        out.append(
            "database CPU per 1,000 commands for the same writes alone (database ceiling): "
            f"{r.ceiling_server_cpu_s_per_1000:.3f} s"
        )
    if r.mongo_seconds:
        out.append(f"worker time in MongoDB calls during the drain: {_spent(r.mongo_seconds)}")
    if r.ceiling_seconds:
        out.append(f"database ceiling time per collection: {_spent(r.ceiling_seconds)}")
    if r.api:
        out.extend(["", *r.api.lines()])
    elif r.api_error:
        out.extend(["", f"API section failed: {r.api_error}"])
    if r.watch:
        out.extend(["", *r.watch.lines()])
    elif r.watch_error:
        out.extend(["", f"watch section failed: {r.watch_error}"])
    return "\n".join(out)


def _spent(seconds: dict[str, float]) -> str:
    ranked = sorted(seconds.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v:.1f}s" for k, v in ranked if v >= 0.05)


def chart(r: Result, path: Path, docs_copy: Path | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, cdf) = plt.subplots(1, 2, figsize=(11, 4.2))
    naive = (
        f"naive loop\n({r.naive_commands:,} sample)" if r.naive_per_s else "naive loop\n(skipped)"
    )
    names = ["Kafka\nceiling", "database\nceiling", "Tally", naive]
    values = [r.kafka_ceiling_per_s, r.db_ceiling_per_s, r.tally_per_s, r.naive_per_s or 0.0]
    colors = ["#9aa5b1", "#9aa5b1", "#2f6fdf", "#d9822b"]
    drawn = bars.bar(names, values, color=colors)
    bars.bar_label(drawn, labels=[f"{v:,.0f}" for v in values])
    bars.set_yscale("log")
    bars.set_ylabel("commands/s (log scale)")
    bars.set_title(f"Throughput, {r.commands:,} commands over {r.accounts:,} accounts")
    lat = r.latencies
    if lat and lat.millis:
        ys = [(i + 1) / len(lat.millis) for i in range(len(lat.millis))]
        cdf.plot(lat.millis, ys, color="#2f6fdf")
        for p in (50, 99):
            cdf.axvline(lat.percentile(p), linestyle="--", color="#666")
            cdf.text(lat.percentile(p), 0.05 + p / 200, f" p{p} {lat.percentile(p):.0f} ms")
        cdf.axvline(250, color="#c23030", linewidth=1)
        cdf.set_xlabel("end-to-end latency, ms (command record → outcome record)")
        cdf.set_ylabel("share of commands")
        share = lat.offered_per_s / r.tally_per_s
        cdf.set_title(
            f"Open loop at {lat.offered_per_s:.0f} commands/s ({share:.0%} of Tally's max)"
        )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    if docs_copy is not None:
        shutil.copyfile(path, docs_copy)


def json_line(r: Result) -> str:
    return orjson.dumps(r.line()).decode()
