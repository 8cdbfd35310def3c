"""The Kubernetes base keeps the invariants of contract §14 (`make lint` renders and schema-checks it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import Settings

pytestmark = pytest.mark.unit

K8S = Path(__file__).parents[2] / "deploy" / "k8s"
DEPLOYMENTS = {
    "worker": ("worker.yaml", "TALLY_HTTP_PORT"),
    "api": ("api.yaml", "TALLY_API_PORT"),
    "watch": ("watch.yaml", "TALLY_WATCH_PORT"),
}
# The settings that pydantic keeps out of repr are the secrets: each must come from the Secret,
# to the pods that use it and no other (the watch has no database, the others sign no freeze).
SECRETS = sorted(f"TALLY_{n.upper()}" for n, f in Settings.model_fields.items() if not f.repr)
NOT_GIVEN = {
    "worker": {"TALLY_WATCH_JWT_PRIVATE_KEY"},
    "api": {"TALLY_WATCH_JWT_PRIVATE_KEY"},
    "watch": {"TALLY_MONGO_URI"},
}


def _docs(*parts: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(K8S.joinpath(*parts).read_text()) if d]


def _config() -> dict[str, str]:
    lines = (K8S / "tally.env").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def _setting(name: str) -> Any:
    """The value the pods get: tally.env's, else the Settings default."""
    default = Settings.model_fields[name].default
    return type(default)(_config().get(f"TALLY_{name.upper()}", default))


def _deployment(component: str) -> dict[str, Any]:
    return next(d for d in _docs(DEPLOYMENTS[component][0]) if d["kind"] == "Deployment")


def _pod(component: str) -> dict[str, Any]:
    pod: dict[str, Any] = _deployment(component)["spec"]["template"]["spec"]
    return pod


def _containers() -> list[Any]:
    return [
        pytest.param(c, _pod(c), container, id=f"{c}/{container['name']}")
        for c in DEPLOYMENTS
        for container in _pod(c)["containers"]
    ]


CONTAINERS = pytest.mark.parametrize(("component", "pod", "container"), _containers())


def _pre_stop_seconds(container: dict[str, Any]) -> float:
    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    if command is None:
        return 0.0
    assert command[0] == "sleep", f"a preStop this test cannot time: {command}"
    return float(command[1])


@CONTAINERS
def test_grace_period_outlasts_the_prestop_pause_and_the_shutdown_timeout(
    component: str, pod: dict[str, Any], container: dict[str, Any]
) -> None:
    # The kubelet counts the grace period from the start of preStop, then SIGKILLs.
    needed = _pre_stop_seconds(container) + _setting("shutdown_timeout")
    assert pod["terminationGracePeriodSeconds"] > needed


def test_worker_replicas_do_not_exceed_the_partitions() -> None:
    assert 1 <= _deployment("worker")["spec"]["replicas"] <= _setting("partitions")


def test_the_api_runs_more_than_one_replica_and_its_budget_keeps_one() -> None:
    budgets = {d["metadata"]["name"]: d["spec"] for d in _docs("pdb.yaml")}
    assert _deployment("api")["spec"]["replicas"] >= 2
    assert budgets["tally-api"]["maxUnavailable"] == 1
    assert budgets["tally-worker"]["maxUnavailable"] == 1


