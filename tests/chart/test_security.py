"""Issue 8's chart checks: least-privilege RBAC, a restricted operator pod, opt-in-only injection."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.pss import pod_spec_of, violations

from .helm import CHART, NAMESPACE, SCENARIOS, find, one, render, require_helm, run_helm

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
        dangerous = {"escalate", "bind", "impersonate", "delete", "deletecollection"}
        if rule["apiGroups"] == ["keda.sh"]:  # spec.autoscaling removed: its own objects go
            dangerous.discard("delete")
        assert not dangerous & set(rule["verbs"]), f"{where}: needless dangerous verb {rule}"


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


def _env(manifests: list[dict[str, Any]]) -> dict[str, str]:
    container = pod_spec_of(one(manifests, "Deployment"))["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def _grants(manifests: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(kind, resource) -> verbs over every Role and ClusterRole."""
    grants: dict[tuple[str, str], set[str]] = {}
    for where, rule in _rules(manifests):
        for resource in rule["resources"]:
            grants.setdefault((where.split("/")[0], resource), set()).update(rule["verbs"])
    return grants


def test_rbac_by_values(helm: str) -> None:
    """Each right exists only when the values make the operator use it."""
    default = _grants(render(helm, {}))
    assert ("ClusterRole", "deployments") not in default  # rollout is off by default
    rollout = _grants(render(helm, SCENARIOS["rollout"]))
    assert rollout[("ClusterRole", "deployments")] == {"list", "patch"}
    assert rollout[("ClusterRole", "statefulsets")] == {"list", "patch"}
    for scenario, value in (({}, "false"), (SCENARIOS["rollout"], "true")):
        env = _env(render(helm, scenario))
        assert env["CARRIER_OPERATOR_ROLLOUT_ENABLED"] == value  # the operator knows, too
    namespaced = _grants(render(helm, {**SCENARIOS["namespaces"], **SCENARIOS["rollout"]}))
    assert namespaced[("Role", "deployments")] == {"list", "patch"}
    assert ("ClusterRole", "deployments") not in namespaced
    # The caBundle is cert-manager's job in that mode: no webhook-configuration rights at all.
    for mode in ("cert-manager", "cert-manager-issuer"):
        grants = _grants(render(helm, SCENARIOS[mode]))
        assert not [key for key in grants if "webhookconfigurations" in key[1]], mode
    # A validator that is not rendered is not patched either.
    unvalidated = _grants(render(helm, SCENARIOS["native-never"]))
    assert ("ClusterRole", "mutatingwebhookconfigurations") in unvalidated
    assert ("ClusterRole", "validatingwebhookconfigurations") not in unvalidated


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
    certificates = {c["metadata"]["name"]: c["spec"] for c in find(manifests, "Certificate")}
    issuers = {i["metadata"]["name"]: i["spec"] for i in find(manifests, "Issuer")}
    # self-signed Issuer -> CA Certificate (isCA) -> CA Issuer -> serving Certificate
    ca = certificates["carrier-operator-ca"]
    assert ca["isCA"] is True
    assert ca["privateKey"]["rotationPolicy"] == "Never"  # renewed CA trusts earlier leaves
    assert issuers[ca["issuerRef"]["name"]] == {"selfSigned": {}}
    leaf = certificates["carrier-operator"]
    assert "isCA" not in leaf
    assert leaf["dnsNames"][0] == f"carrier-operator.{NAMESPACE}.svc"
    ca_issuer = issuers[leaf["issuerRef"]["name"]]
    assert ca_issuer == {"ca": {"secretName": ca["secretName"]}}
    # The caBundle comes from the CA Certificate: a leaf renewal never changes it.
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        annotations = one(manifests, kind)["metadata"]["annotations"]
        assert annotations["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/carrier-operator-ca"
    pod = pod_spec_of(one(manifests, "Deployment"))
    (tls,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert tls["secret"]["secretName"] == leaf["secretName"]
    issued = render(helm, SCENARIOS["cert-manager-issuer"])
    assert not find(issued, "Issuer")
    (certificate,) = find(issued, "Certificate")
    assert certificate["spec"]["issuerRef"]["kind"] == "ClusterIssuer"
    ref = f"{NAMESPACE}/{certificate['metadata']['name']}"  # its ca.crt is the issuer's CA
    annotations = one(issued, "MutatingWebhookConfiguration")["metadata"]["annotations"]
    assert annotations["cert-manager.io/inject-ca-from"] == ref


def test_replicas_bring_leader_election_and_a_disruption_budget(helm: str) -> None:
    single = render(helm, {})
    assert not find(single, "PodDisruptionBudget")
    assert "leases" not in str(find(single, "Role")), "no Lease rights for one replica"
    assert not find(render(helm, SCENARIOS["pdb-off"]), "PodDisruptionBudget")
    manifests = render(helm, SCENARIOS["replicas-2"])
    assert one(manifests, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    container = pod_spec_of(one(manifests, "Deployment"))["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CARRIER_OPERATOR_LEADER_ELECTION"] == "true"
    assert env["CARRIER_OPERATOR_QUEUE_CHECK"] == "true"
    assert "POD_NAME" in env
    assert not [m for m in manifests if "kopf.dev" in str(m.get("apiVersion"))], "no peering"
    (leader_role,) = [m for m in find(manifests, "Role") if "leases" in str(m)]
    assert leader_role["metadata"]["namespace"] == "carrier-system"
    rules = {(r["resources"][0], tuple(r["verbs"])) for r in leader_role["rules"]}
    assert rules == {("leases", ("get", "patch")), ("leases", ("create",))}
    named = [r for r in leader_role["rules"] if "resourceNames" in r]
    assert named[0]["resourceNames"] == [env["CARRIER_OPERATOR_LEASE_NAME"]]


def test_availability_follows_the_replica_count(helm: str) -> None:
    single = pod_spec_of(one(render(helm, {}), "Deployment"))
    assert "affinity" not in single
    pair = pod_spec_of(one(render(helm, SCENARIOS["replicas-2"]), "Deployment"))
    (term,) = pair["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    labels = one(render(helm, SCENARIOS["replicas-2"]), "Deployment")["spec"]["selector"]
    assert term["podAffinityTerm"]["labelSelector"] == labels  # exactly this release's pods
    own = pod_spec_of(one(render(helm, SCENARIOS["scheduling"]), "Deployment"))
    assert own["affinity"] == SCENARIOS["scheduling"]["affinity"]  # the user's wins
    # A preStop delay so endpoints drop the pod before it stops answering admission requests,
    # inside a grace period that covers it.
    for pod in (single, pair):
        (container,) = pod["containers"]
        assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
        assert pod["terminationGracePeriodSeconds"] > 5
    none = pod_spec_of(one(render(helm, {"operator": {"preStopSeconds": 0}}), "Deployment"))
    assert "lifecycle" not in none["containers"][0]
    done = run_helm(
        helm, "template", "carrier", str(CHART), values={"operator": {"preStopSeconds": 40}}
    )
    assert done.returncode != 0
    assert (
        "terminationGracePeriodSeconds (30) must exceed operator.preStopSeconds (40)" in done.stderr
    )


def test_node_rights_only_when_the_injector_decides_from_nodes(helm: str) -> None:
    """``nativeSidecar: auto`` reads kubelet versions; ``always``/``never`` need no node access."""
    for mode, expected in (("auto", True), ("always", False), ("never", False)):
        rules = [rule for _, rule in _rules(render(helm, {"sidecar": {"nativeSidecar": mode}}))]
        nodes = [rule for rule in rules if "nodes" in rule["resources"]]
        assert bool(nodes) is expected, mode
        for rule in nodes:
            assert rule["verbs"] == ["get", "list", "watch"], rule
