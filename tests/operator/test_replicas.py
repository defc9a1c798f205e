"""Several real operator processes against one fake API (issue 11 §1): one writer elected by a
Lease, every replica admitting from a current index, failover on SIGKILL without a rollout
annotated twice. Writes are attributed by the ``User-Agent`` each replica sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import kmock
import pytest

from carrier_operator.binding import sidecar_hash
from carrier_operator.rollout import SIDECAR_HASH
from tests.injector.harness import create_webhook_configurations, pod_review
from tests.support.kube import (
    BINDINGS,
    DEPLOYMENTS,
    FakeKube,
    binding_object,
    condition,
    fake_kube,
    pod_object,
    workload_object,
)
from tests.support.operators import RELEASE_NAMESPACE, Fleet, Replica, kill_on, operators
from tests.support.servers import MotoServer, eventually

NAMESPACE = "team-a"
# What a follower may write: its attempts at the Lease, the shared certificate and caBundle.
FOLLOWER_WRITES = ("/leases", "/secrets", "webhookconfigurations")


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    async with fake_kube(
        namespaces=("default", NAMESPACE, RELEASE_NAMESPACE),
        chart_values={"replicaCount": 2, "rollout": {"enabled": True}},
    ) as api:
        yield api


def _spec(moto: MotoServer, queue: str, **extra: Any) -> dict[str, Any]:
    return {
        "queue": {"name": queue, "region": "us-east-1", "endpoint": moto.endpoint},
        "webhook": {"port": 8080},
        **extra,
    }


def _ready(kube: FakeKube, name: str) -> bool:
    return condition(kube.status(BINDINGS, NAMESPACE, name), "Ready").get("status") == "True"


def _review(binding: str) -> dict[str, Any]:
    pod = pod_object(NAMESPACE, f"worker-{binding}", binding)
    pod.pop("status")
    return pod_review(pod, namespace=NAMESPACE)


async def _liveness(replica: Replica) -> dict[str, Any]:
    url = f"http://127.0.0.1:{replica.liveness_port}/healthz"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        answer: dict[str, Any] = await response.json(content_type=None)
        return answer


def _binding_writes(fleet: Fleet) -> list[kmock.Request]:
    """Status patches, Events and rollout patches: what only the leader may send."""
    return [
        r
        for r in fleet.writes()
        if "/carrierbindings" in r.url.path
        or "/events" in r.url.path
        or "/deployments" in r.url.path
        or "/statefulsets" in r.url.path
    ]


@pytest.mark.parametrize("count", [2, 3])
async def test_one_leader_writes_and_every_replica_admits(
    kube: FakeKube, moto: MotoServer, sqs: Any, queue_name: str, count: int
) -> None:
    await sqs.create_queue(QueueName=queue_name)
    async with operators(kube, count) as fleet:
        await create_webhook_configurations(kube, fleet.config)
        leader = await fleet.wait_for_leader()
        followers = [r for r in fleet.replicas if r is not leader]

        await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", _spec(moto, queue_name)))
        await eventually(lambda: _ready(kube, "orders"), 20, "Ready, written by the leader")
        status = kube.status(BINDINGS, NAMESPACE, "orders")
        assert condition(status, "Valid")["status"] == "True"

        # Every replica's own HTTPS port admits the new binding's pods, from its own index.
        for replica in fleet.replicas:
            await eventually(
                lambda r=replica: fleet.admits(r, _review("orders")),  # type: ignore[misc]
                15,
                f"{replica.pod_name} to admit a pod of the new binding",
                every=0.2,
            )

        writes = _binding_writes(fleet)
        assert writes, "the leader wrote the status"
        assert {r.headers.get("User-Agent") for r in writes} == {leader.user_agent}
        assert not [
            w for w in writes if "/carrierbindings" in w.url.path and "/status" not in w.url.path
        ], "nothing (kopf included) writes on the binding object itself"
        for follower in followers:
            strays = [
                f"{r.method.value} {r.url.path}"
                for r in fleet.requests_by(follower)
                if str(r.method.value).upper() in {"POST", "PATCH", "PUT", "DELETE"}
                and not any(part in r.url.path for part in FOLLOWER_WRITES)
            ]
            assert strays == [], follower.pod_name
        assert fleet.lease_holder() == leader.identity
        assert [r.pod_name for r in fleet.replicas if r.logged("became the leader")] == [
            leader.pod_name
        ]
        assert not [r.pod_name for r in fleet.replicas if r.logged("Pausing")], "nobody paused"
        probes = {r.pod_name: await _liveness(r) for r in fleet.replicas}
        assert {name: p["leader"] for name, p in probes.items()} == {
            r.pod_name: r is leader for r in fleet.replicas
        }


async def test_sigkill_of_the_leader_mid_rollout_hands_over_without_a_second_annotation(
    kube: FakeKube, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    await sqs.create_queue(QueueName=queue_name)
    workloads = [f"worker-{i}" for i in range(5)]
    for name in workloads:
        await kube.create(DEPLOYMENTS, workload_object(NAMESPACE, name, "orders"))
    spec = _spec(moto, queue_name, rolloutOnChange=True)
    async with operators(kube, 3) as fleet:
        leader = await fleet.wait_for_leader()
        await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", spec))
        await eventually(lambda: _ready(kube, "orders"), 20, "Ready")

        # The leader dies at its second workload patch: one workload is on the new hash, the
        # status still says the old one.
        killed_at = kill_on(
            kube,
            leader,
            lambda r: str(r.method.value).upper() == "PATCH" and "/deployments/" in r.url.path,
            nth=2,
        )
        new_spec = {**spec, "delivery": {"batchSize": 5}}
        await kube.patch(BINDINGS, NAMESPACE, "orders", {"spec": new_spec})
        await eventually(lambda: not leader.alive, 20, "the leader to be SIGKILLed mid-rollout")
        refused = killed_at[-1]

        successor = await fleet.wait_for_leader(other_than=leader, timeout=30)
        new_hash = sidecar_hash(new_spec)
        await eventually(
            lambda: kube.status(BINDINGS, NAMESPACE, "orders").get("sidecarHash") == new_hash,
            20,
            "the successor to finish the rollout and record the new hash",
        )
        patches: dict[str, list[kmock.Request]] = {}
        for request in fleet.writes("/deployments/"):
            if request is not refused:
                patches.setdefault(request.url.path.rsplit("/", 1)[-1], []).append(request)
        assert sorted(patches) == workloads
        assert {name: len(found) for name, found in patches.items()} == dict.fromkeys(
            workloads, 1
        ), "each workload restarted exactly once"
        by_whom = [r.headers.get("User-Agent") for found in patches.values() for r in found]
        assert by_whom.count(leader.user_agent) == 1, "the dead leader got one patch through"
        assert by_whom.count(successor.user_agent) == len(workloads) - 1
        for name in workloads:
            template = (kube.get(DEPLOYMENTS, NAMESPACE, name) or {})["spec"]["template"]
            assert template["metadata"]["annotations"][SIDECAR_HASH] == new_hash


async def test_sigterm_releases_the_lease_for_a_fast_hand_over(kube: FakeKube) -> None:
    async with operators(kube, 2) as fleet:
        leader = await fleet.wait_for_leader()
        leader.process.terminate()
        await leader.wait_for_log("released the Lease", timeout=30)
        successor = await fleet.wait_for_leader(other_than=leader, timeout=30)
        assert (fleet.lease().get("spec") or {}).get("leaseTransitions") == 1
        assert successor is not leader
