"""The knobs of one chaos run, and its command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

SCENARIOS = ("none", "kill", "group", "broker", "mongo", "sigterm")
NEEDS_PRIVATE_INFRA = frozenset({"broker", "mongo"})


@dataclass(frozen=True, slots=True)
class Config:
    commands: int = 500
    seed: int = 1
    scenarios: frozenset[str] = field(default_factory=lambda: frozenset({"none"}))
    workers: int = 1  # at the start; `group` varies it between 1 and 3
    rate: float = 250.0  # records per second the producer offers
    accounts: int = 120
    kills: int = 10
    sigterms: int = 3
    group_changes: int = 8
    outage_s: float = 12.0
    partitions: int = 6
    shutdown_timeout: float = 20.0
    session_timeout_ms: int = 6000
    drain_timeout: float = 600.0
    duplicate_rate: float = 0.05
    poison_rate: float = 0.01
    private_infra: bool = False
    kafka: str = "127.0.0.1:9092"  # the shared pair, unless private_infra
    mongo: str = "mongodb://127.0.0.1:27017"
    keep: bool = False

    @property
    def needs_private_infra(self) -> bool:
        return self.private_infra or bool(self.scenarios & NEEDS_PRIVATE_INFRA)


DEFAULTS = Config()


def parse(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m tests.chaos",
        description="Prove contract §8 under crashes, restarts, duplicates and poison.",
    )
    p.add_argument("--commands", type=int, default=DEFAULTS.commands, help="distinct commands")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument(
        "--scenario",
        action="append",
        choices=[*SCENARIOS, "all"],
        help="fault kind(s) to inject together; repeat the flag; `all` = every kind",
    )
    p.add_argument("--workers", type=int, default=None, help="workers at the start")
    p.add_argument("--rate", type=float, default=DEFAULTS.rate, help="records/s offered")
    p.add_argument("--accounts", type=int, default=DEFAULTS.accounts)
    p.add_argument("--kills", type=int, default=DEFAULTS.kills, help="kill -9 count (kill)")
    p.add_argument("--sigterms", type=int, default=DEFAULTS.sigterms, help="SIGTERM count")
    p.add_argument("--group-changes", type=int, default=DEFAULTS.group_changes)
    p.add_argument("--outage", type=float, default=DEFAULTS.outage_s, help="seconds stopped")
    p.add_argument("--partitions", type=int, default=DEFAULTS.partitions)
    p.add_argument("--shutdown-timeout", type=float, default=DEFAULTS.shutdown_timeout)
    p.add_argument("--drain-timeout", type=float, default=DEFAULTS.drain_timeout)
    p.add_argument("--private-infra", action="store_true", help="own Kafka + FerretDB pair")
    p.add_argument("--kafka", default=DEFAULTS.kafka, help="bootstrap of the shared broker")
    p.add_argument("--mongo", default=DEFAULTS.mongo, help="URI of the shared MongoDB")
    p.add_argument("--keep", action="store_true", help="keep topics, database and logs")
    a = p.parse_args(argv)
    chosen = set(a.scenario or ["none"])
    if "all" in chosen:
        chosen = set(SCENARIOS) - {"none"}
    if len(chosen) > 1:
        chosen.discard("none")
    workers = a.workers or (2 if "group" in chosen else 1)
    return Config(
        commands=a.commands,
        seed=a.seed,
        scenarios=frozenset(chosen),
        workers=workers,
        rate=a.rate,
        accounts=a.accounts,
        kills=a.kills,
        sigterms=a.sigterms,
        group_changes=a.group_changes,
        outage_s=a.outage,
        partitions=a.partitions,
        shutdown_timeout=a.shutdown_timeout,
        drain_timeout=a.drain_timeout,
        private_infra=a.private_infra,
        kafka=a.kafka,
        mongo=a.mongo,
        keep=a.keep,
    )
