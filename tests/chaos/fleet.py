"""Tally workers as OS processes: start, kill -9, SIGTERM, and their /readyz."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
TALLY = ROOT / ".venv" / "bin" / "tally"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(slots=True)
class Worker:
    name: str
    port: int
    process: asyncio.subprocess.Process
    log: Path
    started: float = field(default_factory=time.monotonic)
    leaving: bool = False  # being stopped: no other fault picks it

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    @property
    def serving(self) -> bool:
        """Logged `http listening`: its SIGTERM handler is installed by then."""
        try:
            return b"http listening" in self.log.read_bytes()
        except FileNotFoundError:
            return False


@dataclass(slots=True)
class Stop:
    """How a SIGTERM'd worker ended."""

    worker: str
    code: int | None
    seconds: float


class Fleet:
    """The worker processes of one run; every process it starts, it also ends."""

    def __init__(self, env: dict[str, str], run_dir: Path) -> None:
        self._env = env
        self._dir = run_dir
        self._n = 0
        self.workers: list[Worker] = []
        self.kills = 0
        self.starts = 0
        self.stops: list[Stop] = []
        self.lock = asyncio.Lock()

    @property
    def members(self) -> list[Worker]:
        return [w for w in self.workers if w.alive and not w.leaving]

    async def start(self) -> Worker:
        self._n += 1
        name = f"w{self._n:02d}"
        port = free_port()
        log = self._dir / f"{name}.log"
        env = {**os.environ, **self._env, "TALLY_HTTP_PORT": str(port)}
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                str(TALLY),
                "worker",
                env=env,
                stdout=out,
                stderr=out,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C reaches the harness only
            )
        worker = Worker(name, port, process, log)
        self.workers.append(worker)
        self.starts += 1
        return worker

    async def kill9(self, worker: Worker) -> None:
        worker.leaving = True
        with contextlib.suppress(ProcessLookupError):
            worker.process.send_signal(signal.SIGKILL)
        await worker.process.wait()
        self.kills += 1

    async def sigterm(self, worker: Worker, limit: float) -> Stop:
        """SIGTERM and wait; a worker still running after `limit` + 30 s is killed."""
        worker.leaving = True
        # A SIGTERM in the first second, while Python still imports, ends the process
        # with -15 (a known start-up window, docs/reliability.md): signal it once it serves.
        for _ in range(300):
            if worker.serving or not worker.alive:
                break
            await asyncio.sleep(0.1)
        began = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            worker.process.send_signal(signal.SIGTERM)
        try:
            code: int | None = await asyncio.wait_for(worker.process.wait(), limit + 30)
        except TimeoutError:
            code = None
            await self.kill9(worker)
        stop = Stop(worker.name, code, time.monotonic() - began)
        self.stops.append(stop)
        return stop

    async def stop_all(self, limit: float) -> list[Stop]:
        return list(await asyncio.gather(*(self.sigterm(w, limit) for w in self.members)))

    async def kill_all(self) -> None:
        for w in self.workers:
            if w.alive:
                await self.kill9(w)


async def readyz(session: aiohttp.ClientSession, worker: Worker) -> int | None:
    """The HTTP status of /readyz, or None when nothing answers."""
    try:
        url = f"http://127.0.0.1:{worker.port}/readyz"
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=1.5)) as response:
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return None


async def wait_ready_state(
    session: aiohttp.ClientSession, fleet: Fleet, status: int, timeout: float
) -> float | None:
    """Seconds until every member's /readyz answers `status`; None if it never does."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        answers = await asyncio.gather(*(readyz(session, w) for w in fleet.members))
        if answers and all(a == status for a in answers):
            return time.monotonic() - began
        await asyncio.sleep(0.25)
    return None
