"""The faults: kill -9, group churn, broker and database outages, SIGTERM under load."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime
from typing import TYPE_CHECKING

import aiohttp
import orjson

from tests.chaos.fleet import Fleet, Stop, wait_ready_state

if TYPE_CHECKING:
    from tests.chaos.runner import Run

READY_TIMEOUT_S = 60.0
ROUND_GAP_S = 1.5  # assignments closer than this belong to one rebalance


async def inject(r: Run) -> None:
    """Every selected fault kind at once, each on its own random schedule."""
    scenarios = r.cfg.scenarios
    loops = []
    if "kill" in scenarios:
        loops.append(kill_loop(r))
    if "group" in scenarios:
        loops.append(group_loop(r))
    if "broker" in scenarios:
        loops.append(outage(r, "kafka", at=0.3))
    if "mongo" in scenarios:
        loops.append(outage(r, "mongo", at=0.6))
    if "sigterm" in scenarios:
        loops.append(sigterm_loop(r))
    await asyncio.gather(*loops)


async def kill_loop(r: Run) -> None:
    """kill -9 a worker at a random instant, restart it at once; wait for recovery; repeat."""
    for _ in range(r.cfg.kills):
        await asyncio.sleep(r.rng.uniform(0.2, 2 * r.gap(r.cfg.kills)))
        async with r.fleet.lock:
            members = r.fleet.members
            if not members:
                continue
            await r.fleet.kill9(r.rng.choice(members))
            await r.fleet.start()
            r.membership_changes += 2
        await r.probe("kill")


async def group_loop(r: Run) -> None:
    """Grow and shrink the group between 1 and 3 members while traffic flows."""
    for _ in range(r.cfg.group_changes):
        await asyncio.sleep(r.rng.uniform(1.0, 2 * r.gap(r.cfg.group_changes)))
        async with r.fleet.lock:
            members = r.fleet.members
            grow = len(members) < 2 or (len(members) < 3 and r.rng.random() < 0.5)
            if grow:
                await r.fleet.start()
                victim = None
            else:
                victim = r.rng.choice(members)
                victim.leaving = True
        if victim is not None and r.rng.random() < 0.5:
            await r.fleet.kill9(victim)
        elif victim is not None:
            check_stop(r, await r.fleet.sigterm(victim, r.cfg.shutdown_timeout))
        r.membership_changes += 1
        await r.probe("group")


async def sigterm_loop(r: Run) -> None:
    """SIGTERM a worker under load: exit 0 within the shutdown timeout; then restart it."""
    for _ in range(r.cfg.sigterms):
        await asyncio.sleep(r.rng.uniform(2.0, 2 * r.gap(r.cfg.sigterms)))
        async with r.fleet.lock:
            members = r.fleet.members
            if not members:
                continue
            victim = r.rng.choice(members)
            victim.leaving = True
        check_stop(r, await r.fleet.sigterm(victim, r.cfg.shutdown_timeout))
        async with r.fleet.lock:
            await r.fleet.start()
        r.membership_changes += 2
        await r.probe("sigterm")


def check_stop(r: Run, stop: Stop) -> None:
    limit = r.cfg.shutdown_timeout
    if stop.code != 0:
        r.problems.append(f"SIGTERM: worker {stop.worker} exited {stop.code} (want 0)")
    elif stop.seconds > limit:
        r.problems.append(f"SIGTERM: worker {stop.worker} took {stop.seconds:.1f}s > {limit}s")


async def outage(r: Run, service: str, at: float) -> None:
    """Stop `service` for cfg.outage_s once `at` of the traffic is sent; time /readyz from
    the moment its stop begins (to 503) and from the moment its start begins (to 200)."""
    await r.sent_at_least(at)
    async with aiohttp.ClientSession() as session:
        began = time.monotonic()
        unready = asyncio.create_task(wait_ready_state(session, r.fleet, 503, r.cfg.outage_s + 60))
        await r.infra.stop(service)
        gone = time.monotonic()
        await asyncio.sleep(r.cfg.outage_s)
        to_503 = await unready
        restart = time.monotonic()
        ready = asyncio.create_task(wait_ready_state(session, r.fleet, 200, READY_TIMEOUT_S * 2))
        await r.infra.start(service)
        back = time.monotonic()
        to_200 = await ready
    r.readiness.append(
        {
            "service": service,
            "stop_s": round(gone - began, 2),  # infra.sh stop: until the process exited
            "to_503_s": None if to_503 is None else round(to_503, 2),  # from the stop's start
            "down_s": round(restart - gone, 1),
            "start_s": round(back - restart, 2),  # infra.sh start: until it answers
            "to_200_s": None if to_200 is None else round(to_200, 2),  # from the start's start
        }
    )
    if to_503 is None:
        r.problems.append(f"/readyz stayed 200 while {service} was down")
    if to_200 is None:
        r.problems.append(f"/readyz did not return to 200 after {service} came back")
    await r.probe(service)


def assignment_rounds(fleet: Fleet) -> int:
    """Rebalances seen in the workers' logs: rounds of `partitions assigned`, after the first."""
    stamps: list[float] = []
    for worker in fleet.workers:
        for line in worker.log.read_bytes().splitlines():
            if b"partitions assigned" not in line:
                continue
            try:
                stamps.append(datetime.fromisoformat(orjson.loads(line)["ts"]).timestamp())
            except (ValueError, KeyError):
                continue
    stamps.sort()
    # Count the gaps between rounds: the first round (the start) is not a rebalance.
    return sum(1 for a, b in itertools.pairwise(stamps) if b - a > ROUND_GAP_S)
