"""Long jobs: the visibility heartbeat keeps a message invisible for as long as its POST runs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from tests.support.queues import drained, make_queue
from tests.support.servers import MotoServer, Received, WebhookRecorder, eventually
from tests.support.sidecars import env_for, in_process


def slow_webhook(seconds: float) -> Any:
    async def answer(_r: web.Request, _g: Received) -> web.StreamResponse:
        await asyncio.sleep(seconds)  # the worker's long job
        return web.Response(status=200)

    return answer


async def test_long_delivery_is_delivered_once_and_deleted(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    webhook.responder = slow_webhook(8)
    url = await make_queue(sqs, queue_name, VisibilityTimeout="2")
    await sqs.send_message(QueueUrl=url, MessageBody="long job")
    # Two receivers: if the visibility ever lapsed, the second would take the message again.
    env = env_for(moto, queue_name, webhook.url, CARRIER_SQS_RECEIVERS="2")
    async with in_process(env) as sidecar:
        await eventually(lambda: drained(sqs, url), 20, "the message to be deleted")
        assert sidecar.counter("visibility_changes_heartbeat") >= 3
        await eventually(lambda: sidecar.counter("messages_deleted") == 1, 5, "the delete counted")
    assert webhook.bodies() == [b"long job"]


@pytest.mark.parametrize("visibility_env", [{"CARRIER_SQS_VISIBILITY_TIMEOUT": "1s"}])
async def test_without_heartbeat_a_long_delivery_is_taken_twice(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    visibility_env: dict[str, str],
) -> None:
    """The control experiment: the same situation with CARRIER_SQS_HEARTBEAT=false."""
    webhook.responder = slow_webhook(3)
    url = await make_queue(sqs, queue_name, VisibilityTimeout="30")
    await sqs.send_message(QueueUrl=url, MessageBody="long job")
    env = env_for(
        moto,
        queue_name,
        webhook.url,
        CARRIER_SQS_RECEIVERS="2",
        CARRIER_SQS_HEARTBEAT="false",
        **visibility_env,  # the per-receive visibility overrides the queue's 30s
    )
    async with in_process(env) as sidecar:
        await eventually(lambda: len(webhook.received) >= 2, 10, "a second, concurrent delivery")
        assert sidecar.counter("visibility_changes_heartbeat") == 0
