"""A real Prometheus (Debian's) scrapes a running worker and `tally api`: the alert rules load
and evaluate, and the dashboard's queries return data."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.api.conftest import Api
from tests.e2e.harness import Tally, free_port, worker_and_api

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
DASHBOARD = ROOT / "deploy/grafana/tally.json"


@pytest.fixture(scope="module")
async def deployment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Tally]:
    async with worker_and_api(tmp_path_factory.mktemp("tally")) as tally:
        yield tally


@pytest.fixture(scope="module")
def prometheus(deployment: Tally, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus scraping both every second with Tally's alert rules, on a port of its own."""
    subprocess.run(["bash", str(ROOT / "deploy/local/tools.sh"), "prometheus"], check=True)
    binary = shutil.which("prometheus")
    assert binary is not None
    home = tmp_path_factory.mktemp("prometheus")
    jobs = {"tally": deployment.port, "tally-api": deployment.api_port}
    config = {  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for job, port in jobs.items()
        ],
    }
    (home / "prometheus.yml").write_text(json.dumps(config))
    port = free_port()
    log = home / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=out,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        code = process.wait(30)
        assert code == 0, log.read_text()[-3000:]


@pytest.fixture(scope="module")
async def http(prometheus: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=prometheus, timeout=10) as client:
        yield client


async def answer(http: httpx.AsyncClient, path: str, **params: str) -> Any:
    """The `data` of a Prometheus API answer, or None while Prometheus is not up yet (no
    listener, or 503 "Service Unavailable" while its storage starts)."""
    try:
        reply = await http.get(path, params=params)
    except httpx.TransportError:
        return None
    if reply.status_code == 503:
        return None
    body = reply.json()
    assert body["status"] == "success", body
    return body["data"]


async def settled(
    http: httpx.AsyncClient, path: str, done: Callable[[Any], Any], what: str, **params: str
) -> Any:
    """Asks `path` every half second until `done(data)` holds; returns that data."""
    deadline = time.monotonic() + 60
    while (data := await answer(http, path, **params)) is None or not done(data):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within 60 s: {what}; last answer {data}")
        await asyncio.sleep(0.5)
    return data


def dashboard_query(title: str) -> str:
    """The first query of the panel `title`, its range variables made concrete."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    expr: str = next(p for p in panels if p["title"] == title)["targets"][0]["expr"]
    return expr.replace("$__rate_interval", "1m").replace("$__range", "5m")


def all_up(data: Any) -> bool:
    targets = data["activeTargets"]
    return len(targets) == 2 and all(t["health"] == "up" for t in targets)


async def test_both_processes_are_scraped(http: httpx.AsyncClient) -> None:
    data = await settled(http, "/api/v1/targets", all_up, "both targets up")
    assert {t["labels"]["job"] for t in data["activeTargets"]} == {"tally", "tally-api"}


async def test_every_alert_rule_loads_and_evaluates(http: httpx.AsyncClient) -> None:
    def evaluated(data: Any) -> bool:
        rules = [rule for group in data["groups"] for rule in group["rules"]]
        return bool(rules) and all(rule["health"] == "ok" for rule in rules)

    data = await settled(http, "/api/v1/rules", evaluated, "every rule evaluated, health ok")
    groups = {group["name"]: group["rules"] for group in data["groups"]}
    assert set(groups) == {"tally-worker", "tally-api"}
    names = {rule["name"] for rules in groups.values() for rule in rules}
    assert {"TallyWorkerNotReady", "TallyNoWorkerConsuming", "TallyApiErrors"} <= names
    assert all(not rule.get("lastError") for rules in groups.values() for rule in rules)


async def test_the_dashboard_charts_commands_and_api_requests(
    deployment: Tally, http: httpx.AsyncClient
) -> None:
    # A rate needs a sample from before the traffic: if the first scrape came after it, the
    # counters would look flat for the whole window and the latency quantile would stay NaN.
    await settled(http, "/api/v1/targets", all_up, "both targets up")
    async with httpx.AsyncClient(base_url=deployment.api_url, timeout=60) as client:
        api = Api(client)
        account = f"prom-{uuid.uuid4().hex[:8]}"
        await api.open(account)
        await api.deposit(account, 500)
        assert (await api.get(f"/v1/accounts/{account}")).status_code == 200

    def measured(data: Any) -> bool:
        return any(r["value"][1] != "NaN" for r in data["result"])

    def series(**labels: str) -> Callable[[Any], bool]:
        """Whether a query's answer has a series with these labels."""
        return lambda data: any(labels.items() <= r["metric"].items() for r in data["result"])

    throughput = dashboard_query("Throughput by type and outcome")
    opened = series(type="ledger.account.open.v1", outcome="accepted")
    await settled(http, "/api/v1/query", opened, throughput, query=throughput)
    requests = dashboard_query("API requests by route and status")
    served = series(route="/v1/accounts/{account_id}", status="200")
    await settled(http, "/api/v1/query", served, requests, query=requests)
    latency = dashboard_query("End-to-end latency")
    await settled(http, "/api/v1/query", measured, latency, query=latency)
    ready = dashboard_query("Workers ready")
    data = await settled(http, "/api/v1/query", lambda d: d["result"], ready, query=ready)
    assert data["result"][0]["value"][1] == "1"


async def test_a_healthy_deployment_raises_no_alert(http: httpx.AsyncClient) -> None:
    # Before the first scrape "no worker up" may be pending for a moment; then nothing.
    await settled(http, "/api/v1/alerts", lambda d: d["alerts"] == [], "no alert")
