"""The HTTP endpoint of contract §10: /healthz, /readyz, /metrics, /asyncapi.json."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.health import Health


def json_response(
    body: object, status: int = 200, content_type: str = "application/json"
) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=content_type)


def probe_app(health: Health) -> web.Application:
    """An app answering /healthz, /readyz and /metrics for `health` (the worker's, the watch's)."""

    async def healthz(_: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        return json_response(health.report(), 200 if health.ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def build_app(health: Health, asyncapi: Callable[[], dict[str, Any]]) -> web.Application:
    document = asyncapi()

    async def contract(_: web.Request) -> web.Response:
        return json_response(document)

    app = probe_app(health)
    app.router.add_get("/asyncapi.json", contract)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
