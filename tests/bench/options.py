"""Command-line options of `python -m tests.bench` (`make bench BENCH_ARGS=...`)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from streams.settings import Settings


@dataclass(frozen=True, slots=True)
class Options:
    commands: int
    accounts: int
    naive_commands: int
    skip_naive: bool
    seed: int
    open_seconds: float
    open_load: float
    open_rate: float | None
    worker_env: dict[str, str]
    bootstrap: str
    mongo_uri: str
    keep: bool
    docs_chart: bool
    profile: bool
    worker_source: str | None
    skip_api: bool = False
    api_clients: int = 32
    api_seconds: float = 15.0
    api_rate: float = 50.0
    api_reply_seconds: float = 20.0
    skip_watch: bool = False
    watch_commands: int = 20_000

    @property
    def batch_max_records(self) -> int:
        default = Settings.model_fields["batch_max_records"].default
        return int(self.worker_env.get("TALLY_BATCH_MAX_RECORDS", default))


def parse(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="Tally against the Kafka and database ceilings and a naive loop.",
    )
    p.add_argument("--commands", type=int, default=50_000, help="timed commands (50,000)")
    p.add_argument("--accounts", type=int, default=1_000, help="accounts (1,000)")
    p.add_argument(
        "--naive-commands",
        type=int,
        default=2_000,
        help="sample the naive loop runs on, reported per second (2,000)",
    )
    p.add_argument("--skip-naive", action="store_true", help="do not run the naive loop")
    p.add_argument("--seed", type=int, default=1, help="workload seed (1)")
    p.add_argument(
        "--open-seconds", type=float, default=30.0, help="open-loop duration, seconds (30)"
    )
    p.add_argument(
        "--open-load", type=float, default=0.5, help="open-loop rate as a share of Tally's max"
    )
    p.add_argument(
        "--open-rate",
        type=float,
        help="open-loop rate in commands/s, instead of --open-load (to compare at equal load)",
    )
    p.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="TALLY_X=VALUE",
        help="extra worker setting, repeatable (e.g. TALLY_BATCH_MAX_RECORDS=1000)",
    )
    p.add_argument("--keep", action="store_true", help="keep the run's topics and databases")
    p.add_argument("--no-docs-chart", action="store_true", help="do not copy to docs/bench.png")
    p.add_argument(
        "--profile", action="store_true", help="py-spy the worker during the drain (.local/bench)"
    )
    p.add_argument(
        "--worker-source",
        metavar="DIR",
        help="run the worker from another checkout (A/B: `git archive REV | tar -x -C DIR`)",
    )
    _api_options(p)
    p.add_argument("--skip-watch", action="store_true", help="do not measure tally watch")
    p.add_argument(
        "--watch-commands",
        type=int,
        default=20_000,
        help="commands the worker drains with tally watch beside it (20,000)",
    )
    a = p.parse_args(argv)
    extra = dict(pair.split("=", 1) for pair in a.worker_env)
    if bad := [k for k in extra if not k.startswith("TALLY_")]:
        p.error(f"--worker-env names must start with TALLY_: {bad}")
    return Options(
        commands=a.commands,
        accounts=a.accounts,
        naive_commands=min(a.naive_commands, a.commands),
        skip_naive=a.skip_naive,
        seed=a.seed,
        open_seconds=a.open_seconds,
        open_load=a.open_load,
        open_rate=a.open_rate,
        worker_env=extra,
        bootstrap=os.environ.get("TALLY_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        mongo_uri=os.environ.get("TALLY_MONGO_URI", "mongodb://127.0.0.1:27017"),
        keep=a.keep,
        docs_chart=not a.no_docs_chart,
        profile=a.profile,
        worker_source=a.worker_source,
        skip_api=a.skip_api,
        api_clients=a.api_clients,
        api_seconds=a.api_seconds,
        api_rate=a.api_rate,
        api_reply_seconds=a.api_reply_seconds,
        skip_watch=a.skip_watch,
        watch_commands=a.watch_commands,
    )


def _api_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-api", action="store_true", help="do not measure tally api")
    p.add_argument(
        "--api-clients", type=int, default=32, help="concurrent clients of the API reads (32)"
    )
    p.add_argument(
        "--api-seconds", type=float, default=15.0, help="duration of each API read, seconds (15)"
    )
    p.add_argument(
        "--api-rate",
        type=float,
        default=50.0,
        help="request-reply rate, and the worker's open loop's beside it, per second (50)",
    )
    p.add_argument(
        "--api-reply-seconds",
        type=float,
        default=20.0,
        help="duration of the request-reply and of the worker's open loop, seconds (20)",
    )
