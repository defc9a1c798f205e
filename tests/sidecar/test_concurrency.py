"""At most receivers x workers in flight, and one slow delivery never stalls the others."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

from aiohttp import web

from tests.support.queues import drained, make_queue
from tests.support.servers import MotoServer, Received, WebhookRecorder, eventually
from tests.support.sidecars import env_for, in_process


async def test_in_flight_never_exceeds_receivers_times_workers(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    now = 0
    peak = 0

    async def busy(_r: web.Request, _g: Received) -> web.StreamResponse:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        try:
            await asyncio.sleep(0.15)  # the webhook's own work, not test synchronisation
        finally:
            now -= 1
        return web.Response(status=200)

    webhook.responder = busy
    url = await make_queue(sqs, queue_name)
    for start in range(0, 40, 10):
        await sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)],
        )
    env = env_for(
        moto,
        queue_name,
        webhook.url,
        CARRIER_SQS_RECEIVERS="2",
        CARRIER_SQS_RECEIVER_WORKERS="3",
        CARRIER_SQS_BATCH_SIZE="10",
    )
    async with in_process(env):
        await eventually(lambda: drained(sqs, url), 30, "the queue to drain")
    bodies = Counter(webhook.bodies())
    assert set(bodies) == {f"m{i}".encode() for i in range(40)}
    duplicates = sum(bodies.values()) - 40  # moto may hand one message to two receivers
    assert duplicates <= 2, bodies
    assert peak <= 6
    assert peak >= 4, "the budget was used, not just one slot"


async def test_one_slow_delivery_does_not_stall_the_others(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    release = asyncio.Event()

    async def slow_first(_r: web.Request, got: Received) -> web.StreamResponse:
        if got.body == b"slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(release.wait(), 20)
        return web.Response(status=200)

    webhook.responder = slow_first
    url = await make_queue(sqs, queue_name)
    await sqs.send_message(QueueUrl=url, MessageBody="slow")
    env = env_for(
        moto,
        queue_name,
        webhook.url,
        CARRIER_SQS_RECEIVER_WORKERS="3",
        CARRIER_SQS_BATCH_SIZE="3",
    )
    try:
        async with in_process(env):
            await eventually(lambda: webhook.received, 10, "the slow message to be POSTed")
            await sqs.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "MessageBody": f"fast{i}"} for i in range(8)],
            )
            fast = {f"fast{i}".encode() for i in range(8)}
            await eventually(
                lambda: fast <= set(webhook.bodies()), 15, "every fast message while one is slow"
            )
            assert not release.is_set()
            release.set()
            await eventually(lambda: drained(sqs, url), 10, "the queue to drain")
    finally:
        release.set()
