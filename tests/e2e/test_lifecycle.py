"""The worker process: starts, answers /healthz, stops cleanly on SIGTERM and on Ctrl-C."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from aiohttp import ClientSession

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
