"""`POST /v1/commands`: a CloudEvent over HTTP becomes the Kafka record a producer would send.

Both content modes of the CloudEvents HTTP binding are read; the command goes to Kafka in
binary mode with the bearer token as its `authtoken`. The record is checked by the same
decoder the workers use, so what the API refuses the workers would have dead-lettered.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.datastructures import Headers as HttpHeaders

from models.commands import COMMAND_MODELS
from streams.api.problems import ProblemError
from streams.codec import (
    CloudEvent,
    Headers,
    Limits,
    Undecodable,
    binary_headers,
    decode,
    parse_json,
)

STRUCTURED = "application/cloudevents+json"
_REQUIRED = ("id", "source", "type")
# What a command carries while the API's span for it does not exist yet: a traceparent is
# always this long, so the size is checked with the one the API will put there (ADR 9).
TRACE_SLOT = "00-" + "0" * 32 + "-" + "0" * 16 + "-00"


@dataclass(frozen=True, slots=True)
class Submission:
    """The command as it goes to `ledger.commands`."""

    command_id: str
    key: bytes | None
    value: bytes
    headers: Headers
    trace_slot: bool = False  # its ce_traceparent is TRACE_SLOT, to be filled in

    def traced(self, traceparent: str) -> Submission:
        """The record carrying `traceparent`, unless the client's event had its own."""
        if not self.trace_slot:
            return self
        value = traceparent.encode()
        headers = [(n, value if n == "ce_traceparent" else v) for n, v in self.headers]
        return replace(self, headers=headers, trace_slot=False)


def submission(
    http: HttpHeaders, body: bytes, token: str, limits: Limits, *, trace_slot: bool = False
) -> Submission:
    """The Kafka record of an HTTP CloudEvent; ProblemError (400/413/415) if it is not one.

    `trace_slot` (tracing on): an event without a traceparent gets TRACE_SLOT in its place."""
    media = http.get("content-type", "").split(";")[0].strip().lower()
    if media == STRUCTURED:
        attributes, data = _structured(body)
    elif media == "application/json":
        attributes, data = _binary(http), body
    else:
        raise ProblemError(
            415,
            f"content-type {media or 'missing'}: expected application/json "
            f"(binary mode) or {STRUCTURED} (structured mode)",
        )
    if "authtoken" in attributes:
        raise ProblemError(400, "authtoken comes from the Authorization header, not the event")
    slot = trace_slot and "traceparent" not in attributes
    if slot:
        attributes["traceparent"] = TRACE_SLOT
    headers = binary_headers({**attributes, "authtoken": token})
    key = _key(data)
    event = decode(data, list[tuple[str, bytes | None]](headers), limits, key=key)
    if isinstance(event, Undecodable):
        status = 413 if event.reason == "too_large" else 400
        raise ProblemError(status, f"{event.reason}: {event.detail}")
    _known_type(event)
    return Submission(event.id, key, data, headers, trace_slot=slot)


def _binary(http: HttpHeaders) -> dict[str, str]:
    # Header values are percent-encoded where they are not printable ASCII (HTTP binding §3.1.3.2).
    try:
        attributes = {
            name[3:]: unquote(value, errors="strict")
            for name, value in http.items()
            if name.startswith("ce-") and name != "ce-specversion"
        }
    except UnicodeDecodeError:
        raise ProblemError(400, "invalid_envelope: a ce- header is not UTF-8") from None
    version = http.get("ce-specversion")
    if version != "1.0":
        raise ProblemError(400, f"invalid_envelope: ce-specversion must be 1.0, got {version!r}")
    _require(attributes)
    return attributes


def _structured(body: bytes) -> tuple[dict[str, str], bytes]:
    event = parse_json(body)
    if not isinstance(event, dict):
        raise ProblemError(400, "undecodable: the body is not one JSON CloudEvent object")
    if event.get("specversion") != "1.0":
        raise ProblemError(400, "invalid_envelope: specversion must be 1.0")
    if "data_base64" in event or "data" not in event:
        raise ProblemError(400, "invalid_envelope: a command carries JSON `data`")
    attributes: dict[str, str] = {}
    for name, value in event.items():
        if name in ("specversion", "data", "datacontenttype"):
            continue
        if not isinstance(value, str):
            raise ProblemError(400, f"invalid_envelope: attribute {name[:40]!r} is not a string")
        attributes[name] = value
    _require(attributes)
    return attributes, orjson.dumps(event["data"])


def _require(attributes: dict[str, str]) -> None:
    missing = [name for name in _REQUIRED if not attributes.get(name)]
    if missing:
        raise ProblemError(400, f"invalid_envelope: missing {', '.join(missing)}")


def _key(data: bytes) -> bytes | None:
    """Contract §1: the account the command acts on (a transfer's `from_account`)."""
    parsed: Any = parse_json(data)
    if not isinstance(parsed, dict):
        return None
    key = parsed.get("from_account") or parsed.get("account_id")
    return key.encode() if isinstance(key, str) else None


def _known_type(event: CloudEvent) -> None:
    if event.type not in COMMAND_MODELS:
        known = ", ".join(sorted(COMMAND_MODELS))
        raise ProblemError(400, f"unsupported_type: {event.type[:80]!r} is not one of {known}")
