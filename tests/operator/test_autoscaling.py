"""spec.autoscaling end to end against the strict fake API (the chart's RBAC enforced; KEDA's
CRDs served only where KEDA is "installed") with the real operator, and moto as SQS.

No KEDA controller runs here: the tests play its part where needed (an HPA named as KEDA names
its own, with the replicas it reports). Garbage collection is the API server's: the tests assert
the ownerReference that makes it delete the ScaledObject with the binding.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import yaml

from carrier_operator.binding import GROUP, KIND, VERSION
from carrier_operator.config import OperatorSettings
from tests.operator.conftest import NAMESPACE
from tests.support.kube import (
    BINDINGS,
    DEPLOYMENTS,
    HPAS,
    SCALED_OBJECTS,
    TRIGGER_AUTHENTICATIONS,
    FakeKube,
    binding_object,
    condition,
    fake_kube,
    running_operator,
    workload_object,
)
from tests.support.kube_access import OPERATOR
from tests.support.operators import RELEASE_NAMESPACE, operators
from tests.support.servers import MotoServer, eventually, free_port

SCHEMA = yaml.safe_load(
    (Path(__file__).parent / "fixtures" / "keda_scaledobject_v1alpha1.schema.yaml").read_text()
)
ON = {"autoscaling": {"enabled": True}}


def _config(**overrides: Any) -> OperatorSettings:
    values: dict[str, Any] = {
        "log_format": "plain",
        "queue_check_interval": 0.5,
        "liveness_port": free_port(),
        "webhook_port": free_port(),
        "autoscaling": True,
        **overrides,
    }
    return OperatorSettings(**values)


@pytest.fixture
async def keda() -> AsyncIterator[FakeKube]:
    """A cluster with KEDA installed and a chart with autoscaling enabled."""
    async with fake_kube(namespaces=("default", NAMESPACE), chart_values=ON, keda=True) as api:
        yield api


def _spec(queue: str, moto: MotoServer, **autoscaling: Any) -> dict[str, Any]:
    return {
        "queue": {"name": queue, "region": "us-east-1", "endpoint": moto.endpoint},
        "webhook": {"port": 8080},
        "autoscaling": {"target": {"name": "worker"}, "maxReplicas": 4, **autoscaling},
    }


def _cond(kube: FakeKube, name: str) -> dict[str, Any]:
    return condition(kube.status(BINDINGS, NAMESPACE, name), "Autoscaling")


async def _reason(kube: FakeKube, name: str, reason: str) -> dict[str, Any]:
    await eventually(lambda: _cond(kube, name).get("reason") == reason, 20, f"{name}: {reason}")
    return _cond(kube, name)


async def _worker(kube: FakeKube, name: str = "worker", replicas: int = 2) -> None:
    body = workload_object(NAMESPACE, name, None)
    body["status"] = {"replicas": replicas}
    await kube.create(DEPLOYMENTS, body)


def _no_refusals(kube: FakeKube) -> None:
    refused = [s for s in kube.served() if s.status == 403]
    assert refused == [], [(s.method, s.path) for s in refused]


# --- without KEDA, without the chart's rights ---------------------------------------------------
async def test_without_keda_the_condition_says_what_to_install(
    moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    async with (
        fake_kube(namespaces=("default", NAMESPACE), chart_values=ON) as kube,
        running_operator(_config()),
    ):
        await sqs.create_queue(QueueName=queue_name)
        await _worker(kube)
        spec = _spec(queue_name, moto, podIdentity={"provider": "aws"})
        await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", spec))
        found = await _reason(kube, "orders", "KEDANotInstalled")
        assert found["status"] == "False"
        assert "install KEDA" in found["message"]
        assert "keda.sh/v1alpha1" in found["message"]
        status = kube.status(BINDINGS, NAMESPACE, "orders")
        assert condition(status, "Ready")["status"] == "True"  # delivery does not depend on it
        assert "autoscaling" not in status
        assert kube.served("POST", "scaledobjects") == []  # no home-made autoscaler either
        _no_refusals(kube)


async def test_chart_without_autoscaling_gives_autoscaling_disabled(
    moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    async with (
        fake_kube(namespaces=("default", NAMESPACE), keda=True) as kube,
        running_operator(_config(autoscaling=False)),
    ):
        await sqs.create_queue(QueueName=queue_name)
        await _worker(kube)
        spec = _spec(queue_name, moto, podIdentity={"provider": "aws"})
        await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", spec))
        found = await _reason(kube, "orders", "AutoscalingDisabled")
        assert "autoscaling.enabled" in found["message"]
        assert kube.served(path_part="keda.sh") == []  # not even asked: no 403 loop
        _no_refusals(kube)


# --- create, update, switch the authentication, remove ----------------------------------------
async def test_scaled_object_is_created_updated_and_removed(
    keda: FakeKube, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    kube = keda
    url = str((await sqs.create_queue(QueueName=queue_name))["QueueUrl"])
    await _worker(kube, replicas=2)
    theirs = {"metadata": {"name": "sqs-reader", "namespace": NAMESPACE}, "spec": {}}
    await kube.create(TRIGGER_AUTHENTICATIONS, theirs)
    hpa = {  # what KEDA would make for our ScaledObject, with what it reports
        "metadata": {"name": "keda-hpa-orders", "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"}
        },
        "status": {"currentReplicas": 2, "desiredReplicas": 3},
    }
    await kube.create(HPAS, hpa)
    async with running_operator(_config()):
        spec = _spec(queue_name, moto, authenticationRef={"name": "sqs-reader"})
        made = await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", spec))
        found = await _reason(kube, "orders", "ScaledObjectApplied")
        assert found["status"] == "True"
        obj = kube.get(SCALED_OBJECTS, NAMESPACE, "orders")
        assert obj is not None
        jsonschema.Draft4Validator(SCHEMA).validate(obj)
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": "orders",
                "uid": made["metadata"]["uid"],
                "controller": True,
            }
        ]
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["type"] == "aws-sqs-queue"
        assert trigger["metadata"]["queueURL"] == url  # resolved from queue.name by the check
        assert trigger["metadata"]["awsEndpoint"] == moto.endpoint
        assert trigger["metadata"]["awsRegion"] == "us-east-1"
        assert trigger["authenticationRef"] == {"name": "sqs-reader"}
        assert kube.status(BINDINGS, NAMESPACE, "orders")["autoscaling"] == {
            "scaledObject": "orders",
            "currentReplicas": 2,
            "desiredReplicas": 3,
        }

        spec["autoscaling"]["maxReplicas"] = 8
        await kube.patch(BINDINGS, NAMESPACE, "orders", {"spec": spec})
        await eventually(
            lambda: (
                (kube.get(SCALED_OBJECTS, NAMESPACE, "orders") or {})
                .get("spec", {})
                .get("maxReplicaCount")
                == 8
            ),
            20,
            "maxReplicaCount 8",
        )

        del spec["autoscaling"]["authenticationRef"]
        spec["autoscaling"]["podIdentity"] = {"provider": "aws", "identityOwner": "workload"}
        await kube.patch(
            BINDINGS,
            NAMESPACE,
            "orders",
            {"spec": {"autoscaling": {**spec["autoscaling"], "authenticationRef": None}}},
        )
        await eventually(
            lambda: kube.get(TRIGGER_AUTHENTICATIONS, NAMESPACE, "orders") is not None,
            20,
            "the pod-identity TriggerAuthentication",
        )
        ours = kube.get(TRIGGER_AUTHENTICATIONS, NAMESPACE, "orders") or {}
        assert ours["spec"] == {"podIdentity": {"provider": "aws", "identityOwner": "workload"}}
        assert ours["metadata"]["ownerReferences"][0]["uid"] == made["metadata"]["uid"]
        await eventually(
            lambda: (
                (kube.get(SCALED_OBJECTS, NAMESPACE, "orders") or {})["spec"]["triggers"][0].get(
                    "authenticationRef"
                )
                == {"name": "orders"}
            ),
            20,
            "the trigger to use it",
        )

        await kube.patch(BINDINGS, NAMESPACE, "orders", {"spec": {"autoscaling": None}})
        await eventually(
            lambda: (
                kube.get(SCALED_OBJECTS, NAMESPACE, "orders") is None
                and kube.get(TRIGGER_AUTHENTICATIONS, NAMESPACE, "orders") is None
            ),
            20,
            "the ScaledObject and our TriggerAuthentication deleted",
        )
        await eventually(lambda: not _cond(kube, "orders"), 20, "the condition removed")
        assert "autoscaling" not in kube.status(BINDINGS, NAMESPACE, "orders")
        assert kube.get(TRIGGER_AUTHENTICATIONS, NAMESPACE, "sqs-reader") is not None  # not ours
        assert kube.get(HPAS, NAMESPACE, "keda-hpa-orders") is not None  # KEDA's to remove
    _no_refusals(kube)


# --- conflicts: reported, nothing overwritten -------------------------------------------------
async def test_conflicts_are_reported_and_nothing_is_overwritten(
    keda: FakeKube, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    kube = keda
    await sqs.create_queue(QueueName=queue_name)
    for name in ("with-hpa", "with-so", "fine"):
        await _worker(kube, name)
    cpu = await kube.create(
        HPAS,
        {
            "metadata": {"name": "cpu", "namespace": NAMESPACE},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "with-hpa"}},
        },
    )
    hand = await kube.create(
        SCALED_OBJECTS,
        {
            "metadata": {"name": "hand-made", "namespace": NAMESPACE},
            "spec": {"scaleTargetRef": {"name": "with-so"}, "triggers": []},
        },
    )
    squatter = await kube.create(
        SCALED_OBJECTS,
        {
            "metadata": {"name": "taken", "namespace": NAMESPACE},
            "spec": {"scaleTargetRef": {"name": "elsewhere"}, "triggers": []},
        },
    )
    cases = {
        "missing": ({"target": {"name": "nowhere"}}, "TargetNotFound", "Deployment/nowhere"),
        "hpa": ({"target": {"name": "with-hpa"}}, "ForeignScaler", "HorizontalPodAutoscaler cpu"),
        "so": ({"target": {"name": "with-so"}}, "ForeignScaler", "ScaledObject hand-made"),
        "taken": ({"target": {"name": "fine"}}, "ForeignScaler", "ScaledObject taken"),
        "noauth": (
            {"target": {"name": "fine"}, "authenticationRef": {"name": "absent"}},
            "AuthenticationNotFound",
            "TriggerAuthentication absent",
        ),
    }
    async with running_operator(_config()):
        for name, (section, *_expected) in cases.items():
            auth = {} if "authenticationRef" in section else {"podIdentity": {"provider": "aws"}}
            spec = _spec(queue_name, moto, **auth, **section)
            await kube.create(BINDINGS, binding_object(NAMESPACE, name, spec))
        for name, (_section, reason, text) in cases.items():
            found = await _reason(kube, name, reason)
            assert found["status"] == "False"
            assert text in found["message"], found["message"]
    assert kube.served("POST", "scaledobjects", user=OPERATOR.user) == []
    assert kube.get(SCALED_OBJECTS, NAMESPACE, "missing") is None
    for resource, before in ((HPAS, cpu), (SCALED_OBJECTS, hand), (SCALED_OBJECTS, squatter)):
        meta = before["metadata"]
        now = kube.get(resource, NAMESPACE, meta["name"]) or {}
        assert now["metadata"]["resourceVersion"] == meta["resourceVersion"], meta["name"]
    _no_refusals(kube)


# --- source: operator: the depth endpoint, on every replica -----------------------------------
async def test_depth_endpoint_answers_keda_from_every_replica(
    moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    url = str((await sqs.create_queue(QueueName=queue_name))["QueueUrl"])
    for i in range(3):
        await sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    values = {**ON, "replicaCount": 2}
    async with (
        fake_kube(
            namespaces=("default", NAMESPACE, RELEASE_NAMESPACE), chart_values=values, keda=True
        ) as kube,
        operators(
            kube,
            2,
            env={
                "CARRIER_OPERATOR_AUTOSCALING": "true",
                "CARRIER_OPERATOR_DEPTH_ENDPOINT": "http://127.0.0.1:1",
            },
        ) as fleet,
    ):
        await _worker(kube)
        spec = _spec(queue_name, moto, source="operator", pollingSeconds=1)
        await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", spec))
        await _reason(kube, "orders", "ScaledObjectApplied")
        obj = kube.get(SCALED_OBJECTS, NAMESPACE, "orders") or {}
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["type"] == "metrics-api"
        path = "/bindings/team-a/orders/queue"
        assert trigger["metadata"]["url"] == f"http://127.0.0.1:1{path}"
        leader = await fleet.wait_for_leader()
        async with aiohttp.ClientSession() as session:

            async def answers(port: int) -> dict[str, Any] | None:
                async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                    if response.status != 200:
                        return None
                    body: dict[str, Any] = await response.json()
                    return body

            for replica in fleet.replicas:  # the follower too: the Service may pick either
                bodies: list[dict[str, Any]] = []

                async def three(
                    port: int = replica.liveness_port, seen: list[dict[str, Any]] = bodies
                ) -> bool:
                    body = await answers(port)
                    seen[:] = [body] if body else []
                    return body is not None and body["visible"] == 3

                await eventually(
                    three, 20, f"replica {replica.index} (leader: {replica is leader})"
                )
                assert bodies[0]["value"] == 3
                assert set(bodies[0]) == {"visible", "inFlight", "delayed", "value", "checkedAt"}
            port = fleet.replicas[0].liveness_port
            async with session.get(
                f"http://127.0.0.1:{port}/bindings/team-a/nope/queue"
            ) as response:
                assert response.status == 404
            message = await sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=60
            )
            assert len(message["Messages"]) == 2

            async def in_flight() -> bool:
                body = await answers(port)
                if body is None:
                    return False
                return (body["visible"], body["inFlight"], body["value"]) == (1, 2, 3)

            await eventually(in_flight, 20, "in-flight messages counted in value")


async def test_a_hand_edit_is_reverted_and_keda_verdicts_are_reported(
    keda: FakeKube, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    kube = keda
    await sqs.create_queue(QueueName=queue_name)
    await _worker(kube)
    async with running_operator(_config()):
        spec = _spec(queue_name, moto, podIdentity={"provider": "aws"})
        await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", spec))
        await _reason(kube, "orders", "ScaledObjectApplied")
        await kube.patch(SCALED_OBJECTS, NAMESPACE, "orders", {"spec": {"maxReplicaCount": 99}})
        await eventually(
            lambda: (
                (kube.get(SCALED_OBJECTS, NAMESPACE, "orders") or {})["spec"]["maxReplicaCount"]
                == 4
            ),
            20,
            "the hand edit reverted to the binding's maxReplicas",
        )
        # KEDA's part: it reports on the ScaledObject in its status.
        refused = {"type": "Ready", "status": "False", "reason": "ScaledObjectCheckFailed"}
        refused["message"] = "Target resource doesn't expose /scale subresource"
        await kube.patch(SCALED_OBJECTS, NAMESPACE, "orders", {"status": {"conditions": [refused]}})
        found = await _reason(kube, "orders", "ScaledObjectNotReady")
        assert found["status"] == "False"
        assert "KEDA: Target resource doesn't expose /scale subresource" in found["message"]
        ready = {"type": "Ready", "status": "True", "reason": "ScaledObjectReady"}
        await kube.patch(SCALED_OBJECTS, NAMESPACE, "orders", {"status": {"conditions": [ready]}})
        found = await _reason(kube, "orders", "ScaledObjectReady")
        assert found["status"] == "True"
        assert "KEDA reports it Ready" in found["message"]
    _no_refusals(kube)
