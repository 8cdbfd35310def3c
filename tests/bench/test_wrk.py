"""The API section's load generator: wrk, with reads.lua, against a real HTTP server."""

from __future__ import annotations

import socket
from collections import Counter

import pytest
from aiohttp import web

from tests.bench.wrk import Wrk, parsed

pytestmark = pytest.mark.bench


def test_the_summary_line_becomes_rates_percentiles_and_errors() -> None:
    run = parsed(
        {"requests": 2500, "duration_us": 2_000_000, "p50_us": 1500, "p99_us": 9250}
        | {"connect": 0, "read": 0, "write": 0, "status": 3, "timeout": 1},
        cpu_seconds=0.1,
    )
    assert (run.per_s, run.p(50), run.p(99), run.calls) == (1250.0, 1.5, 9.25, 2500)
    assert (run.errors, run.first_error) == (4, "3 status, 1 timeout")
    with pytest.raises(ValueError, match="p90"):
        run.p(90)


async def test_wrk_sends_each_path_with_the_header_and_counts_what_was_answered() -> None:
    seen: Counter[str] = Counter()

    async def answer(request: web.Request) -> web.Response:
        seen[request.path] += 1
        ok = request.headers.get("Authorization") == "Bearer t" and request.path != "/missing"
        return web.Response(status=200 if ok else 404, text="{}")

    app = web.Application()
    app.router.add_get("/{any}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        load = Wrk.at(f"http://127.0.0.1:{port}")
        assert load is not None, "wrk could not be installed (deploy/local/tools.sh wrk)"
        run = await load.closed_loop(["/a", "/b", "/missing"], "Bearer t", 4, 1, warmup=0)
    finally:
        await runner.cleanup()
    assert set(seen) == {"/a", "/b", "/missing"}
    assert run.calls >= sum(seen.values()) - 4  # those still open at the end are not counted
    assert 0 < run.errors < run.calls
    assert run.first_error == f"{run.errors} status"
    assert abs(run.errors - seen["/missing"]) <= 4
    assert 0 < run.p(50) <= run.p(99)
    assert run.cpu_seconds > 0
