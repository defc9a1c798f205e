"""Dead-letter awareness (issue 16 §2) against moto: a real operator process reads the queue's
RedrivePolicy, shows its DLQ in status and on /metrics, warns (rate-limited) when it grows, and
a denied DLQ read is shown without making the binding unready."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.support.kube import BINDINGS, FakeKube, binding_object, condition
from tests.support.operators import Fleet, Replica, fleet_cluster, operators
from tests.support.scrape import scrape, value
from tests.support.servers import MotoServer, eventually
from tests.support.sqs_proxy import SqsProxy

NAMESPACE = "team-a"


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    async with fleet_cluster(NAMESPACE) as api:
        yield api


def _spec(endpoint: str, queue: str) -> dict[str, Any]:
    return {
        "queue": {"name": queue, "region": "us-east-1", "endpoint": endpoint},
        "webhook": {"port": 8080},
    }


async def _queue_with_dlq(sqs: Any, name: str, max_receives: int = 3) -> tuple[str, str]:
    """A queue whose redrive policy names a fresh DLQ: (DLQ URL, DLQ ARN)."""
    dlq = (await sqs.create_queue(QueueName=f"{name}-dlq"))["QueueUrl"]
    attrs = await sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    arn = attrs["Attributes"]["QueueArn"]
    policy = {"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receives)}
    await sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps(policy)})
    return dlq, arn


def _dead_letter(kube: FakeKube, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kube.status(BINDINGS, NAMESPACE, name).get("deadLetter") or {}
    return found


def _rising(kube: FakeKube, name: str) -> list[dict[str, Any]]:
    return [e for e in kube.events(NAMESPACE, name) if e.get("reason") == "DeadLettersRising"]


async def _leader(fleet: Fleet) -> Replica:
    return await fleet.wait_for_leader()


async def test_redrive_policy_status_metrics_and_one_rising_event(
    kube: FakeKube, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    dlq, arn = await _queue_with_dlq(sqs, queue_name)
    await sqs.create_queue(QueueName=f"{queue_name}-plain")
    async with operators(kube, 1) as fleet:
        await kube.create(
            BINDINGS, binding_object(NAMESPACE, "orders", _spec(moto.endpoint, queue_name))
        )
        await kube.create(
            BINDINGS,
            binding_object(NAMESPACE, "plain", _spec(moto.endpoint, f"{queue_name}-plain")),
        )
        await eventually(
            lambda: _dead_letter(kube, "orders").get("messages") == 0,
            30,
            "orders' deadLetter read",
            every=0.1,
        )
        assert _dead_letter(kube, "orders") == {
            "reason": "DeadLetterQueueRead",
            "message": "0 message(s) in the dead-letter queue (after 3 receives)",
            "arn": arn,
            "maxReceiveCount": 3,
            "messages": 0,
        }
        await eventually(
            lambda: _dead_letter(kube, "plain").get("reason") == "NoRedrivePolicy",
            30,
            "plain's deadLetter says there is no policy",
            every=0.1,
        )
        assert "no redrive policy" in _dead_letter(kube, "plain")["message"]
        assert set(_dead_letter(kube, "plain")) == {"reason", "message"}
        assert _rising(kube, "orders") == []

        for body in ("a", "b"):
            await sqs.send_message(QueueUrl=dlq, MessageBody=body)
        await eventually(
            lambda: len(_rising(kube, "orders")) == 1, 30, "a DeadLettersRising Event", every=0.1
        )
        (event,) = _rising(kube, "orders")
        assert event["type"] == "Warning"
        assert f"2 message(s) in the dead-letter queue {arn}, up from 0" in event["message"]
        await sqs.send_message(QueueUrl=dlq, MessageBody="c")
        await eventually(
            lambda: _dead_letter(kube, "orders").get("messages") == 3, 30, "3 in the DLQ"
        )
        assert len(_rising(kube, "orders")) == 1, "a second rise within the window is not told"
        status = kube.status(BINDINGS, NAMESPACE, "orders")
        assert condition(status, "Ready")["status"] == "True"

        leader = await _leader(fleet)
        samples = await scrape(leader)
        per = {"namespace": NAMESPACE, "binding": "orders"}
        assert value(samples, "carrier_operator_dead_letter_messages", **per) == 3.0
        assert value(samples, "carrier_operator_queue_messages", **per, state="visible") == 0.0
        assert value(samples, "carrier_operator_binding_condition", **per, condition="Ready") == 1
        assert (
            value(samples, "carrier_operator_queue_last_check_success", **per, reason="QueueFound")
            == 1.0
        )
        plain = {"namespace": NAMESPACE, "binding": "plain"}
        assert value(samples, "carrier_operator_dead_letter_messages", **plain) is None
        assert value(samples, "carrier_operator_queue_messages", **plain, state="visible") == 0.0

        await kube.delete(BINDINGS, NAMESPACE, "plain")

        async def plain_gone() -> bool:
            found = await scrape(leader)
            return not any(
                labels.get("binding") == "plain"
                for series in found.values()
                for labels, _ in series
            )

        await eventually(plain_gone, 30, "the deleted binding's series are gone", every=0.2)
        assert value(await scrape(leader), "carrier_operator_dead_letter_messages", **per) == 3.0


async def test_a_denied_dead_letter_read_is_shown_and_the_binding_stays_ready(
    kube: FakeKube, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    _dlq, arn = await _queue_with_dlq(sqs, queue_name)

    async def deny_dlq(request: web.Request, action: str, _proxy: SqsProxy) -> web.Response | None:
        body = json.loads(await request.read() or b"{}")
        if action == "GetQueueAttributes" and str(body.get("QueueUrl", "")).endswith("-dlq"):
            return web.json_response(
                {"__type": "com.amazonaws.sqs#AccessDenied", "message": "not on the DLQ"},
                status=400,
                content_type="application/x-amz-json-1.0",
            )
        return None

    proxy = await SqsProxy(upstream=moto.endpoint, mischief=deny_dlq).start()
    try:
        async with operators(kube, 1) as fleet:
            await kube.create(
                BINDINGS, binding_object(NAMESPACE, "orders", _spec(proxy.endpoint, queue_name))
            )
            await eventually(
                lambda: _dead_letter(kube, "orders").get("reason") == "DeadLetterAccessDenied",
                30,
                "the denied DLQ read in status",
                every=0.1,
            )
            found = _dead_letter(kube, "orders")
            assert found["arn"] == arn
            assert found["maxReceiveCount"] == 3
            assert "messages" not in found
            assert (
                "may not call sqs:GetQueueAttributes on the dead-letter queue" in (found["message"])
            )
            status = kube.status(BINDINGS, NAMESPACE, "orders")
            assert condition(status, "Ready")["status"] == "True"
            assert condition(status, "QueueReachable")["reason"] == "QueueFound"
            samples = await scrape(await _leader(fleet))
            errors = value(
                samples,
                "carrier_operator_queue_check_errors_total",
                reason="DeadLetterAccessDenied",
            )
            assert errors is not None
            assert errors >= 1
    finally:
        await proxy.stop()
