"""Native sidecar or regular container, from every node's kubelet, kept current.

Pure rules first (version parsing, the decision), then the running injector over real HTTPS
against the fake API with nodes of mixed kubelet versions, added and removed at run time.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from carrier_operator.config import SIDECAR_CONTAINER, SIDECAR_MODE_ANNOTATION
from carrier_operator.nodes import decide, parse_kubelet_version
from tests.injector.conftest import assert_valid_pod, containers, patched
from tests.injector.harness import Injector, ready_binding, replicaset_pod, running_injector
from tests.support.kube import NODES, FakeKube, node_object
from tests.support.servers import eventually

pytestmark = pytest.mark.slow  # real servers or processes

BINDINGS = [ready_binding("team-a", "orders")]


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("v1.29.3-eks-5e0fdde", (1, 29)),
        ("v1.30.0+k3s1", (1, 30)),
        ("v1.28.15-gke.1200000", (1, 28)),
        ("1.31.0", (1, 31)),
        ("v2.0.0", (2, 0)),
        ("", None),
        (None, None),
        ("kubelet", None),
    ],
)
def test_kubelet_version_parsing(text: Any, version: tuple[int, int] | None) -> None:
    assert parse_kubelet_version(text) == version


@pytest.mark.parametrize(
    ("mode", "kubelets", "native", "reason"),
    [
        ("always", None, True, "nativeSidecar: always"),
        ("never", {"a": (1, 33)}, False, "nativeSidecar: never"),
        ("auto", None, False, "nodes cannot be read"),
        ("auto", {}, False, "no nodes seen"),
        ("auto", {"a": (1, 29), "b": (1, 33)}, True, "all 2 nodes >= 1.29"),
        ("auto", {"a": (1, 33), "b": (1, 28)}, False, "1 of 2 nodes below 1.29 or unknown: b"),
        ("auto", {"a": (1, 33), "b": None}, False, "1 of 2 nodes below 1.29 or unknown: b"),
        (
            "auto",
            dict.fromkeys("abcd", (1, 27)),
            False,
            "4 of 4 nodes below 1.29 or unknown: a, b, c, ...",
        ),
    ],
)
def test_the_decision(mode: str, kubelets: Any, native: bool, reason: str) -> None:
    decided = decide(mode, kubelets)
    assert decided.native is native
    assert decided.reason == reason
    assert str(decided) == f"{'native' if native else 'regular'} ({reason})"


async def admit(injector: Injector, **labels: str) -> tuple[dict[str, Any], list[str]]:
    pod = replicaset_pod("orders")
    pod["metadata"]["labels"].update(labels)
    answer = await injector.mutate(pod, namespace="team-a")
    assert answer.allowed, answer.message
    result = patched(pod, answer.patch)
    assert_valid_pod(result)
    return result, list(answer.response.get("warnings") or [])


def is_native(pod: dict[str, Any]) -> bool:
    if SIDECAR_CONTAINER in containers(pod, "initContainers"):
        return True
    assert SIDECAR_CONTAINER in containers(pod)
    return False


def mode_of(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["annotations"][SIDECAR_MODE_ANNOTATION])


async def test_mixed_kubelets_then_nodes_come_and_go(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="carrier_operator.nodes")
    nodes = [
        node_object("new-1", "v1.33.1"),
        node_object("old-1", "v1.28.5-eks-1a2b3c"),
        node_object("k3s-1", "v1.30.0+k3s1"),
    ]
    async with running_injector(bindings=BINDINGS, nodes=nodes) as injector:
        pod, _ = await admit(injector)
        assert not is_native(pod), "a 1.28 kubelet would hang a native sidecar in Init"
        assert mode_of(pod) == "regular (1 of 3 nodes below 1.29 or unknown: old-1)"

        # The old node is drained away during the upgrade: native from the next pod on.
        await injector.kube.delete(NODES, None, "old-1")

        async def native_now() -> bool:
            return is_native((await admit(injector))[0])

        await eventually(native_now, 10, "native sidecars once every node is >= 1.29")
        pod, _ = await admit(injector)
        assert mode_of(pod) == "native (all 2 nodes >= 1.29)"

        # A node with an old kubelet joins (a node group not yet upgraded): regular again.
        await injector.kube.create(NODES, node_object("old-2", "v1.27.16"))

        async def regular_now() -> bool:
            return not is_native((await admit(injector))[0])

        await eventually(regular_now, 10, "regular containers once an old kubelet joins")

    logged = [
        (r.getMessage(), getattr(r, "mode", None))
        for r in caplog.records
        if r.name == "carrier_operator.nodes"
    ]
    assert ("sidecar mode", "regular (1 of 3 nodes below 1.29 or unknown: old-1)") in logged
    assert ("sidecar mode", "native (all 2 nodes >= 1.29)") in logged
    assert ("sidecar mode", "regular (1 of 3 nodes below 1.29 or unknown: old-2)") in logged
    assert len(logged) == 3, "logged on change only"


def forbid_nodes(kube: FakeKube) -> None:
    """The API refuses nodes (an install whose RBAC lacks them)."""
    kube.mock["get /api/v1/nodes"] << 403


async def test_nodes_that_cannot_be_read_mean_regular_containers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="carrier_operator.nodes")
    async with running_injector(bindings=BINDINGS, nodes=[]) as injector:
        pod, _ = await admit(injector)
        assert not is_native(pod)
        assert mode_of(pod) == "regular (no nodes seen)"
    async with running_injector(bindings=BINDINGS, prepare=forbid_nodes) as injector:
        pod, _ = await admit(injector)
        assert not is_native(pod), "unknown kubelets: never risk a pod hanging in Init"
        assert mode_of(pod) == "regular (nodes cannot be read)"
    warned = [
        r
        for r in caplog.records
        if r.name == "carrier_operator.nodes" and r.levelno == logging.WARNING
    ]
    assert len(warned) == 1
    assert warned[0].getMessage() == "sidecar mode: injecting regular containers"
    assert getattr(warned[0], "mode", None) == "regular (nodes cannot be read)"
    assert str(getattr(warned[0], "problem", "")).startswith("cannot list nodes (403")


async def test_job_pods_are_warned_when_native_sidecars_are_not_in_force() -> None:
    nodes = [node_object("old-1", "v1.28.9")]
    async with running_injector(bindings=BINDINGS, nodes=nodes) as injector:
        _, warnings = await admit(injector, **{"batch.kubernetes.io/job-name": "nightly"})
        assert any(
            "belongs to Job 'nightly'" in w and "never completes" in w and "old-1" in w
            for w in warnings
        ), warnings
        _, warnings = await admit(injector)  # a Deployment's pod: no such warning
        assert not any("Job" in w for w in warnings), warnings
    async with running_injector(bindings=BINDINGS) as injector:  # every node >= 1.29
        _, warnings = await admit(injector, **{"batch.kubernetes.io/job-name": "nightly"})
        assert not any("Job" in w for w in warnings), warnings
