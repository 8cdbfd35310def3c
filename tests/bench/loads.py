"""Two shapes of load on any async call: N clients back to back (closed), or a fixed rate (open)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

T = TypeVar("T")
CALLS_PER_CLIENT = 4  # fewest calls each client of a closed loop should finish in its window


def percentile(ordered: list[float], p: float) -> float:
    """The nearest-rank percentile of sorted values (as openloop.Latencies); NaN if none."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Measured(Protocol):
    """What a closed-loop read reports, whoever drove it (closed_loop here, or wrk)."""

    @property
    def per_s(self) -> float: ...

    @property
    def calls(self) -> int: ...

    @property
    def errors(self) -> int: ...

    @property
    def first_error(self) -> str: ...

    def p(self, q: float) -> float: ...

    def as_dict(self) -> dict[str, float | int | str]: ...


@dataclass(frozen=True, slots=True)
class Timings:
    """Calls that completed in the measured window: how many per second, how long each."""

    seconds: float
    millis: list[float]  # sorted
    errors: int = 0
    first_error: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return len(self.millis) / self.seconds if self.seconds > 0 else float("nan")

    @property
    def calls(self) -> int:
        return len(self.millis)

    def p(self, q: float) -> float:
        return percentile(self.millis, q)

    @classmethod
    def merged(cls, parts: list[Timings]) -> Timings:
        """One measurement of several windows: their calls and seconds together."""
        first = next((p.first_error for p in parts if p.first_error), "")
        return cls(
            sum(p.seconds for p in parts),
            sorted(ms for p in parts for ms in p.millis),
            sum(p.errors for p in parts),
            first,
        )

    def as_dict(self) -> dict[str, float | int | str]:
        found: dict[str, float | int | str] = {
            "per_s": round(self.per_s, 1),
            "p50_ms": round(self.p(50), 2),
            "p99_ms": round(self.p(99), 2),
            "calls": len(self.millis),
            "errors": self.errors,
        }
        if self.first_error:
            found["first_error"] = self.first_error
        return found | {k: round(v, 2) for k, v in self.extra.items()}


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """No full collection over this process's many objects (the pre-built records, the drain's
    outcomes) in the middle of a measurement: frozen, they are not walked (as openloop.run)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def closed_loop(
    clients: int,
    seconds: float,
    call: Callable[[random.Random], Awaitable[object]],
    seed: int = 1,
    warmup: float = 1.0,
) -> Timings:
    """`clients` tasks, each calling again as soon as its call returns, for warmup + seconds.
    Counted: the calls that ended within the window (after the warm-up); a call still running
    at its end is waited for, not counted."""
    begin = time.perf_counter() + warmup
    end = begin + seconds
    millis: list[float] = []
    errors: list[str] = []

    async def client(rng: random.Random) -> None:
        while (started := time.perf_counter()) < end:
            try:
                await call(rng)
            except Exception as exc:
                errors.append(repr(exc)[:200])
                continue
            finished = time.perf_counter()
            if begin <= finished <= end:
                millis.append((finished - started) * 1000)

    await asyncio.gather(*(client(random.Random(seed * 1_000 + i)) for i in range(clients)))
    return Timings(seconds, sorted(millis), len(errors), errors[0] if errors else "")


async def alone(
    call: Callable[[random.Random], Awaitable[object]], seed: int = 1, budget: float = 2.0
) -> float:
    """Seconds one call takes with nothing else asked: the median of 5, or of what fits in
    `budget` seconds (at least one)."""
    rng, spent = random.Random(seed), list[float]()
    while len(spent) < 5 and sum(spent) < budget:
        started = time.perf_counter()
        await call(rng)
        spent.append(time.perf_counter() - started)
    return sorted(spent)[len(spent) // 2]


def fitted_clients(wanted: int, seconds: float, one_call: float, servers: int) -> int:
    """Clients for a closed loop of `seconds`: `wanted`, unless calls are so slow that each
    client would finish fewer than CALLS_PER_CLIENT of them. A server that runs `servers`
    calls at a time makes each of c clients wait about c / servers calls' time; never fewer
    clients than `servers`, so that such a server is kept busy."""
    fits = seconds * servers / (CALLS_PER_CLIENT * one_call) if one_call > 0 else wanted
    return min(wanted, max(servers, 1, int(fits)))


async def paced(items: list[T], rate: float, call: Callable[[T], Awaitable[object]]) -> Timings:
    """Each item's call started at its due time (i / rate), whatever earlier calls are doing."""
    millis: list[float] = []
    errors: list[str] = []

    async def timed(item: T) -> None:
        started = time.perf_counter()
        try:
            await call(item)
        except Exception as exc:
            errors.append(repr(exc)[:200])
            return
        millis.append((time.perf_counter() - started) * 1000)

    tasks = []
    start = time.perf_counter()
    for i, item in enumerate(items):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(item)))
    sent = time.perf_counter() - start
    await asyncio.gather(*tasks)
    return Timings(
        sent,
        sorted(millis),
        len(errors),
        errors[0] if errors else "",
        {"achieved_per_s": len(items) / sent if sent > 0 else float("nan")},
    )
