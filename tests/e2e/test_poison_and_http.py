"""Poison messages go to the dead-letter topic; the HTTP endpoint answers as contract §10 says."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import TALLY, Tally

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def poison_cases() -> list[tuple[str, bytes | None, list[tuple[str, bytes]], str]]:
    ce = [("ce_specversion", b"1.0"), ("ce_source", b"e2e"), ("ce_type", b"ledger.deposit.v1")]
    return [
        ("garbage", b"\xff\xfe not json", [], "undecodable"),
        ("empty", b"", [], "undecodable"),
        ("oversized", b'"' + b"a" * 70_000 + b'"', [], "too_large"),
        ("no-id", b'{"account_id": "a"}', ce, "invalid_envelope"),
        (
            "old-spec",
            b'{"specversion": "0.3", "id": "1", "source": "s", "type": "t"}',
            [],
            "invalid_envelope",
        ),
        ("not-object", b"[1, 2, 3]", [], "invalid_envelope"),
    ]


async def test_each_kind_of_poison_is_dead_lettered_with_why_and_where(
    producer: Any, dlq: Any, tally: Tally
) -> None:
    marker = uuid.uuid4().hex
    for name, value, headers, _ in poison_cases():
        await producer.raw(value, key=f"{marker}-{name}".encode(), headers=headers)
    keys = {f"{marker}-{name}".encode() for name, *_ in poison_cases()}
    records = await dlq.until(lambda rs: keys <= {r.key for r in rs})
    by_key = {r.key: r for r in records if r.key in keys}
    for name, value, headers, reason in poison_cases():
        record = by_key[f"{marker}-{name}".encode()]
        got = dict(record.headers)
        assert got["tally_error_reason"] == reason.encode(), name
        assert got["tally_original_topic"] == tally.topics["commands"].encode()
        assert {
            "tally_error_detail",
            "tally_original_partition",
            "tally_original_offset",
            "tally_failed_at",
        } <= set(got)
        assert record.value == value or (not value and not record.value), name
        for header in headers:
            assert header in record.headers


async def test_health_ready_metrics_and_asyncapi_are_served(tally: Tally, outcomes: Any) -> None:
    base = f"http://127.0.0.1:{tally.port}"
    async with ClientSession() as http:
        async with http.get(f"{base}/healthz") as r:
            assert r.status == 200 and await r.json() == {"status": "ok"}
        async with http.get(f"{base}/readyz") as r:
            body = await r.json()
            assert r.status == 200, body
            assert set(body["checks"]) >= {"kafka", "mongodb", "consumer_group"}
        async with http.get(f"{base}/metrics") as r:
            text = await r.text()
        async with http.get(f"{base}/asyncapi.json") as r:
            contract = await r.json()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "tally_commands",
        "tally_rejections",
        "tally_dlq",
        "tally_processing_seconds",
        "tally_end_to_end_seconds",
        "tally_consumer_lag",
        "tally_batch_size",
        "tally_mongo_seconds",
        "tally_build_info",
    } <= names
    assert contract["asyncapi"] == "3.0.0"
    assert contract["channels"]["commands"]["address"] == tally.topics["commands"]
    assert "ledger_transfer_v1" in contract["components"]["messages"]


def test_committed_asyncapi_document_matches_the_models() -> None:
    env = {"TALLY_JWT_SECRET": "x" * 32, "PATH": "/usr/bin:/bin"}
    generated = subprocess.run([TALLY, "asyncapi"], env=env, capture_output=True, check=True).stdout
    committed = (ROOT / "docs" / "asyncapi.json").read_text()
    assert json.loads(generated) == json.loads(committed), "run: make asyncapi"


def test_committed_openapi_document_matches_the_api() -> None:
    env = {"TALLY_JWT_SECRET": "x" * 32, "PATH": "/usr/bin:/bin"}
    generated = subprocess.run([TALLY, "openapi"], env=env, capture_output=True, check=True).stdout
    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert json.loads(generated) == json.loads(committed), "run: make asyncapi"


def test_bad_configuration_stops_start_up_with_one_line_naming_the_variable() -> None:
    env = {"TALLY_JWT_SECRET": "x" * 32, "TALLY_HTTP_PORT": "eighty", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([TALLY, "worker"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "TALLY_HTTP_PORT" in lines[0]


def test_missing_jwt_key_stops_start_up() -> None:
    result = subprocess.run(
        [TALLY, "worker"], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "TALLY_JWT_SECRET" in result.stderr
