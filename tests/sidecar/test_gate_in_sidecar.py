"""The health gate and probes as wired into the sidecar: moto_server, a real webhook and endpoint."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.queues import depth, make_queue
from tests.support.servers import MotoServer, Received, WebhookRecorder, eventually, free_port
from tests.support.sidecars import env_for, in_process

from .conftest import HealthEndpoint


async def status_of(session: aiohttp.ClientSession, port: int | None, path: str) -> int:
    assert port is not None
    async with session.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status


async def test_nothing_is_received_until_the_webhook_is_healthy(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    endpoint: HealthEndpoint,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="carrier.health")
    url = await make_queue(sqs, queue_name)
    await sqs.send_message(QueueUrl=url, MessageBody="after the gate")
    env = env_for(
        moto,
        queue_name,
        webhook.url,
        CARRIER_HTTP_ADDR=f"127.0.0.1:{free_port()}",
        CARRIER_WEBHOOK_HEALTH_CHECK_ENDPOINT=endpoint.url,
    )
    async with in_process(env) as sidecar:
        await eventually(
            lambda: any(r.message.startswith("waiting for the webhook") for r in caplog.records),
            10,
            "the gate to report that it waits",
        )
        assert await status_of(session, sidecar.probe_port, "/readyz") == 503
        assert await status_of(session, sidecar.probe_port, "/healthz") == 200
        received = sidecar.metrics.registry.get_sample_value(
            "carrier_sqs_requests_total", {"action": "ReceiveMessage", "outcome": "ok"}
        )
        assert received == 0
        assert await depth(sqs, url) == (1, 0)

        await endpoint.up()

        await eventually(lambda: webhook.bodies() == [b"after the gate"], 15, "the delivery")

        async def ready() -> bool:
            return await status_of(session, sidecar.probe_port, "/readyz") == 200

        await eventually(ready, 5, "readiness")
        assert await sidecar.finish() == 0


async def test_sidecar_drains_and_exits_3_when_the_webhook_goes_offline(
    moto: MotoServer,
    sqs: Any,
    queue_name: str,
    endpoint: HealthEndpoint,
) -> None:
    release = asyncio.Event()

    async def stuck(_request: web.Request, _received: Received) -> web.StreamResponse:
        await asyncio.wait_for(release.wait(), 30)
        return web.Response(status=200)

    hook = await WebhookRecorder(responder=stuck).start()
    await endpoint.up()
    try:
        url = await make_queue(sqs, queue_name)
        await sqs.send_message(QueueUrl=url, MessageBody="in flight when the webhook dies")
        env = env_for(
            moto,
            queue_name,
            hook.url,
            CARRIER_WEBHOOK_HEALTH_CHECK_ENDPOINT=endpoint.url,
            CARRIER_WEBHOOK_HEALTH_CHECK_INTERVAL="100ms",
            CARRIER_WEBHOOK_OFFLINE_THRESHOLD_COUNT="2",
            CARRIER_SHUTDOWN_TIMEOUT="500ms",
        )
        async with in_process(env) as sidecar:
            await eventually(lambda: hook.received, 10, "the delivery to start")
            endpoint.status = 503

            assert sidecar.task is not None
            assert await asyncio.wait_for(sidecar.task, 15) == 3

        # The stuck delivery was cut at the shutdown timeout and its message released at once,
        # not left invisible for the queue's 30s visibility timeout.
        await eventually(lambda: _visible(sqs, url), 5, "the message to be visible again")
    finally:
        release.set()
        await hook.stop()


async def _visible(sqs: Any, url: str) -> bool:
    return await depth(sqs, url) == (1, 0)
