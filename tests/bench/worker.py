"""`tally worker` (or `tally api`) as a subprocess: start, readiness, CPU and peak RSS, stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

TALLY = Path(".venv/bin/tally")
PY_SPY = Path(".venv/bin/py-spy")
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcSample:
    at: float  # wall clock, seconds
    cpu_seconds: float  # user + system of the worker process


class WorkerProcess:
    def __init__(
        self, env: dict[str, str], port: int, log_path: Path, command: str = "worker"
    ) -> None:
        self._env = env
        self._port = port
        self._log_path = log_path
        self._command = command
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> None:
        log = self._log_path.open("ab")
        self._proc = subprocess.Popen(
            [str(TALLY), self._command], env=self._env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    async def wait_ready(self, timeout: float = 120.0) -> float:
        """Polls /readyz (ready = consumer in its group and MongoDB answering); returns when."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if await self._ready():
                return time.time()
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{self._command} not ready after {timeout:.0f}s; see {self._log_path}")

    async def _ready(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
        except OSError:
            return False
        try:
            writer.write(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            status = await reader.readline()
            return b" 200 " in status
        finally:
            writer.close()

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(
                f"{self._command} exited with {self._proc.returncode}; see {self._log_path}"
            )

    def sample(self) -> ProcSample:
        return ProcSample(time.time(), cpu_seconds(self.pid))

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self, timeout: float = 45.0) -> int:
        """SIGTERM, as an orchestrator would; SIGKILL only if it does not exit in time."""
        if self._proc is None or self._proc.poll() is not None:
            return self._proc.returncode if self._proc else 0
        self._proc.send_signal(signal.SIGTERM)
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self._proc.wait()


async def scrape(port: int) -> dict[str, float]:
    """The worker's /metrics as {'name{labels}': value} (Prometheus text format)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        await writer.drain()
        body = (await reader.read()).split(b"\r\n\r\n", 1)[1].decode()
    finally:
        writer.close()
    values: dict[str, float] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


class Profiler:
    """py-spy on the worker: a flame graph (SVG) and collapsed stacks (text) of CPU samples."""

    def __init__(self, pid: int, out: Path) -> None:
        base = [str(PY_SPY), "record", "--pid", str(pid), "--rate", "200", "--nonblocking"]
        self._procs = [
            subprocess.Popen(
                [*base, "--format", fmt, "-o", str(out / name)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for fmt, name in (("flamegraph", "profile.svg"), ("raw", "profile.txt"))
        ]

    def stop(self) -> None:
        for proc in self._procs:
            proc.send_signal(signal.SIGINT)
        for proc in self._procs:
            proc.wait(60)


def listener_pid(port: int) -> int | None:
    """The pid of the process listening on 127.0.0.1:`port` (to read its CPU), if visible."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(proc.name)
    return None


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far, from /proc/<pid>/stat."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    # Fields after "(comm)": state is index 0, so utime (14th field) is index 11.
    return (int(fields[11]) + int(fields[12])) / _TICKS
