"""`POST /v1/commands`: produce one command, and with `Prefer: wait=N` return its outcome."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from streams.api.problems import Problem, ProblemError
from streams.api.queries import LedgerReads
from streams.api.reads import json
from streams.api.replies import Replies, event_json, structured
from streams.api.security import Token, principal_of
from streams.api.submit import Submission, submission
from streams.api.tracing import ApiTracing
from streams.api.views import CommandAccepted, CommandStatus
from streams.codec import Limits
from streams.publish import KafkaPublisher, Message
from streams.settings import Settings

PRODUCE_TIMEOUT_S = 5.0  # then 503: the broker is not taking records now
STORE_AFTER_S = 1.0  # a wait without a reply this long looks in the store too
RETRY_AFTER = {"Retry-After": "5"}
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d{1,6})\b", re.IGNORECASE)
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 401, 413, 415, 503)
}
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One command in the CloudEvents HTTP binding: binary mode (ce-* headers, "
        "content-type application/json, body = data) or structured mode "
        "(content-type application/cloudevents+json).",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/cloudevents+json": {"schema": {"type": "object"}},
        },
    }
}
router = APIRouter(prefix="/v1")


@router.post(
    "/commands",
    status_code=202,
    response_model=CommandAccepted,
    responses={200: {"model": CommandStatus}, **_ERRORS},
    openapi_extra=_BODY,
)
async def post_command(
    request: Request,
    token: Token,
    prefer: Annotated[str | None, Header()] = None,
) -> Response:
    state = request.app.state
    settings: Settings = state.settings
    await principal_of(token, state.keys)  # 401 before anything is read or produced
    body = await _body(request, settings.max_message_bytes)
    limits = Limits(settings.max_message_bytes, settings.max_headers)
    tracing: ApiTracing = state.tracing
    command = submission(request.headers, body, token, limits, trace_slot=tracing.on)
    wait = preferred_wait(prefer, settings.api_max_wait)
    replies: Replies = state.replies
    with replies.expect(command.command_id) as reply:
        await _produce(state.publisher, settings.topic_commands, command, tracing)
        outcome = await _outcome(state.reads, reply, command.command_id, wait) if wait else None
    headers = {"Location": f"/v1/commands/{command.command_id}"}
    if wait:
        headers["Preference-Applied"] = f"wait={wait:g}"
    if outcome is not None:
        return json({"command_id": command.command_id, "outcome": outcome}, 200, headers)
    return json({"command_id": command.command_id, "status": "accepted"}, 202, headers)


def preferred_wait(prefer: str | None, longest: float) -> float:
    """Seconds to wait from `Prefer: wait=N` (RFC 7240), at most `longest`; 0 without one."""
    found = _WAIT.search(prefer or "")
    return min(float(found.group(1)), longest) if found else 0.0


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        detail = f"body is {declared} bytes, limit {limit} (TALLY_MAX_MESSAGE_BYTES)"
        raise ProblemError(413, detail)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ProblemError(413, f"body is over {limit} bytes (TALLY_MAX_MESSAGE_BYTES)")
    return bytes(body)


async def _produce(
    publisher: KafkaPublisher, topic: str, command: Submission, tracing: ApiTracing
) -> None:
    with tracing.sending(topic, command) as sent:
        message = Message(topic, sent.key, sent.value, sent.headers)
        try:
            async with asyncio.timeout(PRODUCE_TIMEOUT_S):
                await publisher.publish([message])
        except Exception as exc:
            # Not known to be taken: the client sends it again, with the same id (§8.2).
            detail = f"Kafka did not take the command ({type(exc).__name__}); send it again"
            raise ProblemError(503, detail, headers=RETRY_AFTER) from None


async def _outcome(
    reads: LedgerReads, reply: asyncio.Future[Any], command_id: str, seconds: float
) -> dict[str, Any] | None:
    """The outcome from the replies consumer, or from the store: asked after STORE_AFTER_S
    without a reply (an outcome published before the consumer was in place) and again when the
    wait ends. Not before: a reply comes in tens of milliseconds, a duplicate's too (the
    workers republish its outcome), and a lookup first was a sixth of a POST's CPU."""
    waited = 0.0
    for until in sorted({min(STORE_AFTER_S, seconds), seconds}):
        try:
            return structured(await asyncio.wait_for(asyncio.shield(reply), until - waited))
        except TimeoutError:
            waited = until
        stored = await reads.outcome(command_id)
        if stored is not None:
            return event_json(stored)
    return None
