"""The operator console's pure parts (contract §15): masking, series, filters, the headers and
roles of its routes, and its assets in the wheel. No network, no database."""

from __future__ import annotations

import fnmatch
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import orjson
import pytest
import setuptools
from fastapi.testclient import TestClient

from streams.api.app import create_app
from streams.api.console import CSP, STATIC
from streams.api.console.letters import MASK, Filter, letter_view, masked_value
from streams.api.console.live import Lag, Rates, Throughput
from streams.dlq import DeadLetter
from streams.settings import Settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).parents[2]
SECRET = "unit-secret-that-is-long-enough-for-hs256!"
TOKEN = jwt.encode({"sub": "alice", "roles": ["customer"], "exp": 4102444800}, SECRET, "HS256")
AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def letter(
    value: bytes | None, headers: list[tuple[str, bytes | None]], **kw: object
) -> DeadLetter:
    stamped = [("tally_error_reason", b"too_large"), ("tally_failed_at", AT.isoformat().encode())]
    fields: dict[str, object] = {"partition": 1, "offset": 7, "timestamp_ms": 0, "key": b"acc-1"}
    fields |= kw
    return DeadLetter(value=value, headers=(*headers, *stamped), **fields)  # type: ignore[arg-type]


def test_a_binary_dead_letters_token_header_is_masked_and_nothing_else_is() -> None:
    view = letter_view(letter(b'{"amount":1}', [("ce_authtoken", TOKEN.encode())]))
    shown = orjson.dumps(view).decode()
    assert TOKEN not in shown and TOKEN.split(".")[1] not in shown
    assert {"name": "ce_authtoken", "value": MASK} in view["headers"]
    assert view["position"] == "1:7" and view["reason"] == "too_large" and view["key"] == "acc-1"
    assert view["value"] == '{"amount":1}' and view["failed_at"] == AT


def test_a_structured_dead_letters_authtoken_is_masked_and_so_is_any_jwt_shaped_text() -> None:
    structured = orjson.dumps({"id": "c", "authtoken": "not-even-a-jwt", "data": {"a": 1}})
    assert "not-even-a-jwt" not in (masked_value(structured) or "")
    loose = b'garbage {"authtoken": "' + TOKEN.encode() + b'" and more'
    assert TOKEN[:20] not in (masked_value(loose) or "") and MASK in (masked_value(loose) or "")
    cut = letter(TOKEN.encode() * 400, [], key=TOKEN.encode())
    assert "eyJ" not in orjson.dumps(letter_view(cut)).decode()


def test_undecodable_bytes_are_shown_as_text_with_replacement_characters() -> None:
    view = letter_view(letter(b"\xff\xfe<script>", [("x-bin", b"\x00\xff")]))
    assert view["value"] == "\ufffd\ufffd<script>"  # escaped by the template, never run


def test_a_filter_admits_by_reason_and_time() -> None:
    one = letter(b"", [])
    assert Filter("too_large", AT, AT).admits(one)
    assert not Filter("undecodable").admits(one)
    assert not Filter(since=AT + timedelta(seconds=1)).admits(one)
    assert not Filter(until=AT - timedelta(seconds=1)).admits(one)


def test_rates_count_per_second_and_forget_seconds_older_than_their_span() -> None:
    rates = Rates(("a", "b"), span=10)
    for now in (100.1, 100.9, 101.0, 105.5):
        rates.add("a", now)
    rates.add("b", 105.0)
    window = rates.window(10, now=105)
    assert window["t"] == list(range(96, 106))
    assert window["a"] == [0, 0, 0, 0, 2, 1, 0, 0, 0, 1] and sum(window["b"]) == 1
    rates.add("b", 110.2)  # reuses 100's slot: its counts are gone, not added to
    assert rates.window(10, now=110)["a"] == [1, 0, 0, 0, 1, 0, 0, 0, 0, 0]


def test_throughput_counts_rejections_by_the_outcomes_type() -> None:
    throughput = Throughput()
    throughput.outcome([("ce_type", b"ledger.deposited.v1")])
    throughput.outcome([("ce_type", b"ledger.command.rejected.v1")])
    throughput.outcome([("ce_type", b"ledger.command.rejected.v1")])
    minute = throughput.window(60)
    assert (sum(minute["accepted"]), sum(minute["rejected"])) == (1, 2)


def test_lag_series_are_per_partition_in_partition_order() -> None:
    lag = Lag()
    lag.record({"c/10": 1, "c/2": 5}, now=1000)
    lag.record({"c/2": 3, "t/0": 0}, now=1005)
    assert lag.latest == {"c/2": 3, "t/0": 0}
    series = lag.window(60, now=1010)
    assert series["t"] == [1000, 1005]
    assert list(series["partitions"]) == ["c/2", "c/10", "t/0"]
    assert series["partitions"]["c/10"] == [1, None]


@pytest.fixture(scope="module")
def client() -> TestClient:
    # No lifespan: nothing connects; the routes answer before any data is read.
    return TestClient(create_app(Settings(jwt_secret=SECRET)))


def test_the_page_and_its_assets_carry_the_csp_and_come_from_the_api_itself(
    client: TestClient,
) -> None:
    page = client.get("/console")
    assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    html = page.text
    assert "<script>" not in html and " style=" not in html and "http" not in html.split("<body")[0]
    for asset in ("console.js", "console.css", "vendor/htmx.min.js", "vendor/uPlot.iife.min.js"):
        assert f'"/console/static/{asset}"' in html
        got = client.get(f"/console/static/{asset}")
        assert got.status_code == 200 and got.headers["content-security-policy"] == CSP


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/ops/overview"),
        ("GET", "/v1/ops/series"),
        ("GET", "/v1/ops/dead-letters"),
        ("POST", "/v1/ops/dead-letters/replay"),
        ("GET", "/console/views/overview"),
        ("GET", "/console/views/dead-letters"),
        ("GET", "/console/views/account?account_id=a"),
        ("GET", "/console/views/transfer?transfer_id=t"),
        ("GET", "/console/views/command?command_id=c"),
    ],
)
def test_every_console_call_needs_a_token_and_the_ops_role(
    client: TestClient, method: str, path: str
) -> None:
    body = {"positions": ["0:1"]}
    anonymous = client.request(method, path, json=body)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    customer = client.request(method, path, json=body, headers={"authorization": f"Bearer {TOKEN}"})
    assert customer.status_code == 403, customer.text
    assert customer.headers["content-type"] == "application/problem+json"
    assert customer.headers["cache-control"] == "no-store"
    assert TOKEN not in customer.text


def test_a_replay_takes_only_partition_offset_positions(client: TestClient) -> None:
    ops = jwt.encode({"sub": "op", "roles": ["ops"], "exp": int(time.time()) + 60}, SECRET)
    for positions in ([], ["7"], ["0:1; drop"], ["0:1"] * 1001):
        answer = client.post(
            "/v1/ops/dead-letters/replay",
            json={"positions": positions},
            headers={"authorization": f"Bearer {ops}"},
        )
        assert answer.status_code == 400, (positions[:2], answer.text)


def test_the_wheel_holds_the_console_its_templates_and_assets() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = setuptools.find_namespace_packages(str(ROOT), **config["packages"]["find"])
    assert {"streams.api", "streams.api.console"} <= set(packages)
    patterns = config["package-data"]["streams"]
    files = [*STATIC.rglob("*"), *STATIC.with_name("templates").glob("*")]
    for path in (f for f in files if f.is_file()):
        inside = path.relative_to(ROOT / "streams").as_posix()
        assert any(fnmatch.fnmatch(inside, p.replace("**/", "*")) for p in patterns), inside
