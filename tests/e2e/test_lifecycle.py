"""The worker process: starts, answers /healthz, stops cleanly on SIGTERM and on Ctrl-C."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from aiohttp import ClientSession

from tests.conftest import eventually
from tests.e2e.harness import Tally

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_worker_answers_healthz_and_exits_zero_on_signal(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    deployment = Tally()
    process = deployment.start(tmp_path / "worker.log", TALLY_SHUTDOWN_TIMEOUT="10")
    try:
        await deployment.wait_ready()
        url = f"http://127.0.0.1:{deployment.port}/healthz"
        async with ClientSession() as http, http.get(url) as response:
            assert response.status == 200
        started = time.monotonic()
        process.send_signal(stop_signal)
        code = process.wait(timeout=15)
        assert code == 0, (tmp_path / "worker.log").read_text()[-2000:]
        assert time.monotonic() - started < 10
    finally:
        if process.poll() is None:
            process.kill()
        await deployment.cleanup()


async def test_a_sigterm_while_the_worker_starts_is_a_clean_stop(tmp_path: Path) -> None:
    # The worker catches SIGTERM from the start of `tally worker`, before its heavy imports;
    # a stop asked for then must still end the process, with exit 0 (not 143, not never).
    deployment = Tally()
    process = deployment.start(tmp_path / "worker.log", TALLY_SHUTDOWN_TIMEOUT="10")
    try:
        # Checked often: the window between the handler and the end of start-up is short.
        await eventually(
            lambda: _catches_sigterm(process.pid), "the worker catches SIGTERM", every=0.005
        )
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        assert code == 0, (tmp_path / "worker.log").read_text()[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
        await deployment.cleanup()


def _catches_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False
