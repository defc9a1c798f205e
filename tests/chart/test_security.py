"""Issue 8's chart checks: least-privilege RBAC, a restricted operator pod, opt-in-only injection."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.pss import pod_spec_of, violations

from .helm import NAMESPACE, SCENARIOS, find, one, render, require_helm

BINDING_LABEL = "carrier.amplify.security/binding"


def _rules(manifests: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{m['kind']}/{m['metadata'].get('namespace', '')}/{m['metadata']['name']}", rule)
        for m in manifests
        if m["kind"] in ("ClusterRole", "Role")
        for rule in m.get("rules") or ()
    ]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rbac_has_no_wildcards(helm: str, scenario: str) -> None:
    rules = _rules(render(helm, SCENARIOS[scenario]))
    assert bool(rules) == SCENARIOS[scenario].get("rbac", {}).get("create", True)
    for where, rule in rules:
        for key in ("verbs", "resources", "apiGroups", "resourceNames"):
            assert "*" not in (rule.get(key) or ()), f"{where}: wildcard in {key}: {rule}"
            assert not any("*" in item for item in rule.get(key) or ()), f"{where}: {rule}"
        assert not rule.get("nonResourceURLs"), f"{where}: nonResourceURLs {rule}"
        assert not {"escalate", "bind", "impersonate", "delete", "deletecollection"} & set(
            rule["verbs"]
        ), f"{where}: needless dangerous verb {rule}"


def test_rbac_grants_exactly_the_documented_rules(helm: str) -> None:
    """The cluster-wide install's permissions, resource by resource (update docs with this)."""
    grants = {}
    for where, rule in _rules(render(helm, {})):
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                names = tuple(rule.get("resourceNames") or ())
                grants[(where.split("/")[0], group, resource, names)] = set(rule["verbs"])
    cert = ("carrier-operator-webhook-tls",)
    assert grants == {
        ("ClusterRole", "carrier.amplify.security", "carrierbindings", ()): {
            "get",
            "list",
            "watch",
            "patch",
        },
        ("ClusterRole", "carrier.amplify.security", "carrierbindings/status", ()): {"get", "patch"},
        ("ClusterRole", "", "pods", ()): {"list", "watch"},
        ("ClusterRole", "apps", "deployments", ()): {"list", "patch"},
        ("ClusterRole", "apps", "statefulsets", ()): {"list", "patch"},
        ("ClusterRole", "", "events", ()): {"create"},
        ("ClusterRole", "apiextensions.k8s.io", "customresourcedefinitions", ()): {"list", "watch"},
        ("ClusterRole", "", "nodes", ()): {"get", "list", "watch"},
        (
            "ClusterRole",
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
            ("carrier-injector",),
        ): {"get", "patch"},
        (
            "ClusterRole",
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            ("carrier-validator",),
        ): {"get", "patch"},
        ("Role", "", "secrets", cert): {"get", "patch"},
        ("Role", "", "secrets", ()): {"create"},
    }


def test_secrets_only_in_the_release_namespace(helm: str) -> None:
    for scenario in SCENARIOS.values():
        manifests = render(helm, scenario)
        for where, rule in _rules(manifests):
            if "secrets" in rule["resources"]:
                assert where.startswith(f"Role/{NAMESPACE}/"), f"{where} grants secrets"
        if scenario.get("certManager", {}).get("enabled"):
            assert not [r for _, r in _rules(manifests) if "secrets" in r["resources"]]


def test_watched_namespaces_get_roles_not_a_cluster_role(helm: str) -> None:
    manifests = render(helm, SCENARIOS["namespaces"])
    cluster = one(manifests, "ClusterRole")
    cluster_resources = {r for rule in cluster["rules"] for r in rule["resources"]}
    assert not {"pods", "carrierbindings", "deployments"} & cluster_resources
    assert "namespaces" in cluster_resources  # kopf lists the namespaces it serves
    roles = {m["metadata"]["namespace"] for m in find(manifests, "Role") if "pods" in str(m)}
    assert roles == {"team-a", "team-b"}
    bindings = {m["metadata"]["namespace"] for m in find(manifests, "RoleBinding")}
    assert {"team-a", "team-b"} <= bindings


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_operator_pod_is_restricted(helm: str, scenario: str) -> None:
    deployment = one(render(helm, SCENARIOS[scenario]), "Deployment")
    assert violations(pod_spec_of(deployment)) == []
    container = pod_spec_of(deployment)["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert isinstance(container["securityContext"]["runAsUser"], int)
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]


