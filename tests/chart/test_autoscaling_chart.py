"""The chart's autoscaling switch: KEDA rights, the operator's setting and the depth port, only on
request (values ``autoscaling.enabled``)."""

from __future__ import annotations

from typing import Any

from tests.support.pss import pod_spec_of

from .helm import SCENARIOS, one, render

KEDA = {
    ("keda.sh", "scaledobjects"): {"get", "list", "create", "patch", "delete"},
    ("keda.sh", "triggerauthentications"): {"get", "create", "patch", "delete"},
    ("autoscaling", "horizontalpodautoscalers"): {"get", "list"},
    ("apps", "deployments"): {"get"},
    ("apps", "statefulsets"): {"get"},
}


def _grants(manifests: list[dict[str, Any]], kind: str) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for m in manifests:
        if m["kind"] != kind:
            continue
        for rule in m.get("rules") or ():
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    found.setdefault((group, resource), set()).update(rule["verbs"])
    return found


def _env(manifests: list[dict[str, Any]]) -> dict[str, str]:
    container = pod_spec_of(one(manifests, "Deployment"))["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def _service_ports(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return {p["name"]: p for p in one(manifests, "Service")["spec"]["ports"]}


def test_off_by_default_no_keda_rights(helm: str) -> None:
    manifests = render(helm, {})
    grants = _grants(manifests, "ClusterRole")
    assert not {key for key in KEDA if key in grants}
    assert _env(manifests)["CARRIER_OPERATOR_AUTOSCALING"] == "false"
    assert set(_service_ports(manifests)) == {"https", "http-metrics"}


def test_enabled_grants_exactly_the_keda_rules_and_the_depth_port(helm: str) -> None:
    manifests = render(helm, SCENARIOS["autoscaling"])
    grants = _grants(manifests, "ClusterRole")
    assert {key: grants[key] for key in KEDA} == KEDA
    assert _env(manifests)["CARRIER_OPERATOR_AUTOSCALING"] == "true"
    http = _service_ports(manifests)["http-metrics"]  # /metrics and the depth endpoint
    assert (http["port"], http["targetPort"]) == (8080, "health")


def test_with_watched_namespaces_the_rights_are_per_namespace(helm: str) -> None:
    manifests = render(helm, {**SCENARIOS["namespaces"], **SCENARIOS["autoscaling"]})
    assert ("keda.sh", "scaledobjects") not in _grants(manifests, "ClusterRole")
    roles = [m for m in manifests if m["kind"] == "Role" and m["metadata"]["namespace"] == "team-a"]
    granted = _grants(roles, "Role")
    assert {key: granted[key] for key in KEDA} == KEDA
