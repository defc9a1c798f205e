"""``GET /drain`` (the worker's preStop hook): token, the same stop as SIGTERM, idle afterwards."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
from aiohttp import web

from carrier_sidecar.drain import DRAIN_PATH, TOKEN_HEADER
from tests.support.queues import depth, make_queue
from tests.support.servers import MotoServer, Received, WebhookRecorder, eventually, free_port
from tests.support.sidecars import InProcess, env_for, in_process

TOKEN = "t0ken-for-this-pod-only-0123456789"


def probe() -> dict[str, str]:
    return {"CARRIER_HTTP_ADDR": f"127.0.0.1:{free_port()}"}


async def get(port: int | None, path: str, token: str | None = None) -> tuple[int, str]:
    assert port is not None
    headers = {TOKEN_HEADER: token} if token is not None else {}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as response,
    ):
        return response.status, await response.text()


def holding(webhook: WebhookRecorder, release: asyncio.Event) -> None:
    async def hold(_r: web.Request, _g: Received) -> web.StreamResponse:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), 20)
        return web.Response(status=200)

    webhook.responder = hold


async def started(sidecar: InProcess) -> None:
    await eventually(lambda: sidecar.probe_port is not None, 10, "the probe server")
    await eventually(
        lambda: _status(get(sidecar.probe_port, "/readyz")), 10, "the sidecar to be ready"
    )


async def _status(call: Any) -> bool:
    status, _ = await call
    return bool(status == 200)


async def test_no_token_configured_means_no_drain_endpoint(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    await make_queue(sqs, queue_name)
    async with in_process(env_for(moto, queue_name, webhook.url, **probe())) as sidecar:
        await started(sidecar)
        assert (await get(sidecar.probe_port, DRAIN_PATH, TOKEN))[0] == 404
        assert (await get(sidecar.probe_port, "/readyz"))[0] == 200
        assert await sidecar.finish() == 0


async def test_wrong_or_missing_token_is_refused_and_drains_nothing(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    url = await make_queue(sqs, queue_name)
    env = env_for(moto, queue_name, webhook.url, CARRIER_DRAIN_TOKEN=TOKEN, **probe())
    async with in_process(env) as sidecar:
        await started(sidecar)
        assert (await get(sidecar.probe_port, DRAIN_PATH, "x" + TOKEN[1:]))[0] == 403
        assert (await get(sidecar.probe_port, DRAIN_PATH))[0] == 403
        assert (await get(sidecar.probe_port, "/readyz"))[0] == 200
        await sqs.send_message(QueueUrl=url, MessageBody="after the refused drains")
        await eventually(lambda: len(webhook.bodies()) == 1, 15, "a delivery: still receiving")
        assert await sidecar.finish() == 0


async def test_drain_waits_for_in_flight_then_idles_until_stopped(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    release = asyncio.Event()
    holding(webhook, release)
    url = await make_queue(sqs, queue_name)
    await sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(5)]
    )
    env = env_for(
        moto,
        queue_name,
        webhook.url,
        CARRIER_DRAIN_TOKEN=TOKEN,
        CARRIER_SQS_RECEIVER_WORKERS="2",
        CARRIER_SQS_BATCH_SIZE="4",
        **probe(),
    )
    try:
        async with in_process(env) as sidecar:
            await eventually(lambda: sidecar.probe_port is not None, 10, "the probe server")
            await eventually(lambda: len(webhook.received) == 2, 15, "two deliveries in flight")
            first = asyncio.ensure_future(get(sidecar.probe_port, DRAIN_PATH, TOKEN))
            second = asyncio.ensure_future(get(sidecar.probe_port, DRAIN_PATH, TOKEN))
            await eventually(
                lambda: _not_ready(sidecar.probe_port), 10, "/readyz to turn false while draining"
            )
            assert not first.done(), "answered before the in-flight deliveries finished"
            assert not second.done()
            release.set()
            assert (await asyncio.wait_for(first, 15))[0] == 200
            assert (await asyncio.wait_for(second, 15))[0] == 200
            visible, in_flight = await depth(sqs, url)
            delivered = len(webhook.received)
            assert in_flight == 0, "everything held was delivered and deleted, or released"
            assert delivered > 2, "the held messages went to the still-serving worker too"
            assert delivered + visible == 5
            # Drained, not exiting: the container must outlive its worker (native sidecar).
            assert sidecar.task is not None
            assert not sidecar.task.done()
            assert (await get(sidecar.probe_port, "/healthz"))[0] == 200
            assert (await get(sidecar.probe_port, DRAIN_PATH, TOKEN))[0] == 200, "repeat: at once"
            assert len(webhook.received) == delivered, "nothing received after the drain"
            assert await sidecar.finish(10) == 0
    finally:
        release.set()


async def _not_ready(port: int | None) -> bool:
    status, _ = await get(port, "/readyz")
    return status == 503
