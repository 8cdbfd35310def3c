"""CloudEvents Kafka binding: read commands (binary or structured), write outcomes (binary)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

Headers = list[tuple[str, bytes]]

_REQUIRED = ("specversion", "id", "source", "type")
_STRING_ATTRIBUTES = (*_REQUIRED, "time", "subject", "traceparent", "authtoken")
_JSON_TYPES = ("application/json", "text/json")


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """A decoded incoming CloudEvent: its attributes and its parsed `data`."""

    attributes: dict[str, str]
    data: object

    @property
    def id(self) -> str:
        return self.attributes["id"]

    @property
    def type(self) -> str:
        return self.attributes["type"]


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Why a record cannot be read as a CloudEvent (SPEC §7 `tally_error_reason`)."""

    reason: str  # undecodable | invalid_envelope | too_large
    detail: str


def decode(value: bytes | None, headers: Headers, max_bytes: int) -> CloudEvent | Undecodable:
    """Decode one record; never raises."""
    if value is not None and len(value) > max_bytes:
        return Undecodable("too_large", f"value is {len(value)} bytes, limit {max_bytes}")
    if not value:
        return Undecodable("undecodable", "empty value")
    try:
        header_map = {k.lower(): v.decode() for k, v in headers}
    except UnicodeDecodeError:
        return Undecodable("invalid_envelope", "a header is not UTF-8")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Undecodable("undecodable", f"value is not JSON: {exc}")
    if "ce_specversion" in header_map:
        return _binary(header_map, body)
    return _structured(body)


def _binary(headers: dict[str, str], body: object) -> CloudEvent | Undecodable:
    content_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        return Undecodable("undecodable", f"unsupported content-type {content_type!r}")
    attributes = {k[3:]: v for k, v in headers.items() if k.startswith("ce_")}
    if "traceparent" in headers:
        attributes.setdefault("traceparent", headers["traceparent"])
    return _checked(attributes, body)


def _structured(body: object) -> CloudEvent | Undecodable:
    if not isinstance(body, dict):
        return Undecodable("invalid_envelope", "structured CloudEvent must be a JSON object")
    if "data_base64" in body:
        return Undecodable("invalid_envelope", "data_base64 is not supported; send JSON data")
    data = body.pop("data", None)
    bad = [k for k in _STRING_ATTRIBUTES if k in body and not isinstance(body[k], str)]
    if bad:
        return Undecodable("invalid_envelope", f"attribute {bad[0]!r} must be a string")
    attributes = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in body.items()}
    return _checked(attributes, data)


def _checked(attributes: dict[str, Any], data: object) -> CloudEvent | Undecodable:
    missing = [name for name in _REQUIRED if not attributes.get(name)]
    if missing:
        return Undecodable("invalid_envelope", f"missing CloudEvents attribute {missing[0]!r}")
    if attributes["specversion"] != "1.0":
        return Undecodable(
            "invalid_envelope", f"specversion {attributes['specversion']!r} != '1.0'"
        )
    if len(attributes["id"]) > 128:
        return Undecodable("invalid_envelope", "id is longer than 128 characters")
    return CloudEvent(attributes, data)


def encode(event: dict[str, Any]) -> tuple[bytes, Headers]:
    """Encode a stored outcome (see streams.outcomes) as a binary-mode CloudEvent."""
    headers: Headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event["id"].encode()),
        ("ce_source", event["source"].encode()),
        ("ce_type", event["type"].encode()),
        ("ce_time", event["time"].encode()),
        ("content-type", b"application/json"),
    ]
    for name in ("subject", "correlationid", "causationid", "traceparent"):
        if event.get(name):
            headers.append((f"ce_{name}", event[name].encode()))
    return orjson.dumps(event["data"]), headers
