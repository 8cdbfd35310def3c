"""The watch's HTTP endpoint: /healthz, /readyz, /metrics, /v1/volumes, /v1/alerts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from streams.health import Health
from streams.watch.views import MAX_MINUTES
from streams.web import json_response, probe_app

MAX_ALERTS = 100


def _problem(detail: str) -> web.Response:
    """An RFC 9457 problem, as `tally api` answers its errors."""
    body = {"type": "about:blank", "title": "Bad Request", "status": 400, "detail": detail}
    return json_response(body, 400, "application/problem+json")


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
    async def get_volumes(request: web.Request) -> web.Response:
        minutes = _number(request, "minutes", 15, MAX_MINUTES)
        return minutes if isinstance(minutes, web.Response) else json_response(volumes(minutes))

    async def get_alerts(request: web.Request) -> web.Response:
        limit = _number(request, "limit", 20, MAX_ALERTS)
        return limit if isinstance(limit, web.Response) else json_response(alerts(limit))

    app = probe_app(health)
    app.router.add_get("/v1/volumes", get_volumes)
    app.router.add_get("/v1/alerts", get_alerts)
    return app
