"""End to end on kind: autoscaling from the binding with a real KEDA (issue 16 §3).

KEDA is installed from its Helm chart (version from CARRIER_E2E_KEDA, which the workflow sets;
unset, the test skips, which CARRIER_E2E_REQUIRED=1 turns into a failure). The in-cluster moto
is the SQS KEDA's aws-sqs-queue scaler reads (``awsEndpoint`` from the binding's endpoint), with
static keys from a TriggerAuthentication. A binding with minReplicas 0 and maxReplicas 4 gets a
ScaledObject; 200 messages scale its worker up, drain, and the worker returns to zero. Deleting
the binding lets the API server's garbage collector delete the ScaledObject (ownerReference).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from .kube import Kube, poll, run, tool
from .manifests import (
    APP_NS,
    SCALED,
    SCALED_QUEUE,
    SCALED_WORKER,
    keda_auth,
    scaled_binding,
    worker,
)
from .records import read_records, send_ids

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

KEDA_VERSION = "CARRIER_E2E_KEDA"  # a kedacore/keda chart version, e.g. 2.16.1
KEDA_CHARTS = "https://kedacore.github.io/charts"
MESSAGES = 200


@pytest.fixture(scope="module")
def keda(kube: Kube, release: str) -> Iterator[str]:
    version = os.environ.get(KEDA_VERSION)
    if not version:
        pytest.skip(f"{KEDA_VERSION} (a KEDA chart version, e.g. 2.16.1) is not set")
    helm = str(tool("helm"))
    base = [helm, "--kubeconfig", str(kube.kubeconfig)]
    run(
        *base,
        "install",
        "keda",
        "keda",
        "--repo",
        KEDA_CHARTS,
        "--version",
        version,
        "--namespace",
        "keda",
        "--create-namespace",
        "--wait",
        "--timeout",
        "300s",
        timeout=420,
    )
    yield version
    run(*base, "uninstall", "keda", "--namespace", "keda", "--wait", timeout=300, check=False)


def test_worker_scales_up_drains_and_returns_to_zero(
    kube: Kube, cluster_sqs: Any, keda: str, sqs_endpoint: str
) -> None:
    cluster_sqs.create_queue(QueueName=SCALED_QUEUE, Attributes={"VisibilityTimeout": "30"})
    kube.apply(*keda_auth())
    kube.apply(scaled_binding(sqs_endpoint))
    poll(lambda: _condition(kube, "Ready") == "True", timeout=120, what="the binding Ready")
    kube.apply(*worker(sqs_endpoint, name=SCALED_WORKER, binding_name=SCALED, replicas=0))

    poll(
        lambda: _condition(kube, "Autoscaling") == "True",
        timeout=120,
        what="Autoscaling=True (the ScaledObject applied)",
    )
    poll(lambda: _keda_ready(kube), timeout=180, what="KEDA to report the ScaledObject Ready")
    owner = kube.get("-n", APP_NS, "scaledobject", SCALED)["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("CarrierBinding", SCALED, True)
    assert _replicas(kube) == 0  # idle queue, minReplicas 0

    ids = send_ids(cluster_sqs, SCALED_QUEUE, MESSAGES, sleep=3)
    seen: list[int] = []

    def scaled_up() -> bool:
        seen.append(_replicas(kube))
        return seen[-1] >= 2

    poll(scaled_up, timeout=300, what="KEDA to scale the worker past one replica")
    poll(
        lambda: int(_status(kube).get("desiredReplicas") or 0) >= 2,
        timeout=120,
        what="status.autoscaling.desiredReplicas from KEDA's HPA",
    )
    _expect_delivered(cluster_sqs, ids, seen, kube, timeout=900)
    assert max(seen) <= 4, f"maxReplicas 4 exceeded: {max(seen)}"
    url = cluster_sqs.get_queue_url(QueueName=SCALED_QUEUE)["QueueUrl"]
    poll(
        lambda: _depth(cluster_sqs, url) == 0,
        timeout=120,
        what="the queue to drain (nothing visible or in flight)",
    )
    # Back to zero: HPA's scale-down stabilisation (300 s) to 1, then KEDA's cooldown (30 s).
    poll(lambda: _replicas(kube) == 0, timeout=900, what="the worker back at zero replicas")
    poll(
        lambda: _status(kube).get("currentReplicas") == 0,
        timeout=120,
        what="status.autoscaling.currentReplicas 0",
    )

    kube("-n", APP_NS, "delete", "carrierbinding", SCALED, "--wait=true", timeout=120)
    poll(
        lambda: SCALED not in kube("-n", APP_NS, "get", "scaledobjects", "-o", "name"),
        timeout=120,
        what="the ScaledObject garbage-collected with its binding",
    )


# --- helpers ---------------------------------------------------------------------------------
def _binding(kube: Kube) -> dict[str, Any]:
    return kube.get("-n", APP_NS, "carrierbinding", SCALED)


def _condition(kube: Kube, kind: str) -> str | None:
    for item in _binding(kube).get("status", {}).get("conditions", []):
        if item["type"] == kind:
            return str(item["status"])
    return None


def _status(kube: Kube) -> dict[str, Any]:
    return dict(_binding(kube).get("status", {}).get("autoscaling") or {})


def _keda_ready(kube: Kube) -> bool:
    obj = kube.get("-n", APP_NS, "scaledobject", SCALED)
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in obj.get("status", {}).get("conditions", [])
    )


def _replicas(kube: Kube) -> int:
    deployment = kube.get("-n", APP_NS, "deployment", SCALED_WORKER)
    return int(deployment["spec"].get("replicas") or 0)


def _depth(cluster_sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = cluster_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attrs[name]) for name in names)


def _expect_delivered(
    cluster_sqs: Any, ids: set[str], seen: list[int], kube: Kube, timeout: float
) -> None:
    """Every id recorded by a worker; the replica count is sampled meanwhile, for the
    maxReplicas check."""
    read_records(
        cluster_sqs,
        ids,
        timeout=timeout,
        what=f"{MESSAGES} messages delivered",
        on_poll=lambda: seen.append(_replicas(kube)),
    )
