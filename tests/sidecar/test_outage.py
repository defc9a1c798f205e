"""SQS disappears and comes back: receives are retried with capped backoff, nothing crashes."""

from __future__ import annotations

import asyncio
from typing import Any

from aiobotocore.session import get_session

from tests.support.queues import make_queue
from tests.support.servers import MotoServer, WebhookRecorder, eventually, running_moto
from tests.support.sidecars import env_for, in_process


def receive_attempts(sidecar: Any, outcome: str) -> float:
    value = sidecar.metrics.registry.get_sample_value(
        "carrier_sqs_requests_total", {"action": "ReceiveMessage", "outcome": outcome}
    )
    return float(value or 0.0)


async def test_sqs_outage_is_retried_with_backoff(webhook: WebhookRecorder) -> None:
    with running_moto() as moto:  # its own server: a stopped moto forgets its queues
        await _outage(moto, webhook)


async def _outage(moto: MotoServer, webhook: WebhookRecorder) -> None:
    session = get_session()
    async with session.create_client(
        "sqs", region_name="us-east-1", endpoint_url=moto.endpoint
    ) as sqs:
        url = await make_queue(sqs, "outage")
        await sqs.send_message(QueueUrl=url, MessageBody="before")
        async with in_process(env_for(moto, "outage", webhook.url)) as sidecar:
            await eventually(lambda: webhook.bodies() == [b"before"], 10, "the first message")
            moto.stop()
            await eventually(lambda: receive_attempts(sidecar, "error") >= 2, 10, "failed receives")
            errors_then = receive_attempts(sidecar, "error")
            await asyncio.sleep(3)  # let the outage last; the assertion is about what happened
            errors = receive_attempts(sidecar, "error") - errors_then
            assert errors <= 6, f"{errors} receive attempts in 3s: not backing off"
            assert sidecar.task is not None
            assert not sidecar.task.done(), "the sidecar survives the outage"
            moto.start()
            url = await make_queue(sqs, "outage")  # same name, same URL, fresh server
            await sqs.send_message(QueueUrl=url, MessageBody="after")
            await eventually(lambda: b"after" in webhook.bodies(), 30, "delivery once SQS is back")
            assert await sidecar.finish() == 0
