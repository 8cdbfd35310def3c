"""Checks rendered manifests offline: schemas for built-in kinds, a structural check for CRDs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

# The oldest Kubernetes the manifests claim to work on, and the newest schemas shipped.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

Doc = dict[str, Any]


def main(paths: list[str]) -> int:
    failures = 0
    for path in paths:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
        errors = [f"{_name(d)}: {e}" for d in docs for e in _check(d, docs)]
        for error in errors:
            print(f"k8s-check: ERROR {Path(path).stem}: {error}", file=sys.stderr)
        kinds = ", ".join(sorted({d["kind"] for d in docs}))
        if not errors:
            print(f"k8s-check: {Path(path).stem}: {len(docs)} objects valid ({kinds})")
        failures += len(errors)
    return 1 if failures else 0


def _check(doc: Doc, docs: list[Doc]) -> list[str]:
    crd = CRDS.get((str(doc.get("apiVersion")), str(doc.get("kind"))))
    if crd is not None:
        return crd(doc, docs)
    errors = []
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            errors.append(f"against {version}: {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{exc.message}, and no structural check of ours knows it")
    return errors


def _service_monitor(doc: Doc, docs: list[Doc]) -> list[str]:
    spec = doc.get("spec", {})
    errors = _keys(spec, "spec", {"selector", "endpoints", "namespaceSelector", "jobLabel"})
    match = spec.get("selector", {}).get("matchLabels", {})
    services = [
        s
        for s in _of_kind(docs, "Service")
        if match.items() <= s["metadata"].get("labels", {}).items()
        and _expressions_hold(spec["selector"].get("matchExpressions", []), s)
    ]
    if not services:
        errors.append("its selector matches no Service")
    for endpoint in spec.get("endpoints") or [{}]:
        errors += _keys(endpoint, "endpoint", {"port", "path", "interval", "scrapeTimeout"})
        port = endpoint.get("port")
        for service in services:
            if port not in {p.get("name") for p in service["spec"]["ports"]}:
                errors.append(f"Service {service['metadata']['name']} has no port {port!r}")
    return errors


def _scaled_object(doc: Doc, docs: list[Doc]) -> list[str]:
    spec = doc.get("spec", {})
    allowed = {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval"}
    errors = _keys(spec, "spec", allowed | {"cooldownPeriod", "advanced", "triggers"})
    target = spec.get("scaleTargetRef", {}).get("name")
    deployments = {d["metadata"]["name"]: d for d in _of_kind(docs, "Deployment")}
    if target not in deployments:
        errors.append(f"scaleTargetRef {target!r} is no Deployment here")
    elif "replicas" in deployments[target]["spec"]:
        errors.append(f"Deployment {target} keeps spec.replicas, which would fight the HPA")
    config: dict[str, str] = next((c["data"] for c in _of_kind(docs, "ConfigMap")), {})
    partitions = int(config.get("TALLY_PARTITIONS", 6))
    if not 1 <= spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 0) <= partitions:
        errors.append(f"expected 1 <= minReplicaCount <= maxReplicaCount <= {partitions}")
    topics = {config.get("TALLY_TOPIC_COMMANDS", "ledger.commands")}
    topics.add(config.get("TALLY_TOPIC_TRANSFERS", "ledger.transfers"))
    for trigger in spec.get("triggers") or [{}]:
        errors += _kafka_trigger(trigger, config.get("TALLY_GROUP_ID", "tally"), topics)
    return errors


def _kafka_trigger(trigger: Doc, group: str, topics: set[str]) -> list[str]:
    meta = trigger.get("metadata", {})
    if trigger.get("type") != "kafka":
        return [f"trigger type {trigger.get('type')!r}, expected kafka"]
    required = ("bootstrapServers", "lagThreshold")
    errors = [f"kafka trigger without {k}" for k in required if k not in meta]
    if meta.get("consumerGroup") != group:
        errors.append(f"consumerGroup {meta.get('consumerGroup')!r}, TALLY_GROUP_ID is {group!r}")
    if meta.get("topic") not in topics:
        errors.append(f"topic {meta.get('topic')!r} is none of the worker's {sorted(topics)}")
    if not str(meta.get("lagThreshold", "")).isdigit():
        errors.append("lagThreshold must be a string of digits")
    return errors


def _keys(mapping: Doc, where: str, allowed: set[str]) -> list[str]:
    return [f"unexpected {where} field {k!r}" for k in sorted(set(mapping) - allowed)]


def _expressions_hold(expressions: list[Doc], obj: Doc) -> bool:
    labels = obj["metadata"].get("labels", {})
    # Only `In` is needed so far; any other operator fails the match rather than pass unread.
    return all(
        e.get("operator") == "In" and labels.get(e["key"]) in e.get("values", [])
        for e in expressions
    )


def _of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def _name(doc: Doc) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


CRDS: dict[tuple[str, str], Callable[[Doc, list[Doc]], list[str]]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _service_monitor,
    ("keda.sh/v1alpha1", "ScaledObject"): _scaled_object,
}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
