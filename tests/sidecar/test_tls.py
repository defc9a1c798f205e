"""An https webhook: verified by default, CARRIER_WEBHOOK_TLS_INSECURE_SKIP_VERIFY=true skips it."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.kube_tls import TestCA
from tests.support.queues import depth, drained, make_queue
from tests.support.servers import MotoServer, eventually, free_port
from tests.support.sidecars import env_for, in_process


def self_signed(directory: Path) -> ssl.SSLContext:
    """A TLS 1.2 server context whose cert no system store trusts (a private test CA's)."""
    context = TestCA.create(directory).serving_context("webhook", "127.0.0.1")
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # what many in-cluster servers still offer
    return context


@pytest.fixture
async def https_webhook(tmp_path: Path) -> AsyncIterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/tls", handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=self_signed(tmp_path)).start()
    try:
        yield f"https://127.0.0.1:{port}/tls", bodies
    finally:
        await runner.cleanup()


async def test_skip_verify_delivers_to_a_self_signed_tls12_webhook(
    moto: MotoServer, sqs: Any, queue_name: str, https_webhook: tuple[str, list[bytes]]
) -> None:
    url, bodies = https_webhook
    queue = await make_queue(sqs, queue_name)
    await sqs.send_message(QueueUrl=queue, MessageBody="over tls")
    env = env_for(moto, queue_name, url, CARRIER_WEBHOOK_TLS_INSECURE_SKIP_VERIFY="true")
    async with in_process(env):
        await eventually(lambda: drained(sqs, queue), 10, "the delivery over TLS")
    assert bodies == [b"over tls"]


async def test_unverifiable_certificate_is_a_failure(
    moto: MotoServer, sqs: Any, queue_name: str, https_webhook: tuple[str, list[bytes]]
) -> None:
    url, bodies = https_webhook
    queue = await make_queue(sqs, queue_name)
    await sqs.send_message(QueueUrl=queue, MessageBody="refused")
    env = env_for(moto, queue_name, url, CARRIER_RETRY_BACKOFF="queue")
    async with in_process(env) as sidecar:
        await eventually(lambda: sidecar.counter("deliveries_failure") == 1, 10, "a TLS failure")
        assert await depth(sqs, queue) == (0, 1)
    assert bodies == []
