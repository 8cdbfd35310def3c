"""The Grafana dashboard and the Prometheus alerts query only metrics and labels the code exports.

A metric or label renamed in streams/metrics.py without the same change in
deploy/grafana/tally.json or deploy/prometheus/alerts.yml fails here, before an operator finds
an empty panel or an alert that can never fire.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from streams import metrics

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/tally.json"
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
RUNBOOKS = ROOT / "docs/operations.md"

TARGET_LABELS = ("job", "instance")  # added by Prometheus to every scraped series
PROMETHEUS_OWN = {"up": ()}
NOT_CHARTED = {"tally_build_info"}  # a constant 1: nothing to chart

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_LEGEND = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@cache
def exported() -> dict[str, frozenset[str]]:
    """Every series name Prometheus scrapes from Tally (and `up`) → the labels it carries."""
    found: dict[str, frozenset[str]] = {}
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        labels = frozenset((*metric._labelnames, *TARGET_LABELS))
        name = metric._name
        if isinstance(metric, Counter):
            found[f"{name}_total"] = labels
        elif isinstance(metric, Histogram):
            found[f"{name}_bucket"] = labels | {"le"}
            found[f"{name}_sum"] = found[f"{name}_count"] = labels
        else:
            assert isinstance(metric, Gauge), f"{name}: a kind this test does not know"
            found[name] = labels
    for name, own in PROMETHEUS_OWN.items():
        found.setdefault(name, frozenset((*own, *TARGET_LABELS)))
    return found


def metric_names(expr: str) -> set[str]:
    """The metrics an expression selects: Tally's by prefix, and Prometheus's `up`."""
    names = set(_NAME.findall(_STRING.sub('""', expr)))
    return {n for n in names if n.startswith("tally_") or n in PROMETHEUS_OWN}


def label_names(expr: str) -> set[str]:
    """Labels an expression groups, joins or matches on."""
    bare = _STRING.sub('""', expr)
    grouped = {n.strip() for group in _GROUPING.findall(bare) for n in group.split(",")}
    matched = {n for body in re.findall(r"\{([^{}]*)\}", bare) for n in _MATCHER.findall(body)}
    return (grouped | matched) - {""}


def check(expr: str, legend: str = "") -> list[str]:
    """What in `expr` (and its legend) Tally does not export; empty when all is there."""
    names = metric_names(expr)
    if not names:
        return [f"{expr!r} selects no Tally metric"]
    unknown = sorted(names - exported().keys())
    if unknown:
        return [f"{expr!r}: no metric {', '.join(unknown)}"]
    labels = frozenset().union(*(exported()[n] for n in names))
    missing = sorted((label_names(expr) | set(_LEGEND.findall(legend))) - labels)
    return [f"{expr!r}: no label {', '.join(missing)} on {sorted(names)}"] if missing else []


@cache
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def targets() -> list[dict[str, Any]]:
    return [t for p in dashboard()["panels"] for t in p.get("targets", [])]


@cache
def alert_rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def test_every_dashboard_query_uses_exported_metrics_and_labels() -> None:
    assert targets()
    problems = [p for t in targets() for p in check(t["expr"], t.get("legendFormat", ""))]
    assert problems == []


def test_every_alert_uses_exported_metrics_and_labels() -> None:
    assert alert_rules()
    problems = [p for rule in alert_rules() for p in check(rule["expr"])]
    assert problems == []


def test_every_metric_of_the_contract_is_on_the_dashboard() -> None:
    charted = {n for t in targets() for n in metric_names(t["expr"])}
    families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in charted}
    ours = {
        m._name + ("_total" if isinstance(m, Counter) else "")
        for m in vars(metrics).values()
        if isinstance(m, MetricWrapperBase)
    }
    assert ours - NOT_CHARTED - families == set()


def test_every_panel_has_a_datasource_variable_and_a_place_of_its_own() -> None:
    variables = {v["name"] for v in dashboard()["templating"]["list"]}
    assert "DS_PROMETHEUS" in variables
    cells: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert cells.isdisjoint(mine), f"{panel['title']} overlaps another panel"
        cells |= mine
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids))


def test_every_alert_has_a_summary_a_description_and_a_runbook() -> None:
    headings = set(re.findall(r"^#{2,4} (\S+)\s*$", RUNBOOKS.read_text(), flags=re.M))
    for rule in alert_rules():
        name, notes = rule["alert"], rule["annotations"]
        assert notes["summary"] and notes["description"], name
        assert notes["runbook_url"] == f"docs/operations.md#{name.lower()}", name
        assert name in headings, f"docs/operations.md has no section {name}"
        assert rule["labels"]["severity"] in {"warning", "critical"}, name


def test_the_five_alerts_of_the_spec_are_there() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "TallyWorkerNotReady",
        "TallyConsumerLagGrowing",
        "TallyDeadLetters",
        "TallyBatchesRetrying",
        "TallyNoWorkerConsuming",
    } <= names


def test_the_checker_sees_a_renamed_metric_and_label() -> None:
    assert check("sum by (reason) (rate(tally_dlq_total[5m]))") == []
    assert check("rate(tally_dlq[5m])") != []
    assert check("sum by (cause) (rate(tally_dlq_total[5m]))") != []
    assert check('tally_commands_total{kind="x"}') != []
    assert check("histogram_quantile(0.9, sum by (le) (rate(tally_batch_size_bucket[1m])))") == []
    assert check("rate(tally_commands_total[1m])", "{{ type }} {{verdict}}") != []
    assert check('up{job="tally-api"} == 0') == []
