"""Thousands of pods (issue 11 §2): the operator asks the API server only for labelled pods.

The fake API holds 10 000 unlabelled pods and 200 labelled ones across bindings and namespaces
(some finished, some being deleted). Every pod list and watch carries the binding-label
selector, lists come in pages, and the bound-pod counts in status are right and follow
later changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from carrier_operator.binding import BINDING_LABEL
from carrier_operator.config import OperatorSettings
from carrier_operator.pods import PAGE_SIZE
from tests.support.kube import (
    BINDINGS,
    PODS,
    FakeKube,
    binding_object,
    fake_kube,
    pod_object,
    running_operator,
)
from tests.support.kube_access import OPERATOR
from tests.support.servers import MotoServer, eventually, free_port

NAMESPACES = ("team-a", "team-b", "team-c")
BOUND = {("team-a", "orders"), ("team-a", "payments"), ("team-b", "orders"), ("team-c", "reports")}
UNLABELLED = 10_000
LABELLED = 200


def _labelled_pods() -> tuple[list[dict[str, Any]], Counter[tuple[str, str]]]:
    """200 labelled pods: live ones counted per binding; every 10th finished, every 15th
    being deleted, a few for a binding that does not exist."""
    pods: list[dict[str, Any]] = []
    live: Counter[tuple[str, str]] = Counter()
    keys = [*sorted(BOUND), ("team-b", "missing")]
    for i in range(LABELLED):
        namespace, binding = keys[i % len(keys)]
        phase = ("Succeeded" if i % 20 else "Failed") if i % 10 == 0 else "Running"
        pod = pod_object(namespace, f"{binding}-{i:03d}", binding, phase=phase)
        deleting = i % 15 == 0 and phase == "Running"
        if deleting:
            pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
            pod["metadata"]["finalizers"] = ["example.com/hold"]
        if phase == "Running" and not deleting:
            live[(namespace, binding)] += 1
        pods.append(pod)
    return pods, live


def _unlabelled_pods() -> list[dict[str, Any]]:
    return [
        pod_object(NAMESPACES[i % len(NAMESPACES)], f"plain-{i:05d}", None)
        for i in range(UNLABELLED)
    ]


def _spec(moto: MotoServer) -> dict[str, Any]:
    # The queue need not exist: pod counts are reported whatever the queue's state.
    return {
        "queue": {"name": "scale-q", "region": "us-east-1", "endpoint": moto.endpoint},
        "webhook": {"port": 8080, "path": "/jobs"},
    }


def _bound(kube: FakeKube, namespace: str, name: str) -> Any:
    return kube.status(BINDINGS, namespace, name).get("boundPods")


def _reports(kube: FakeKube, namespace: str, name: str, want: int) -> Callable[[], bool]:
    return lambda: _bound(kube, namespace, name) == want


def _pod_requests(kube: FakeKube) -> list[Any]:
    return [
        entry
        for entry in kube.served("GET", user=OPERATOR.user)
        if entry.path.endswith("/pods") and entry.verb in {"list", "watch"}
    ]


@pytest.fixture
async def crowded() -> AsyncIterator[tuple[FakeKube, Counter[tuple[str, str]]]]:
    labelled, live = _labelled_pods()
    async with fake_kube(namespaces=NAMESPACES) as kube:
        assert kube.load(PODS, _unlabelled_pods()) == UNLABELLED
        assert kube.load(PODS, labelled) == LABELLED
        yield kube, live


def _config(**extra: Any) -> OperatorSettings:
    return OperatorSettings(
        log_format="plain",
        queue_check_interval=0.5,
        liveness_port=free_port(),
        webhook_port=free_port(),
        **extra,
    )


async def _bind_all(kube: FakeKube, moto: MotoServer) -> None:
    for namespace, name in sorted(BOUND):
        await kube.create(BINDINGS, binding_object(namespace, name, _spec(moto)))


async def _counts_right(kube: FakeKube, live: Counter[tuple[str, str]]) -> None:
    for namespace, name in sorted(BOUND):
        want = live[(namespace, name)]
        await eventually(
            _reports(kube, namespace, name, want), 30, f"{namespace}/{name}: {want} bound pods"
        )


async def test_only_labelled_pods_are_asked_for_and_counted(
    crowded: tuple[FakeKube, Counter[tuple[str, str]]], moto: MotoServer
) -> None:
    kube, live = crowded
    async with running_operator(_config()):
        await _bind_all(kube, moto)
        await _counts_right(kube, live)
        names = kube.status(BINDINGS, "team-a", "orders")["boundPodNames"]
        assert all(name.startswith("orders-") for name in names)

        requests = _pod_requests(kube)
        assert {entry.verb for entry in requests} == {"list", "watch"}
        for entry in requests:
            assert entry.query.get("labelSelector") == BINDING_LABEL, entry
            assert entry.status == 200, entry
            if entry.verb == "list":
                assert entry.query.get("limit") == str(PAGE_SIZE), entry
        assert [e.path for e in requests] == ["/api/v1/pods", "/api/v1/pods"]  # one list, one watch

        # Later changes reach the counts through the watch.
        await kube.create(PODS, pod_object("team-c", "reports-new", "reports"))
        await eventually(
            lambda: _bound(kube, "team-c", "reports") == live["team-c", "reports"] + 1, 30, "+1"
        )
        await kube.delete(PODS, "team-a", "orders-005")
        await eventually(
            lambda: _bound(kube, "team-a", "orders") == live["team-a", "orders"] - 1, 30, "-1"
        )
        await kube.patch(PODS, "team-b", "orders-002", {"status": {"phase": "Succeeded"}})
        await eventually(
            lambda: _bound(kube, "team-b", "orders") == live["team-b", "orders"] - 1, 30, "done"
        )
        await kube.create(PODS, pod_object("team-a", "plain-late", None))  # never counted
        assert _bound(kube, "team-a", "payments") == live["team-a", "payments"]


async def test_namespaced_mode_lists_and_watches_each_namespace(
    moto: MotoServer,
) -> None:
    labelled, live = _labelled_pods()
    values = {"operator": {"namespaces": ["team-a", "team-c"]}}
    async with fake_kube(namespaces=NAMESPACES, chart_values=values) as kube:
        kube.load(PODS, _unlabelled_pods())
        kube.load(PODS, labelled)
        async with running_operator(_config(namespaces="team-a,team-c")):
            for namespace, name in sorted(BOUND):
                await kube.create(BINDINGS, binding_object(namespace, name, _spec(moto)))
            watched = {key: n for key, n in live.items() if key[0] in {"team-a", "team-c"}}
            for (namespace, name), want in sorted(watched.items()):
                await eventually(_reports(kube, namespace, name, want), 30, f"{name}: {want}")
            paths = Counter((e.path, e.verb) for e in _pod_requests(kube))
            assert paths == {
                ("/api/v1/namespaces/team-a/pods", "list"): 1,
                ("/api/v1/namespaces/team-a/pods", "watch"): 1,
                ("/api/v1/namespaces/team-c/pods", "list"): 1,
                ("/api/v1/namespaces/team-c/pods", "watch"): 1,
            }
            assert all(e.query["labelSelector"] == BINDING_LABEL for e in _pod_requests(kube))
            assert _bound(kube, "team-b", "orders") is None  # not watched: no status written
