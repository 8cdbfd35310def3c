"""CloudEvents Kafka binding: read commands (binary or structured), write outcomes (binary)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

Headers = list[tuple[str, bytes]]
RawHeaders = list[tuple[str, bytes | None]]  # as a consumer record has them: values may be null

_REQUIRED = ("specversion", "id", "source", "type")
_STRING_ATTRIBUTES = (*_REQUIRED, "time", "subject", "traceparent", "authtoken")
_JSON_TYPES = ("application/json", "text/json")
# Headers whose bytes Tally reads; any other header is carried along, whatever its bytes.
_READ = ("ce_", "content-type", "traceparent")
_INT64 = 2**63
_OUTCOME_OPTIONAL = ("subject", "correlationid", "causationid", "traceparent")


@dataclass(frozen=True, slots=True)
class Limits:
    """What a record may weigh: key, value and headers together, and how many headers."""

    max_bytes: int = 65536
    max_headers: int = 64


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
    """Why a record cannot be read as a CloudEvent (contract §7 `tally_error_reason`)."""

    reason: str  # undecodable | invalid_envelope | too_large
    detail: str


def record_size(key: bytes | None, value: bytes | None, headers: RawHeaders) -> int:
    """Bytes a record weighs against TALLY_MAX_MESSAGE_BYTES: key, value and headers."""
    size = len(key or b"") + len(value or b"")
    return size + sum(
        len(name.encode("utf-8", "surrogatepass")) + len(v or b"") for name, v in headers
    )


def decode(
    value: bytes | None,
    headers: RawHeaders,
    max_bytes: int | Limits,
    *,
    key: bytes | None = None,
) -> CloudEvent | Undecodable:
    """Decode one record; never raises, whatever the bytes of its key, value and headers."""
    limits = max_bytes if isinstance(max_bytes, Limits) else Limits(max_bytes=max_bytes)
    size = record_size(key, value, headers)
    if size > limits.max_bytes:
        return Undecodable("too_large", f"record is {size} bytes, limit {limits.max_bytes}")
    if len(headers) > limits.max_headers:
        return Undecodable(
            "invalid_envelope", f"{len(headers)} headers, limit {limits.max_headers}"
        )
    header_map = _read_headers(headers)
    if isinstance(header_map, Undecodable):
        return header_map
    if value is None:
        return Undecodable("undecodable", "null value (a tombstone)")
    if not value:
        return Undecodable("undecodable", "empty value")
    body = parse_json(value)
    if isinstance(body, Undecodable):
        return body
    if "ce_specversion" in header_map:
        return _binary(header_map, body)
    return _structured(body)


def _read_headers(headers: RawHeaders) -> dict[str, str] | Undecodable:
    """The headers Tally reads, by lower-case name: each once, present and UTF-8."""
    found: dict[str, str] = {}
    for name, raw in headers:
        lower = name.lower()
        if not lower.startswith(_READ):
            continue
        if lower in found:
            return Undecodable("invalid_envelope", f"header {_shown(lower)} is given twice")
        if raw is None:
            return Undecodable("invalid_envelope", f"header {_shown(lower)} is null")
        try:
            found[lower] = raw.decode()
        except UnicodeDecodeError:
            return Undecodable("invalid_envelope", f"header {_shown(lower)} is not UTF-8")
    return found


def _shown(name: str) -> str:
    return repr(name[:64])


def parse_json(value: bytes) -> object:
    """Parse JSON; an Undecodable if it is not JSON, nests too deep or is not UTF-8.

    orjson first (fast, but refuses integers beyond 64 bits); then the standard library,
    where such an integer becomes infinity: still a number, never a valid Amount, so the
    command is `invalid` (contract §3) rather than a dead letter."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        first = str(exc)
    try:
        body = json.loads(value.decode(), parse_int=_int, parse_constant=_no_constant)
        orjson.dumps(body)  # e.g. a lone surrogate ("\ud800") would poison every later write
    except RecursionError:
        return Undecodable("undecodable", "value nests too deep")
    except (ValueError, TypeError, orjson.JSONEncodeError):  # UnicodeDecodeError is one too
        return Undecodable("undecodable", f"value is not JSON: {first}"[:300])
    return body


def _int(digits: str) -> int | float:
    number = int(digits) if len(digits) <= 20 else _INT64
    return number if -_INT64 <= number < _INT64 else float("inf")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _binary(headers: dict[str, str], body: object) -> CloudEvent | Undecodable:
    content_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        return Undecodable("undecodable", f"unsupported content-type {content_type[:64]!r}")
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
    attributes: dict[str, str] = {}
    for name, value in body.items():
        text = _attribute(name, value)
        if text is None:
            return Undecodable(
                "invalid_envelope", f"attribute {_shown(name)} has the wrong JSON type"
            )
        attributes[name] = text
    return _checked(attributes, data)


def _attribute(name: str, value: object) -> str | None:
    """A structured attribute as text (CloudEvents canonical form); None: wrong JSON type.

    The contract's attributes are strings; an extension may also be a boolean or an integer
    (CloudEvents type system). Objects, arrays, floats and null are no attribute."""
    if isinstance(value, str):
        return value
    if name in _STRING_ATTRIBUTES:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and -(2**31) <= value < 2**31:
        return str(value)
    return None


def _checked(attributes: dict[str, Any], data: object) -> CloudEvent | Undecodable:
    missing = [name for name in _REQUIRED if not attributes.get(name)]
    if missing:
        return Undecodable("invalid_envelope", f"missing CloudEvents attribute {missing[0]!r}")
    if attributes["specversion"] != "1.0":
        return Undecodable(
            "invalid_envelope", f"specversion {attributes['specversion'][:16]!r} != '1.0'"
        )
    if len(attributes["id"]) > 128:
        return Undecodable("invalid_envelope", "id is longer than 128 characters")
    return CloudEvent(attributes, data)


def encode(event: dict[str, Any]) -> tuple[bytes, Headers]:
    """Encode a stored outcome (see streams.outcomes) as a binary-mode CloudEvent."""
    required = {name: event[name] for name in ("id", "source", "type", "time")}
    optional = {name: event.get(name) or None for name in _OUTCOME_OPTIONAL}
    return orjson.dumps(event["data"]), binary_headers(required, trailing=optional)


def binary_headers(
    attributes: Mapping[str, str | None], *, trailing: Mapping[str, str | None] | None = None
) -> Headers:
    """CloudEvents attributes as binary-mode headers: `ce_specversion` 1.0, then `ce_<name>`
    for each attribute that is not None (UTF-8, in order), `content-type: application/json`,
    then the `trailing` attributes likewise.

    `trailing` exists because outcomes have always carried their optional attributes after
    the content type; keeping that order keeps a republished outcome byte-identical."""
    content_type = ("content-type", b"application/json")
    return [("ce_specversion", b"1.0"), *_ce(attributes), content_type, *_ce(trailing or {})]


def _ce(attributes: Mapping[str, str | None]) -> Headers:
    return [(f"ce_{name}", text.encode()) for name, text in attributes.items() if text is not None]
