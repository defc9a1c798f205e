"""End to end on kind: the chart, the injector, the sidecar and the operator against in-cluster SQS.

One story, in order: messages sent to a queue reach a labelled worker through the injected
sidecar and the queue drains; a probe flood from another pod restarts nothing; a binding change rolls the worker out with the new settings; a
pod deleted with messages in flight loses none of them, and (the worker's preStop draining the
sidecar first) receives none of them twice.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.pss import violations

from .kube import Kube, poll
from .manifests import APP_NS, BINDING, FLOODER, QUEUE, RECORDS, TAG, binding, flooder, worker
from .records import read_records, send_ids

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def deployed(kube: Kube, cluster_sqs: Any, sqs_endpoint: str) -> str:
    """Queues, a CarrierBinding (Ready), and a labelled worker Deployment with its sidecar."""
    for name in (QUEUE, RECORDS):
        cluster_sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "10"})
    kube.apply(binding(sqs_endpoint, batch_size=10))
    # Pods of a binding that is not Ready yet are denied (onMissingBinding: deny): wait first.
    poll(lambda: _ready(kube), timeout=120, what="the binding to be Ready")
    kube.apply(*worker(sqs_endpoint))
    kube("-n", APP_NS, "rollout", "status", "deployment/worker", "--timeout=180s", timeout=200)
    return "worker"


def test_injected_pod_runs_the_sidecar_under_restricted_pss(kube: Kube, deployed: str) -> None:
    pod = _worker_pods(kube)[0]
    containers = pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
    (sidecar,) = [c for c in containers if c["name"] == "carrier"]
    assert sidecar["image"] == f"carrier-sidecar:{TAG}"
    env = {e["name"]: e.get("value") for e in sidecar.get("env", [])}
    assert env["CARRIER_SQS_QUEUE_NAME"] == QUEUE
    assert violations(pod["spec"]) == []  # and the namespace enforces it for real


def test_messages_arrive_and_the_queue_drains(cluster_sqs: Any, deployed: str) -> None:
    ids = send_ids(cluster_sqs, QUEUE, 30)
    _expect_delivered(cluster_sqs, ids, timeout=180)


def test_a_probe_flood_from_another_pod_restarts_nothing(
    kube: Kube, cluster_sqs: Any, deployed: str
) -> None:
    """The probe port listens on the pod IP: a pod elsewhere floods it (1 000 GETs a second),
    as the kubelet's own probes go on. The sidecar's probe process takes the flood, so the
    kubelet restarts nothing and the messages sent meanwhile arrive."""
    pod = _worker_pods(kube)[0]
    restarts = _sidecar_restarts(pod)
    kube.apply(*flooder(pod["status"]["podIP"], 9102, seconds=40))
    try:
        ids = send_ids(cluster_sqs, QUEUE, 20, sleep=1)
        _expect_delivered(cluster_sqs, ids, timeout=180)
        poll(
            lambda: kube.get("-n", APP_NS, "pod", FLOODER)["status"].get("phase") == "Succeeded",
            timeout=120,
            what="the flood to end",
        )
        seen = json.loads(kube("-n", APP_NS, "logs", FLOODER).strip().splitlines()[-1])
        assert seen.get("200", 0) >= 10_000, f"the flood reached the port: {seen}"
        now = kube.get("-n", APP_NS, "pod", pod["metadata"]["name"])
        assert _sidecar_restarts(now) == restarts, "the kubelet restarted the sidecar"
        assert now["status"].get("phase") == "Running"
    finally:
        kube("-n", APP_NS, "delete", "pod,configmap", FLOODER, "--ignore-not-found", "--wait=false")


def test_binding_change_rolls_the_worker_out(
    kube: Kube, cluster_sqs: Any, deployed: str, sqs_endpoint: str
) -> None:
    before = {p["metadata"]["name"] for p in _worker_pods(kube)}
    kube.apply(binding(sqs_endpoint, batch_size=5))

    def rolled() -> bool:
        pods = _worker_pods(kube)
        return bool(pods) and all(
            p["metadata"]["name"] not in before
            and _sidecar_env(p).get("CARRIER_SQS_BATCH_SIZE") == "5"
            and p["status"].get("phase") == "Running"
            for p in pods
        )

    poll(rolled, timeout=240, what="the worker to roll out with batchSize 5")
    _expect_delivered(cluster_sqs, send_ids(cluster_sqs, QUEUE, 10), timeout=180)


def test_pod_deletion_with_messages_in_flight_loses_nothing(
    kube: Kube, cluster_sqs: Any, deployed: str
) -> None:
    ids = send_ids(cluster_sqs, QUEUE, 12, sleep=3)
    url = cluster_sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    poll(
        lambda: int(_attributes(cluster_sqs, url)["ApproximateNumberOfMessagesNotVisible"]) > 0,
        timeout=60,
        what="messages in flight",
        every=0.5,
    )
    pod = _worker_pods(kube)[0]["metadata"]["name"]
    kube("-n", APP_NS, "delete", "pod", pod, "--wait=false")
    _expect_delivered(cluster_sqs, ids, timeout=300)


def test_pod_deletion_drains_the_sidecar_before_the_worker_stops(
    kube: Kube, cluster_sqs: Any, deployed: str
) -> None:
    """The worker's injected preStop drains the sidecar first: the deleted pod's in-flight
    deliveries finish against a running worker, nothing is POSTed to a stopping one, so no
    message fails and comes back: the deleted pod's deliveries carry receive count 1, and only
    its unposted prefetch (at most one batch) is received a second time, by the next pod."""
    pod = _worker_pods(kube)[0]
    worker = next(c for c in pod["spec"]["containers"] if c["name"] == "worker")
    hook = worker["lifecycle"]["preStop"]["httpGet"]
    assert hook["path"] == "/drain"
    assert hook["httpHeaders"][0]["value"] == _sidecar_env(pod)["CARRIER_DRAIN_TOKEN"]

    ids = send_ids(cluster_sqs, QUEUE, 20, sleep=3)
    url = cluster_sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    poll(
        lambda: int(_attributes(cluster_sqs, url)["ApproximateNumberOfMessagesNotVisible"]) > 0,
        timeout=60,
        what="messages in flight",
        every=0.5,
    )
    name = pod["metadata"]["name"]
    kube("-n", APP_NS, "delete", "pod", name, "--wait=false")
    records = _expect_delivered(cluster_sqs, ids, timeout=300)
    ours = [r for r in records if r["id"] in ids]
    assert len(ours) == len(ids), "a message was delivered twice"
    # Delivered by the deleted pod: first receive. Taken over by the next pod: at most the
    # deleted pod's unposted prefetch (released at the drain, one receive counted), never a
    # message that failed against the stopping worker.
    by_deleted = [r for r in ours if r["pod"] == name]
    assert by_deleted, "the deleted pod finished its in-flight deliveries itself"
    assert {r["receive_count"] for r in by_deleted} == {"1"}, by_deleted
    taken_over = [r for r in ours if r["pod"] != name and r["receive_count"] != "1"]
    assert {r["receive_count"] for r in taken_over} <= {"2"}, taken_over
    batch = int(_sidecar_env(pod).get("CARRIER_SQS_BATCH_SIZE") or "1")
    assert len(taken_over) <= batch, f"more than one batch ({batch}) received twice"


# --- helpers ---------------------------------------------------------------------------------


def _ready(kube: Kube) -> bool:
    binding = kube.get("-n", APP_NS, "carrierbinding", BINDING)
    conditions = binding.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _worker_pods(kube: Kube) -> list[dict[str, Any]]:
    pods = kube.get("-n", APP_NS, "pods", "-l", "app=worker")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _sidecar_env(pod: dict[str, Any]) -> dict[str, str]:
    containers = pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
    for container in containers:
        if container["name"] == "carrier":
            return {e["name"]: e.get("value", "") for e in container.get("env", [])}
    return {}


def _sidecar_restarts(pod: dict[str, Any]) -> int:
    status = pod["status"]
    statuses = status.get("initContainerStatuses", []) + status.get("containerStatuses", [])
    return sum(int(s.get("restartCount", 0)) for s in statuses if s["name"] == "carrier")


def _attributes(cluster_sqs: Any, url: str) -> dict[str, str]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    return dict(cluster_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"])


def _expect_delivered(cluster_sqs: Any, ids: set[str], timeout: float) -> list[dict[str, Any]]:
    """Every id recorded by a worker at least once, then the queue empty (nothing invisible);
    returns the records read (id, pod, receive_count)."""
    read = read_records(cluster_sqs, ids, timeout=timeout, what=f"{len(ids)} messages to arrive")
    url = cluster_sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    poll(
        lambda: (
            _attributes(cluster_sqs, url)
            == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
        ),
        timeout=60,
        what="the queue to drain",
    )
    return read
