"""The health gate, probes, metrics and stat log, wired into the delivery flow (integration)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.queues import depth, drained, make_queue
from tests.support.servers import MotoServer, Received, WebhookRecorder, eventually, free_port
from tests.support.sidecars import env_for, in_process, sidecar_process


def receives(sidecar: Any) -> float:
    total = 0.0
    for outcome in ("ok", "error"):
        total += (
            sidecar.metrics.registry.get_sample_value(
                "carrier_sqs_requests_total", {"action": "ReceiveMessage", "outcome": outcome}
            )
            or 0.0
        )
    return total


class Worker:
    """A webhook with a health endpoint whose answer the test flips."""

    def __init__(self, webhook: WebhookRecorder) -> None:
        self.healthy = False
        self.release = asyncio.Event()
        self.hold = False
        webhook.responder = self.answer

    async def answer(self, request: web.Request, _got: Received) -> web.StreamResponse:
        if request.path == "/health":
            return web.Response(status=200 if self.healthy else 503)
        if self.hold:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), 20)
        return web.Response(status=200)


def posts(webhook: WebhookRecorder) -> list[Received]:
    return [r for r in webhook.received if r.method == "POST"]


async def test_health_gate_blocks_receiving_until_the_webhook_is_up(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    worker = Worker(webhook)
    url = await make_queue(sqs, queue_name)
    await sqs.send_message(QueueUrl=url, MessageBody="waits")
    env = env_for(
        moto,
        queue_name,
        webhook.url + "/work",
        CARRIER_WEBHOOK_HEALTH_CHECK_ENDPOINT=webhook.url + "/health",
        CARRIER_WEBHOOK_HEALTH_CHECK_INTERVAL="1s",
    )
    async with in_process(env) as sidecar:
        await eventually(lambda: len(webhook.received) >= 3, 10, "several failed health checks")
        assert receives(sidecar) == 0, "nothing received while the webhook is down"
        assert await depth(sqs, url) == (1, 0)
        worker.healthy = True
        await eventually(lambda: drained(sqs, url), 10, "delivery once the webhook is up")
    assert [r.body for r in posts(webhook)] == [b"waits"]


async def test_webhook_offline_releases_in_flight_work_and_exits_3(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    worker = Worker(webhook)
    worker.healthy = True
    worker.hold = True
    url = await make_queue(sqs, queue_name, VisibilityTimeout="60")
    await sqs.send_message(QueueUrl=url, MessageBody="in flight")
    env = env_for(
        moto,
        queue_name,
        webhook.url + "/work",
        CARRIER_WEBHOOK_HEALTH_CHECK_ENDPOINT=webhook.url + "/health",
        CARRIER_WEBHOOK_HEALTH_CHECK_INTERVAL="200ms",
        CARRIER_WEBHOOK_OFFLINE_THRESHOLD_COUNT="2",
        CARRIER_SHUTDOWN_TIMEOUT="300ms",
    )
    try:
        async with in_process(env) as sidecar:
            await eventually(lambda: posts(webhook), 10, "the delivery to start")
            worker.healthy = False
            assert sidecar.task is not None
            assert await asyncio.wait_for(sidecar.task, 15) == 3
            assert sidecar.counter("visibility_changes_release") == 1
    finally:
        worker.release.set()
    assert await depth(sqs, url) == (1, 0), "released: visible again at once"


async def test_metrics_move_during_a_real_delivery(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    url = await make_queue(sqs, queue_name)
    env = env_for(moto, queue_name, webhook.url, CARRIER_HTTP_ADDR=f"127.0.0.1:{free_port()}")
    async with in_process(env) as sidecar, aiohttp.ClientSession() as client:
        await eventually(lambda: sidecar.probe_port is not None, 10, "the probe server")
        metrics_url = f"http://127.0.0.1:{sidecar.probe_port}/metrics"

        async def scrape() -> dict[str, float]:
            async with client.get(metrics_url) as response:
                assert response.status == 200
                text = await response.text()
            values = {}
            for line in text.splitlines():
                if line.startswith("carrier_") and " " in line:
                    name, value = line.rsplit(" ", 1)
                    values[name] = float(value)
            return values

        before = await scrape()
        await sqs.send_message(QueueUrl=url, MessageBody="counted")
        await eventually(lambda: drained(sqs, url), 10, "the delivery")
        after = await scrape()
    success = 'carrier_deliveries_total{outcome="success"}'
    assert after["carrier_messages_received_total"] - before["carrier_messages_received_total"] == 1
    assert after[success] - before.get(success, 0) == 1
    assert after["carrier_messages_deleted_total"] - before["carrier_messages_deleted_total"] == 1
    assert after['carrier_delivery_duration_seconds_count{outcome="success"}'] == 1
    assert after["carrier_queue_wait_seconds_count"] == 1
    receive_ok = 'carrier_sqs_requests_total{action="ReceiveMessage",outcome="ok"}'
    assert after[receive_ok] > before[receive_ok]


async def test_probes_and_stat_log_through_the_real_process(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    await make_queue(sqs, queue_name)
    port = free_port()
    env = env_for(
        moto,
        queue_name,
        webhook.url,
        CARRIER_HTTP_ADDR=f"127.0.0.1:{port}",
        CARRIER_ENABLE_STAT_LOG="true",
        CARRIER_STAT_LOG_TIMER="300ms",
    )
    async with sidecar_process(sidecar_command, env) as sidecar, aiohttp.ClientSession() as client:

        async def status(path: str) -> int:
            try:
                async with client.get(f"http://127.0.0.1:{port}{path}") as response:
                    return response.status
            except aiohttp.ClientError:
                return 0

        async def ready() -> bool:
            return await status("/readyz") == 200

        await eventually(ready, 15, "/readyz to answer 200")
        assert await status("/healthz") == 200
        await eventually(lambda: sidecar.logged('"msg": "stats"'), 10, "a stats line")
        sidecar.proc.send_signal(signal.SIGTERM)
        assert await sidecar.wait(15) == 0
    stats = next(json.loads(line) for line in sidecar.lines if '"msg": "stats"' in line)
    assert "messages_received" in stats


async def test_stop_while_waiting_for_the_webhook_exits_0_without_receiving(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    Worker(webhook)  # never healthy
    url = await make_queue(sqs, queue_name)
    await sqs.send_message(QueueUrl=url, MessageBody="untouched")
    env = env_for(
        moto,
        queue_name,
        webhook.url + "/work",
        CARRIER_WEBHOOK_HEALTH_CHECK_ENDPOINT=webhook.url + "/health",
    )
    async with in_process(env) as sidecar:
        await eventually(lambda: webhook.received, 10, "a health check")
        assert await sidecar.finish(timeout=5) == 0
        assert receives(sidecar) == 0
    assert await depth(sqs, url) == (1, 0)