@CONTAINERS
def test_every_container_runs_as_non_root_on_a_read_only_root_filesystem(
    component: str, pod: dict[str, Any], container: dict[str, Any]
) -> None:
    effective = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    assert effective["runAsNonRoot"] is True
    assert effective["runAsUser"] != 0
    assert effective["readOnlyRootFilesystem"] is True
    assert effective["allowPrivilegeEscalation"] is False
    assert effective["capabilities"]["drop"] == ["ALL"]
    tmp = {m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/tmp"}
    assert tmp <= {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert tmp, "Python's tempfile needs a writable /tmp"


@CONTAINERS
def test_every_container_requests_and_limits_cpu_and_memory(
    component: str, pod: dict[str, Any], container: dict[str, Any]
) -> None:
    resources = container["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}


@CONTAINERS
def test_every_container_probes_healthz_for_liveness_and_readyz_for_readiness(
    component: str, pod: dict[str, Any], container: dict[str, Any]
) -> None:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ("liveness", "readiness")}
    assert probes["liveness"]["path"] == "/healthz"
    assert probes["readiness"]["path"] == "/readyz"
    for probe in probes.values():
        assert ports[probe["port"]] == int(_config()[DEPLOYMENTS[component][1]])


@CONTAINERS
def test_pods_are_annotated_for_prometheus_on_their_http_port(
    component: str, pod: dict[str, Any], container: dict[str, Any]
) -> None:
    annotations = _deployment(component)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == _config()[DEPLOYMENTS[component][1]]
    assert annotations["prometheus.io/path"] == "/metrics"


@CONTAINERS
def test_secrets_are_referenced_from_the_secret_never_inlined(
    component: str, pod: dict[str, Any], container: dict[str, Any]
) -> None:
    env = {e["name"]: e for e in container["env"]}
    given = set(SECRETS) - NOT_GIVEN[component]
    assert sorted(given - set(env)) == []
    assert sorted(NOT_GIVEN[component] & set(env)) == []
    for name in given:
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "tally"
        assert "value" not in env[name]
    assert [e["configMapRef"]["name"] for e in container["envFrom"]] == ["tally-config"]


def test_the_base_creates_no_secret_and_its_config_holds_none() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    kinds = {d["kind"] for path in kustomization["resources"] for d in _docs(path)}
    assert "Secret" not in kinds
    assert "secret.example.yaml" not in kustomization["resources"]
    assert sorted(set(SECRETS) & set(_config())) == []


def test_keda_scales_the_worker_group_on_both_topics_up_to_the_partitions() -> None:
    scaled = next(d for d in _docs("components", "keda", "scaledobject.yaml"))["spec"]
    triggers = [t["metadata"] for t in scaled["triggers"]]
    assert scaled["scaleTargetRef"]["name"] == _deployment("worker")["metadata"]["name"]
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= _setting("partitions")
    assert {t["consumerGroup"] for t in triggers} == {_setting("group_id")}
    assert sorted(t["topic"] for t in triggers) == sorted(
        [_setting("topic_commands"), _setting("topic_transfers")]
    )


@pytest.mark.parametrize("component", ["keda", "servicemonitor"])
def test_optional_parts_are_kustomize_components_outside_the_base(component: str) -> None:
    kustomization = yaml.safe_load(
        (K8S / "components" / component / "kustomization.yaml").read_text()
    )
    assert kustomization["kind"] == "Component"
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert not any("components" in path for path in base["resources"])


def test_the_servicemonitor_scrapes_under_the_job_names_the_alerts_select() -> None:
    monitor, services = None, []
    for doc in _docs("components", "servicemonitor", "servicemonitor.yaml") + _docs("api.yaml"):
        if doc["kind"] == "ServiceMonitor":
            monitor = doc["spec"]
        elif doc["kind"] == "Service":
            services.append(doc["metadata"])
    assert monitor is not None
    components = monitor["selector"]["matchExpressions"][0]["values"]
    selected = [
        s
        for s in services
        if monitor["selector"]["matchLabels"].items() <= s["labels"].items()
        and s["labels"]["app.kubernetes.io/component"] in components
    ]
    # The Prometheus Operator's job: the Service label jobLabel names, else the Service's name.
    jobs = {s["labels"].get(monitor.get("jobLabel", ""), s["name"]) for s in selected}
    alerts = (K8S.parent / "prometheus" / "alerts.yml").read_text()
    assert jobs == set(re.findall(r'job="([^"]+)"', alerts)) == {"tally", "tally-api"}
