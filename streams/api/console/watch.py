"""The watch on the console (contract §15, §16): `tally api` asks `tally watch` for its live
volumes and latest alerts, so the page talks to one origin only, with one token."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import aiohttp
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from streams.api.console.pages import templates
from streams.api.problems import Problem
from streams.api.reads import json
from streams.api.security import Operator
from streams.settings import Settings

log = logging.getLogger("tally.api.console")
ASK_TIMEOUT_S = 2.0  # the page polls every 2 s: a watch slower than that is "not answering"
ALERTS_SHOWN = 10
Minutes = Annotated[int, Query(ge=1, le=60)]


class VolumeRow(BaseModel):
    minute: datetime = Field(description="start of the tumbling minute")
    currency: str
    type: str = Field(description="the outcome type")
    count: int
    amount: int = Field(description="summed `amount`, minor units (0 for types without one)")


class AlertRow(BaseModel):
    id: str = Field(description="the alert's CloudEvent id")
    account_id: str
    count: int
    window_s: int
    first_at: datetime
    last_at: datetime


class WatchView(BaseModel):
    at: datetime
    url: str = Field(description="where this API asked (TALLY_WATCH_URL)")
    partitions: list[int] | None = Field(description="the partitions the watch holds")
    volumes: list[VolumeRow] | None = Field(description="oldest minute first; null if no answer")
    alerts: list[AlertRow] | None = Field(description="newest first; null if no answer")
    error: str | None = Field(description="why the watch could not be asked, if it could not")


async def watched(settings: Settings, minutes: int, limit: int = ALERTS_SHOWN) -> dict[str, Any]:
    """The watch's volumes of the last `minutes` and its latest alerts; on no answer, why."""
    base = settings.watch_url.rstrip("/")
    found: dict[str, Any] = {"at": datetime.now(UTC), "url": base, "partitions": None}
    found |= {"volumes": None, "alerts": None, "error": None}
    try:
        async with asyncio.timeout(ASK_TIMEOUT_S), aiohttp.ClientSession() as http:
            volumes = await _get(http, f"{base}/v1/volumes", minutes=minutes)
            alerts = await _get(http, f"{base}/v1/alerts", limit=limit)
    except Exception as exc:  # the watch down or not deployed: the console says so, no more
        log.info("the watch did not answer", extra={"url": base, "error": repr(exc)[:200]})
        found["error"] = f"the watch does not answer at {base} ({type(exc).__name__})"
        return found
    return found | {
        "partitions": volumes["partitions"],
        "volumes": volumes["volumes"],
        "alerts": alerts["alerts"],
    }


async def _get(http: aiohttp.ClientSession, url: str, **params: int) -> dict[str, Any]:
    async with http.get(url, params=params) as answer:
        answer.raise_for_status()
        body: dict[str, Any] = await answer.json()
        return body


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 401, 403)
}
router = APIRouter(prefix="/v1/ops", tags=["operations"], responses=_ERRORS)


@router.get("/watch", response_model=WatchView)
async def get_watch(request: Request, _: Operator, minutes: Minutes = 15) -> Response:
    """`tally watch`'s live volumes (per currency, outcome type and minute) and latest
    velocity alerts, as the watch answers them (contract §16)."""
    return json(await watched(request.app.state.settings, minutes))


views = APIRouter(prefix="/console/views", include_in_schema=False)


@views.get("/watch")
async def watch_card(request: Request, _: Operator) -> Response:
    found = await watched(request.app.state.settings, minutes=15)
    return templates.TemplateResponse(request, "watch.html", {"w": found})