def test_the_pss_checker_catches_each_breach() -> None:
    """Guards the test above: every relaxation of the chart's pod is reported."""
    good = pod_spec_of(one(render_default(), "Deployment"))
    assert violations(good) == []
    breaches: dict[str, dict[str, Any]] = {
        "allowPrivilegeEscalation": {"allowPrivilegeEscalation": True},
        "capabilities.drop": {"capabilities": {"drop": []}},
        "capabilities.add": {"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}},
        "privileged": {"privileged": True},
        "runAsUser": {"runAsUser": 0},
        "runAsNonRoot": {"runAsNonRoot": False},
        "seccompProfile": {"seccompProfile": {"type": "Unconfined"}},
    }
    for needle, change in breaches.items():
        pod = _with_container_context(good, change)
        assert any(needle in v for v in violations(pod)), needle
    host = {**good, "hostNetwork": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}
    assert len(violations(host)) == 2


def render_default() -> list[dict[str, Any]]:
    return render(require_helm(4), {})


def _with_container_context(pod: Any, change: dict[str, Any]) -> dict[str, Any]:
    container = dict(pod["containers"][0])
    container["securityContext"] = {**container["securityContext"], **change}
    return {**pod, "containers": [container]}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_injector_only_sees_opted_in_pods(helm: str, scenario: str) -> None:
    manifests = render(helm, SCENARIOS[scenario])
    (hook,) = one(manifests, "MutatingWebhookConfiguration")["webhooks"]
    assert hook["objectSelector"] == {
        "matchExpressions": [{"key": BINDING_LABEL, "operator": "Exists"}]
    }
    assert hook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    excluded = hook["namespaceSelector"]["matchExpressions"][0]
    assert excluded["key"] == "kubernetes.io/metadata.name"
    assert excluded["operator"] == "NotIn"
    assert {NAMESPACE, "kube-system"} <= set(excluded["values"])
    assert "caBundle" not in hook["clientConfig"]  # patched by the operator or cert-manager


def test_webhook_options_reach_the_configuration(helm: str) -> None:
    (hook,) = one(render(helm, {}), "MutatingWebhookConfiguration")["webhooks"]
    assert (hook["failurePolicy"], hook["reinvocationPolicy"], hook["timeoutSeconds"]) == (
        "Fail",
        "IfNeeded",
        10,
    )
    (hook,) = one(render(helm, SCENARIOS["fail-open"]), "MutatingWebhookConfiguration")["webhooks"]
    assert (hook["failurePolicy"], hook["reinvocationPolicy"]) == ("Ignore", "Never")
    (hook,) = one(render(helm, SCENARIOS["namespaces"]), "MutatingWebhookConfiguration")["webhooks"]
    assert hook["namespaceSelector"]["matchExpressions"][1] == {
        "key": "kubernetes.io/metadata.name",
        "operator": "In",
        "values": ["team-a", "team-b"],
    }
    assert not find(render(helm, SCENARIOS["native-never"]), "ValidatingWebhookConfiguration")
    (validator,) = one(render(helm, {}), "ValidatingWebhookConfiguration")["webhooks"]
    assert validator["rules"][0]["resources"] == ["carrierbindings"]  # not the status subresource
    assert validator["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert validator["clientConfig"]["service"]["path"] == "/validate-carrierbindings"
    assert "oldObject.spec != object.spec" in validator["matchConditions"][0]["expression"]


def test_cert_manager_wiring(helm: str) -> None:
    manifests = render(helm, SCENARIOS["cert-manager"])
    certificate = one(manifests, "Certificate")
    assert certificate["spec"]["dnsNames"][0] == f"carrier-operator.{NAMESPACE}.svc"
    ref = f"{NAMESPACE}/{certificate['metadata']['name']}"
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        assert (
            one(manifests, kind)["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == ref
        )
    pod = pod_spec_of(one(manifests, "Deployment"))
    (tls,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert tls["secret"]["secretName"] == certificate["spec"]["secretName"]
    assert one(manifests, "Issuer")["spec"] == {"selfSigned": {}}
    issued = render(helm, SCENARIOS["cert-manager-issuer"])
    assert not find(issued, "Issuer")
    assert one(issued, "Certificate")["spec"]["issuerRef"]["kind"] == "ClusterIssuer"


def test_replicas_bring_peering_and_a_disruption_budget(helm: str) -> None:
    assert not find(render(helm, {}), "PodDisruptionBudget")
    assert find(render(helm, SCENARIOS["pdb"]), "PodDisruptionBudget")
    manifests = render(helm, SCENARIOS["replicas-2"])
    assert one(manifests, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert one(manifests, "ClusterKopfPeering")
    env = {
        e["name"]: e["value"]
        for e in pod_spec_of(one(manifests, "Deployment"))["containers"][0]["env"]
    }
    assert env["CARRIER_OPERATOR_PEERING"] == "true"
    namespaced = render(helm, SCENARIOS["namespaces"])
    assert {m["metadata"]["namespace"] for m in find(namespaced, "KopfPeering")} == {
        "team-a",
        "team-b",
    }


def test_node_rights_only_when_the_injector_decides_from_nodes(helm: str) -> None:
    """``nativeSidecar: auto`` reads kubelet versions; ``always``/``never`` need no node access."""
    for mode, expected in (("auto", True), ("always", False), ("never", False)):
        rules = [rule for _, rule in _rules(render(helm, {"sidecar": {"nativeSidecar": mode}}))]
        nodes = [rule for rule in rules if "nodes" in rule["resources"]]
        assert bool(nodes) is expected, mode
        for rule in nodes:
            assert rule["verbs"] == ["get", "list", "watch"], rule
