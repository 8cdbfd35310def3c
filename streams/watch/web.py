"""The watch's HTTP endpoint: /healthz, /readyz, /metrics, /v1/volumes, /v1/alerts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.health import Health
from streams.watch.views import MAX_MINUTES

MAX_ALERTS = 100


def _json(body: object, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=content_type)


def _problem(detail: str) -> web.Response:
    """An RFC 9457 problem, as `tally api` answers its errors."""
    body = {"type": "about:blank", "title": "Bad Request", "status": 400, "detail": detail}
    return _json(body, 400, "application/problem+json")


def _number(request: web.Request, name: str, default: int, most: int) -> int | web.Response:
    text = request.query.get(name, str(default))
    if not text.isdigit() or not 1 <= int(text) <= most:
        return _problem(f"{name}: expected an integer from 1 to {most}, got {text[:20]!r}")
    return int(text)


def build_app(
    health: Health,
    volumes: Callable[[int], dict[str, Any]],
    alerts: Callable[[int], dict[str, Any]],
) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        return _json(health.report(), 200 if health.ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def get_volumes(request: web.Request) -> web.Response:
        minutes = _number(request, "minutes", 15, MAX_MINUTES)
        return minutes if isinstance(minutes, web.Response) else _json(volumes(minutes))

    async def get_alerts(request: web.Request) -> web.Response:
        limit = _number(request, "limit", 20, MAX_ALERTS)
        return limit if isinstance(limit, web.Response) else _json(alerts(limit))

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/volumes", get_volumes)
    app.router.add_get("/v1/alerts", get_alerts)
    return app
