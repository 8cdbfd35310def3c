"""The `/v1/ops` routes (contract §15): the fleet, the charts' series, dead letters, replay.

Every route needs the `ops` role. The console's page calls them, and so may any program."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from streams.api.console import live
from streams.api.console.letters import Filter, letter_view
from streams.api.console.views import (
    DeadLettersPage,
    OverviewView,
    ReplayRequest,
    ReplayResult,
    SeriesView,
)
from streams.api.problems import Problem, ProblemError
from streams.api.reads import json
from streams.api.security import Operator

log = logging.getLogger("tally.api.console")
LIVE_WITHIN = timedelta(seconds=15)  # three heartbeats missed: the worker is gone
SHOWN_WITHIN = timedelta(hours=1)  # a gone worker stays listed this long
READ_TIMEOUT_S = 15.0
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 401, 403, 503)
}
router = APIRouter(prefix="/v1/ops", tags=["operations"], responses=_ERRORS)


async def workers(state: Any, now: datetime) -> list[dict[str, Any]]:
    """The workers seen within SHOWN_WITHIN, live or gone, from their heartbeats."""
    found = await state.store.workers(now - SHOWN_WITHIN)
    return [
        {
            "worker_id": doc["_id"],
            **{k: doc.get(k) for k in ("host", "pid", "http_port", "group", "partitions")},
            **{k: doc.get(k) for k in ("ready", "checks", "version", "at")},
            "live": now - doc["at"] <= LIVE_WITHIN,
            "seen_seconds_ago": round(max(0.0, (now - doc["at"]).total_seconds()), 1),
        }
        for doc in found
    ]


async def dead_letter_counts(state: Any) -> dict[str, int] | None:
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            counts: dict[str, int] = await state.console.letters.counts()
            return counts
    except Exception as exc:  # Kafka away: the rest of the overview still answers
        log.warning("dead letters not read", extra={"error": repr(exc)[:200]})
        return None


async def overview(state: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    minute = state.console.throughput.window(60)
    return {
        "at": now,
        "workers": await workers(state, now),
        "api": state.health.report(),
        "throughput_last_minute": {k: sum(minute[k]) for k in live.OUTCOMES},
        "lag": state.console.lag.latest,
        "dead_letters": await dead_letter_counts(state),
    }


@router.get("/overview", response_model=OverviewView)
async def get_overview(request: Request, _: Operator) -> Response:
    return json(await overview(request.app.state))


@router.get("/series", response_model=SeriesView)
async def get_series(
    request: Request, _: Operator, minutes: Annotated[int, Query(ge=1, le=15)] = 15
) -> Response:
    console = request.app.state.console
    return json(
        {
            "at": datetime.now(UTC),
            "throughput": console.throughput.window(minutes * 60),
            "lag": console.lag.window(minutes * 60),
        }
    )


async def dead_letters(state: Any, selected: Filter, limit: int) -> dict[str, Any]:
    letters = state.console.letters
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            shown, total = await letters.listed(selected, limit)
            counts = await letters.counts()
    except Exception as exc:
        detail = f"the dead-letter topic cannot be read now ({type(exc).__name__})"
        raise ProblemError(503, detail, headers={"Retry-After": "5"}) from None
    return {"items": [letter_view(letter) for letter in shown], "total": total, "counts": counts}


def utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


@router.get("/dead-letters", response_model=DeadLettersPage)
async def get_dead_letters(
    request: Request,
    _: Operator,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    selected = Filter(reason or None, utc(since), utc(until))
    return json(await dead_letters(request.app.state, selected, limit))


@router.post("/dead-letters/replay", response_model=ReplayResult)
async def replay_dead_letters(
    request: Request, operator: Operator, body: ReplayRequest
) -> Response:
    """Send the dead letters at these positions back to their original topic, as `tally dlq
    replay --offset P:N` does (contract §14); logged with the operator's `sub`."""
    state = request.app.state
    positions = list(dict.fromkeys(body.positions))
    try:
        async with asyncio.timeout(READ_TIMEOUT_S * 2):
            done, missing = await state.console.letters.replay(
                positions, state.publisher, operator.sub
            )
    except Exception as exc:  # some may have gone: replaying again is safe (contract §14)
        detail = f"the replay did not finish ({type(exc).__name__}); it is safe to repeat"
        raise ProblemError(503, detail, headers={"Retry-After": "5"}) from None
    return json({"replayed": done.sent, "skipped": done.skipped, "missing": missing})
