"""The operator's /metrics (issue 16 §1) from real replicas: the leader's per-binding series,
a follower's none, and every replica's own admission counts per webhook and result."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.injector.harness import pod_review
from tests.support.kube import BINDINGS, FakeKube, binding_object, condition, pod_object
from tests.support.operators import Fleet, Replica, fleet_cluster, operators
from tests.support.scrape import scrape, value
from tests.support.servers import MotoServer, eventually

NAMESPACE = "team-a"


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    async with fleet_cluster(NAMESPACE) as api:
        yield api


async def _post(fleet: Fleet, replica: Replica, path: str, body: Any) -> int:
    """POST to a replica's admission port (verified TLS); the HTTP status."""
    ca = fleet.ca or await fleet.load_ca()
    context = ssl.create_default_context(cadata=ca.decode("ascii"))
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
        session.post(
            f"https://127.0.0.1:{replica.webhook_port}{path}",
            json=body,
            server_hostname=fleet.config.service_host,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as answer,
    ):
        return answer.status


def _ready(kube: FakeKube, name: str) -> bool:
    return condition(kube.status(BINDINGS, NAMESPACE, name), "Ready").get("status") == "True"


async def test_leader_exports_bindings_follower_exports_its_admissions(
    kube: FakeKube, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    url = (await sqs.create_queue(QueueName=queue_name))["QueueUrl"]
    for body in ("a", "b"):
        await sqs.send_message(QueueUrl=url, MessageBody=body)
    spec = {
        "queue": {"name": queue_name, "region": "us-east-1", "endpoint": moto.endpoint},
        "webhook": {"port": 8080},
    }
    async with operators(kube, 2) as fleet:
        await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", spec))
        leader = await fleet.wait_for_leader()
        (follower,) = [r for r in fleet.replicas if r is not leader]
        await eventually(lambda: _ready(kube, "orders"), 30, "orders Ready", every=0.1)
        per = {"namespace": NAMESPACE, "binding": "orders"}

        async def leader_sees_depth() -> bool:
            got = await scrape(leader)
            return bool(
                value(got, "carrier_operator_queue_messages", **per, state="visible") == 2.0
            )

        await eventually(leader_sees_depth, 30, "the leader's depth series", every=0.2)
        samples = await scrape(leader)
        assert value(samples, "carrier_operator_leader") == 1.0
        for kind in ("Ready", "Valid", "QueueReachable"):
            assert value(samples, "carrier_operator_binding_condition", **per, condition=kind) == 1
        checked = value(samples, "carrier_operator_queue_last_check_timestamp_seconds", **per)
        assert checked is not None
        assert checked > 1.7e9
        assert value(samples, "carrier_operator_queue_messages", **per, state="in_flight") == 0

        samples = await scrape(follower)
        assert value(samples, "carrier_operator_leader") == 0.0
        assert not any(
            "binding" in labels for series in samples.values() for labels, _ in series
        ), "a follower reads no queue, so it exports no per-binding series"

        pod = pod_object(NAMESPACE, "worker-1", "orders")
        pod.pop("status")
        await eventually(
            lambda: fleet.admits(follower, pod_review(pod, namespace=NAMESPACE)),
            15,
            "a pod of orders admitted by the follower",
        )
        stray = pod_object(NAMESPACE, "worker-2", "no-such-binding")
        stray.pop("status")
        answer = await fleet.mutate(follower, pod_review(stray, namespace=NAMESPACE))
        assert answer["response"]["allowed"] is False
        assert await _post(fleet, follower, "/not-a-webhook", {}) == 404

        samples = await scrape(follower)
        mutate = {"webhook": "mutate-pods"}
        allowed = value(
            samples, "carrier_operator_admission_requests_total", **mutate, result="allowed"
        )
        assert allowed is not None
        assert allowed >= 1
        assert (
            value(samples, "carrier_operator_admission_requests_total", **mutate, result="denied")
            == 1.0
        )
        assert (
            value(
                samples,
                "carrier_operator_admission_requests_total",
                webhook="unknown",
                result="invalid",
            )
            == 1.0
        )
        assert (
            value(
                samples,
                "carrier_operator_admission_duration_seconds_count",
                **mutate,
                result="denied",
            )
            == 1.0
        )
        assert (
            value(
                samples,
                "carrier_operator_admission_requests_total",
                webhook="validate-carrierbindings",
                result="error",
            )
            == 0.0
        )


async def test_metrics_negotiate_openmetrics(kube: FakeKube) -> None:
    async with operators(kube, 1) as fleet:
        (replica,) = fleet.replicas
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://127.0.0.1:{replica.liveness_port}/metrics",
                headers={"Accept": "application/openmetrics-text; version=1.0.0"},
            ) as answer,
        ):
            assert answer.status == 200
            assert answer.headers["Content-Type"].startswith("application/openmetrics-text")
            text = await answer.text()
        assert text.rstrip().endswith("# EOF")
        assert "carrier_operator_leader" in text
