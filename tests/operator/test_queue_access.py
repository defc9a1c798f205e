"""The operator's own SQS access never decides whether workloads may start (issue 11 §3).

Real operator processes (tests/support/operators.py), real SQS-speaking servers: moto, an
aiohttp server answering AccessDenied as SQS does, and a proxy in front of moto that fails on
demand (a flapping endpoint). Pods are admitted over each operator's HTTPS port throughout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.injector.harness import pod_review
from tests.support.kube import BINDINGS, FakeKube, binding_object, condition, pod_object
from tests.support.operators import Fleet, fleet_cluster, operators
from tests.support.servers import MotoServer, Received, WebhookRecorder, eventually
from tests.support.sqs_proxy import SqsProxy

NAMESPACE = "team-a"
NO_CREDENTIALS: dict[str, str | None] = {
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_SESSION_TOKEN": None,
    "AWS_PROFILE": None,
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
    "AWS_CONFIG_FILE": "/nonexistent/config",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": None,
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None,
    "AWS_WEB_IDENTITY_TOKEN_FILE": None,
}


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    async with fleet_cluster(NAMESPACE) as api:
        yield api


def _spec(endpoint: str, queue: str, **extra: Any) -> dict[str, Any]:
    return {
        "queue": {"name": queue, "region": "us-east-1", "endpoint": endpoint},
        "webhook": {"port": 8080},
        **extra,
    }


def _conditions(kube: FakeKube, name: str) -> dict[str, dict[str, Any]]:
    status = kube.status(BINDINGS, NAMESPACE, name)
    return {kind: condition(status, kind) for kind in ("Valid", "QueueReachable", "Ready")}


async def _reason(kube: FakeKube, name: str, reason: str) -> dict[str, dict[str, Any]]:
    await eventually(
        lambda: _conditions(kube, name)["QueueReachable"].get("reason") == reason,
        30,
        f"{name}: QueueReachable reason {reason} (now {_conditions(kube, name)})",
        every=0.1,
    )
    return _conditions(kube, name)


async def _admitted(fleet: Fleet, binding: str) -> None:
    pod = pod_object(NAMESPACE, f"worker-{binding}", binding)
    pod.pop("status")
    review = pod_review(pod, namespace=NAMESPACE)
    (replica,) = fleet.replicas
    await eventually(lambda: fleet.admits(replica, review), 15, f"a pod of {binding} admitted")


async def test_no_credentials_and_check_off_per_binding_still_admit(
    kube: FakeKube, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    await sqs.create_queue(QueueName=queue_name)
    async with operators(kube, 1, env=NO_CREDENTIALS) as fleet:
        await kube.create(
            BINDINGS, binding_object(NAMESPACE, "orders", _spec(moto.endpoint, queue_name))
        )
        await kube.create(
            BINDINGS,
            binding_object(
                NAMESPACE, "private", _spec(moto.endpoint, queue_name, queueCheck=False)
            ),
        )
        found = await _reason(kube, "orders", "NoCredentials")
        assert found["Valid"]["status"] == "True"
        assert found["QueueReachable"]["status"] == "False"
        assert "no AWS credentials" in found["QueueReachable"]["message"]
        assert "the pod's own identity, not the operator's" in found["QueueReachable"]["message"]
        assert (found["Ready"]["status"], found["Ready"]["reason"]) == ("False", "NoCredentials")
        await _admitted(fleet, "orders")

        off = await _reason(kube, "private", "CheckDisabled")
        assert off["QueueReachable"]["status"] == "Unknown"
        assert "spec.queueCheck is false" in off["QueueReachable"]["message"]
        assert (off["Ready"]["status"], off["Valid"]["status"]) == ("True", "True")
        await _admitted(fleet, "private")


async def test_access_denied_names_the_action_and_pods_are_admitted(
    kube: FakeKube, webhook: WebhookRecorder
) -> None:
    async def denied(_request: web.Request, _received: Received) -> web.StreamResponse:
        body = {"__type": "com.amazonaws.sqs#AccessDenied", "message": "not authorized"}
        return web.json_response(body, status=400, content_type="application/x-amz-json-1.0")

    webhook.responder = denied  # a server speaking SQS's JSON protocol, refusing everything
    async with operators(kube, 1) as fleet:
        await kube.create(
            BINDINGS, binding_object(NAMESPACE, "cross", _spec(webhook.url, "other-account-q"))
        )
        found = await _reason(kube, "cross", "AccessDenied")
        message = found["QueueReachable"]["message"]
        assert "may not call sqs:GetQueueUrl on other-account-q" in message
        assert "the pod's own identity, not the operator's" in message
        assert found["Valid"]["status"] == "True"
        assert found["Ready"]["status"] == "False"
        await _admitted(fleet, "cross")


async def test_a_flapping_endpoint_never_touches_valid(
    kube: FakeKube, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    await sqs.create_queue(QueueName=queue_name)
    failing = [False]

    async def flap(_request: web.Request, _action: str, _proxy: SqsProxy) -> web.Response | None:
        if failing[0]:
            return web.json_response(
                {"__type": "com.amazonaws.sqs#InternalError", "message": "blip"}, status=500
            )
        return None

    proxy = await SqsProxy(upstream=moto.endpoint, mischief=flap).start()
    try:
        async with operators(kube, 1) as fleet:
            await kube.create(
                BINDINGS, binding_object(NAMESPACE, "orders", _spec(proxy.endpoint, queue_name))
            )
            first = await _reason(kube, "orders", "QueueFound")
            valid_since = first["Valid"]["lastTransitionTime"]
            for _ in range(2):
                failing[0] = True
                down = await _reason(kube, "orders", "QueueError")
                assert down["QueueReachable"]["status"] == "False"
                assert down["Valid"]["status"] == "True"
                assert down["Valid"]["lastTransitionTime"] == valid_since
                await _admitted(fleet, "orders")
                failing[0] = False
                up = await _reason(kube, "orders", "QueueFound")
                assert up["Ready"]["status"] == "True"
                assert up["Valid"]["lastTransitionTime"] == valid_since
    finally:
        await proxy.stop()


async def test_queue_check_off_operator_wide_reads_no_queue(
    kube: FakeKube, webhook: WebhookRecorder
) -> None:
    async with operators(kube, 1, env={"CARRIER_OPERATOR_QUEUE_CHECK": "false"}) as fleet:
        await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", _spec(webhook.url, "q")))
        found = await _reason(kube, "orders", "CheckDisabled")
        assert "CARRIER_OPERATOR_QUEUE_CHECK=false" in found["QueueReachable"]["message"]
        assert found["Ready"]["status"] == "True"
        await _admitted(fleet, "orders")
        assert webhook.received == [], "the operator never called the SQS endpoint"
