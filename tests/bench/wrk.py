"""HTTP reads driven by wrk (a C load generator): N connections back to back, as closed_loop,
for a few hundredths of a core, so the API under test keeps the machine's CPU to itself."""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("reads.lua")
ERRORS = ("connect", "read", "write", "status", "timeout")


@dataclass(frozen=True, slots=True)
class WrkRun:
    """What one wrk run counted: requests, their p50 and p99, errors, and wrk's own CPU."""

    seconds: float
    calls: int
    p50_ms: float
    p99_ms: float
    errors: int = 0
    first_error: str = ""
    cpu_seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else float("nan")

    def p(self, q: float) -> float:
        if q not in (50, 99):
            raise ValueError(f"wrk reports p50 and p99 here, not p{q}")
        return self.p50_ms if q == 50 else self.p99_ms

    @classmethod
    def merged(cls, parts: list[WrkRun]) -> WrkRun:
        """One measurement of several runs: their requests, seconds, errors and CPU summed;
        wrk gives percentiles, not latencies, so p50 is the runs' median p50 and p99 their
        highest p99 (never lower than the true one)."""
        p50s = sorted(p.p50_ms for p in parts)
        return cls(
            sum(p.seconds for p in parts),
            sum(p.calls for p in parts),
            p50s[len(p50s) // 2],
            max(p.p99_ms for p in parts),
            sum(p.errors for p in parts),
            ", ".join(p.first_error for p in parts if p.first_error),
            sum(p.cpu_seconds for p in parts),
        )

    def as_dict(self) -> dict[str, float | int | str]:
        found: dict[str, float | int | str] = {
            "per_s": round(self.per_s, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "calls": self.calls,
            "errors": self.errors,
        }
        if self.first_error:
            found["first_error"] = self.first_error
        return found


@dataclass(frozen=True, slots=True)
class Wrk:
    """wrk, aimed at one server."""

    binary: str
    url: str

    @classmethod
    def at(cls, url: str) -> Wrk | None:
        """wrk for `url`, installed from Debian by deploy/local/tools.sh if missing (as root);
        None if it cannot be had."""
        subprocess.run(["bash", str(ROOT / "deploy/local/tools.sh"), "wrk"], check=False)
        found = shutil.which("wrk")
        return cls(found, url) if found else None

    def version(self) -> str:
        found = subprocess.run(
            [self.binary, "--version"], capture_output=True, text=True, check=False
        )
        words = (found.stdout + found.stderr).split()
        return f"wrk {words[1]}" if len(words) > 1 else "wrk"

    async def closed_loop(
        self,
        paths: list[str],
        authorization: str,
        clients: int,
        seconds: float,
        seed: int = 1,
        warmup: float = 1.0,
    ) -> WrkRun:
        """`clients` connections, each sending its next GET (a path of `paths` at random) as
        soon as its answer came, for `seconds` after a `warmup` run whose figures are dropped."""
        with tempfile.NamedTemporaryFile("w", suffix=".paths") as listed:
            listed.write("".join(f"{p}\n" for p in paths))
            listed.flush()
            if warmup > 0:
                await self._run(listed.name, authorization, clients, warmup, seed)
            return await self._run(listed.name, authorization, clients, seconds, seed)

    async def _run(
        self, paths: str, authorization: str, clients: int, seconds: float, seed: int
    ) -> WrkRun:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        process = await asyncio.create_subprocess_exec(
            *(self.binary, "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s"),
            *("--timeout", "30s", "-s", str(SCRIPT), self.url, "--", paths, str(seed)),
            env=os.environ | {"WRK_AUTHORIZATION": authorization},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        lines = out.decode(errors="replace").strip().splitlines()
        if process.returncode != 0 or not lines or not lines[-1].startswith("{"):
            raise RuntimeError(f"wrk failed ({process.returncode}): {(out + err)[-300:]!r}")
        return parsed(orjson.loads(lines[-1]), cpu)


def parsed(counted: dict[str, int], cpu_seconds: float = 0.0) -> WrkRun:
    """A WrkRun from the JSON line reads.lua prints."""
    errors = {k: counted[k] for k in ERRORS if counted[k]}
    return WrkRun(
        counted["duration_us"] / 1e6,
        counted["requests"],
        counted["p50_us"] / 1000,
        counted["p99_us"] / 1000,
        sum(errors.values()),
        ", ".join(f"{n} {kind}" for kind, n in errors.items()),
        cpu_seconds,
    )
