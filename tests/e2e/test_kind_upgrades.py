"""End to end on kind, after test_kind.py's story: the same release upgraded in place.

1. Two operator replicas: a binding created after they started is Ready, its pods are admitted
   (whichever replica the Service picks: each must know the binding), and its messages arrive.
2. cert-manager mode (cert-manager installed from its release manifest, version from
   CARRIER_E2E_CERT_MANAGER, which the workflow sets): the caBundle is the CA; the leaf is
   renewed while pods keep being admitted, and the caBundle never changes.
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

import pytest

from .kube import ROOT, Kube, poll, run, tool
from .manifests import APP_NS, LABEL, SYSTEM_NS, binding, labelled_pod, worker
from .records import read_records, send_ids

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

LATE = "late"
LATE_QUEUE = "e2e-late"
CERT_MANAGER = "CARRIER_E2E_CERT_MANAGER"  # e.g. v1.16.2


def _upgrade(kube: Kube, *sets: str) -> None:
    args = [arg for value in sets for arg in ("--set", value)]
    run(
        str(tool("helm")),
        "--kubeconfig",
        str(kube.kubeconfig),
        "upgrade",
        "carrier",
        str(ROOT / "charts/carrier"),
        "--namespace",
        SYSTEM_NS,
        "--reuse-values",
        "--wait",
        "--timeout",
        "300s",
        *args,
        timeout=360,
    )
    kube("-n", SYSTEM_NS, "rollout", "status", "deployment/carrier-operator", "--timeout=240s")


def _admitted_with_sidecar(kube: Kube, binding_name: str) -> bool:
    """A labelled pod through the real admission chain (server-side dry run): sidecar injected."""
    created = json.loads(
        kube(
            "create",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            "-",
            input=json.dumps(labelled_pod(binding_name)),
        )
    )
    spec = created["spec"]
    names = [c["name"] for c in spec.get("initContainers", []) + spec["containers"]]
    return "carrier" in names


def _ready(kube: Kube, name: str) -> bool:
    found = kube.get("-n", APP_NS, "carrierbinding", name)
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in found.get("status", {}).get("conditions", [])
    )


def _deliver(cluster_sqs: Any, queue: str, count: int, timeout: float) -> None:
    ids = send_ids(cluster_sqs, queue, count)
    read_records(cluster_sqs, ids, timeout=timeout, what=f"{count} messages through {queue}")


def test_two_replicas_admit_pods_of_a_binding_created_after_start(
    kube: Kube, release: str, cluster_sqs: Any, sqs_endpoint: str
) -> None:
    _upgrade(kube, "replicaCount=2")
    operators = kube.get("-n", SYSTEM_NS, "deployment", "carrier-operator")
    assert operators["status"].get("readyReplicas") == 2
    assert kube.get("-n", SYSTEM_NS, "pdb", "carrier-operator")["spec"]["minAvailable"] == 1
    cluster_sqs.create_queue(QueueName=LATE_QUEUE, Attributes={"VisibilityTimeout": "10"})
    kube.apply(binding(sqs_endpoint, batch_size=1, name=LATE, queue=LATE_QUEUE))
    poll(lambda: _ready(kube, LATE), timeout=120, what="the late binding to be Ready")
    # Every replica must admit it: ten trips, spread by the Service over both.
    for _attempt in range(10):
        assert _admitted_with_sidecar(kube, LATE)
    kube.apply(*worker(sqs_endpoint, name="late-worker", binding_name=LATE, replicas=2))
    kube("-n", APP_NS, "rollout", "status", "deployment/late-worker", "--timeout=180s", timeout=200)
    pods = kube.get("-n", APP_NS, "pods", "-l", f"{LABEL}={LATE}")["items"]
    assert len([p for p in pods if not p["metadata"].get("deletionTimestamp")]) == 2
    _deliver(cluster_sqs, LATE_QUEUE, 10, timeout=180)


def _ca_bundle(kube: Kube) -> str:
    hook = kube.get("mutatingwebhookconfiguration", "carrier-injector")["webhooks"][0]
    return str(hook["clientConfig"].get("caBundle", ""))


def _secret(kube: Kube, name: str) -> dict[str, str]:
    return dict(kube.get("-n", SYSTEM_NS, "secret", name)["data"])


def test_cert_manager_leaf_renewal_keeps_admitting(kube: Kube, release: str) -> None:
    version = os.environ.get(CERT_MANAGER)
    if not version:
        pytest.skip(f"{CERT_MANAGER} (a cert-manager release, e.g. v1.16.2) is not set")
    manifest = f"https://github.com/cert-manager/cert-manager/releases/download/{version}/cert-manager.yaml"
    kube("apply", "-f", manifest, timeout=180)
    for name in ("cert-manager", "cert-manager-cainjector", "cert-manager-webhook"):
        kube("-n", "cert-manager", "rollout", "status", f"deployment/{name}", "--timeout=240s")
    poll(  # cert-manager's own webhook answers before its resources can be created
        lambda: _try_upgrade(kube), timeout=180, what="the upgrade to cert-manager mode"
    )
    ca = _secret(kube, "carrier-operator-ca")["ca.crt"]
    poll(lambda: _ca_bundle(kube) == ca, timeout=180, what="the CA injected as the caBundle")
    poll(lambda: _admitted_with_sidecar(kube, LATE), timeout=120, what="admission over the CA")

    old_leaf = _secret(kube, "carrier-operator-webhook-tls")["tls.crt"]
    kube(
        "-n", SYSTEM_NS, "delete", "secret", "carrier-operator-webhook-tls"
    )  # cert-manager reissues
    failures: list[str] = []
    deadline = time.monotonic() + 300
    renewed_and_served = 0
    while time.monotonic() < deadline and renewed_and_served < 5:
        try:
            admitted = _admitted_with_sidecar(kube, LATE)
        except AssertionError as exc:
            failures.append(str(exc)[:300])
        else:
            if not admitted:
                failures.append("admitted without the sidecar")
        if _served_renewed(kube, old_leaf):
            renewed_and_served += 1  # a few more admissions once every replica serves it
        time.sleep(1)
    assert renewed_and_served >= 5, "the renewed leaf was not served within 300 s"
    assert failures == []
    assert _ca_bundle(kube) == ca  # a leaf renewal never touched the caBundle


def _try_upgrade(kube: Kube) -> bool:
    _upgrade(kube, "certManager.enabled=true")
    return True


def _served_renewed(kube: Kube, old_leaf: str) -> bool:
    """The Secret holds a new leaf and every operator replica logged serving it."""
    try:
        leaf = _secret(kube, "carrier-operator-webhook-tls")["tls.crt"]
    except AssertionError:
        return False  # not reissued yet
    if leaf == old_leaf:
        return False
    pods = kube.get("-n", SYSTEM_NS, "pods", "-l", "app.kubernetes.io/component=operator")["items"]
    for pod in pods:
        logs = kube("-n", SYSTEM_NS, "logs", pod["metadata"]["name"], "--since=10m")
        if "Serving the renewed certificate" not in logs:
            return False
    return bool(pods) and base64.b64decode(leaf) != base64.b64decode(old_leaf)
