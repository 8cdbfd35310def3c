"""Poison records: what cannot be read as a command, with the dead-letter reason expected."""

from __future__ import annotations

import random

import orjson

from tests.chaos.messages import DEPOSIT, Headers, Message, binary

Poison = tuple[str, bytes | None, bytes | None, Headers]


def poison_message(rng: random.Random, pid: str) -> Message:
    """A random kind of poison, tagged with header `chaos_poison` = its id (DLQ keeps headers)."""
    reason, key, value, headers = _POISON[rng.choice(list(_POISON))](rng, pid)
    return Message(pid, key, value, [*headers, ("chaos_poison", pid.encode())], poison=reason)


def _good_headers(pid: str) -> Headers:
    return binary(pid, DEPOSIT, {}, None, None)[2]


def _garbage(rng: random.Random, pid: str) -> Poison:
    return "undecodable", b"poison", b"\xff\x00" + rng.randbytes(40), []


def _empty(rng: random.Random, pid: str) -> Poison:
    return "undecodable", b"poison", rng.choice([b"", None]), []


def _oversized(rng: random.Random, pid: str) -> Poison:
    value = orjson.dumps({"account_id": "a0001", "memo": "x" * 70_000})
    return "too_large", b"a0001", value, _good_headers(pid)


def _no_id(rng: random.Random, pid: str) -> Poison:
    headers = [h for h in _good_headers(pid) if h[0] != "ce_id"]
    return "invalid_envelope", b"a0001", b"{}", headers


def _old_spec(rng: random.Random, pid: str) -> Poison:
    headers = [("ce_specversion", b"0.3"), *_good_headers(pid)[1:]]
    return "invalid_envelope", b"a0001", b"{}", headers


def _structured_array(rng: random.Random, pid: str) -> Poison:
    return "invalid_envelope", None, b"[1, 2, 3]", []


def _structured_no_source(rng: random.Random, pid: str) -> Poison:
    value = orjson.dumps({"specversion": "1.0", "id": pid, "type": DEPOSIT, "data": {}})
    return "invalid_envelope", None, value, [("content-type", b"application/cloudevents+json")]


def _not_json_type(rng: random.Random, pid: str) -> Poison:
    headers = [*_good_headers(pid)[:4], ("content-type", b"text/plain")]
    return "undecodable", b"a0001", b'{"a": 1}', headers


def _bad_header(rng: random.Random, pid: str) -> Poison:
    headers = [*_good_headers(pid), ("ce_subject", b"\xff\xfe")]
    return "invalid_envelope", b"a0001", b"{}", headers


def _null_header(rng: random.Random, pid: str) -> Poison:
    headers: Headers = [("ce_specversion", None), *_good_headers(pid)[1:]]
    return "invalid_envelope", rng.choice([None, b"a0001"]), b"{}", headers


def _id_twice(rng: random.Random, pid: str) -> Poison:
    headers = [*_good_headers(pid), ("CE_ID", b"another")]
    return "invalid_envelope", b"a0001", b"{}", headers


def _many_headers(rng: random.Random, pid: str) -> Poison:
    headers = [*_good_headers(pid), *[(f"x-{i}", b"") for i in range(rng.randint(65, 500))]]
    return "invalid_envelope", b"a0001", b"{}", headers


def _deep_json(rng: random.Random, pid: str) -> Poison:
    depth = rng.randint(1100, 5000)
    return "undecodable", b"a0001", b"[" * depth + b"]" * depth, _good_headers(pid)


_POISON = {
    "null_header": _null_header,
    "id_twice": _id_twice,
    "many_headers": _many_headers,
    "deep_json": _deep_json,
    "garbage": _garbage,
    "empty": _empty,
    "oversized": _oversized,
    "no_id": _no_id,
    "old_spec": _old_spec,
    "structured_array": _structured_array,
    "structured_no_source": _structured_no_source,
    "not_json_type": _not_json_type,
    "bad_header": _bad_header,
}
