"""Issue 13 §1: `Retry-After: 0` is floored by the backoff, on the real process against moto.

A rate limiter answering ``429 Retry-After: 0`` once made 100 messages cost 56 778 POSTs in 20 s
and, with ``maxReceiveCount=5``, dead-lettered 40 of 50 healthy messages in a 3 s overload.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.queues import depth, make_queue
from tests.support.servers import MotoServer, Received, WebhookRecorder, eventually, free_port
from tests.support.sidecars import env_for, sidecar_process

WINDOW = 8.0  # seconds of 429s counted from the first POST


def attempts_allowed(window: float, base: float = 1.0) -> int:
    """Most POSTs one message can get in ``window`` s: the n-th retry waits at least the lowest
    jittered backoff, ceil(base x 2^(n-1) / 2) whole seconds (and never under 1 s)."""
    attempts, elapsed, receives = 1, 0.0, 1
    while True:
        wait = max(1, -(-base * 2 ** (receives - 1) // 2))
        if elapsed + wait > window:
            return attempts
        elapsed += wait
        attempts += 1
        receives += 1


async def send(sqs: Any, url: str, count: int) -> None:
    for start in range(0, count, 10):
        entries = [
            {"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, min(start + 10, count))
        ]
        await sqs.send_message_batch(QueueUrl=url, Entries=entries)


async def sqs_calls(port: int) -> float:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("carrier_sqs_requests_total{")
    )


async def test_retry_after_0_posts_are_bounded_by_the_backoff(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    posts: list[float] = []

    async def limited(_r: web.Request, _g: Received) -> web.StreamResponse:
        posts.append(time.monotonic())
        return web.Response(status=429, headers={"Retry-After": "0"})

    webhook.responder = limited
    url = await make_queue(sqs, queue_name, VisibilityTimeout="60")
    await send(sqs, url, 100)
    probe = free_port()
    env = env_for(
        moto,
        queue_name,
        webhook.url,
        CARRIER_SQS_BATCH_SIZE="10",
        CARRIER_SQS_RECEIVER_WORKERS="10",
        CARRIER_HTTP_ADDR=f"127.0.0.1:{probe}",
    )
    async with sidecar_process(sidecar_command, env) as sidecar:
        await eventually(lambda: posts, 20, "the first POST")
        first = posts[0]
        await eventually(lambda: time.monotonic() - first >= WINDOW, WINDOW + 5, "the window")
        in_window = sum(1 for t in posts if t - first <= WINDOW)
        calls = await sqs_calls(probe)
        lines = len(sidecar.lines)
    bound = 100 * attempts_allowed(WINDOW)
    print(f"POSTs in {WINDOW:g}s: {in_window} (bound {bound}); SQS calls {calls:g}; lines {lines}")
    assert 100 <= in_window <= bound, f"{in_window} POSTs in {WINDOW}s, the backoff allows {bound}"
    # Each attempt costs at most a receive share and a visibility change: no SQS hot loop either.
    assert calls <= 2 * bound + 50


async def test_a_3s_overload_with_retry_after_0_dead_letters_nothing(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    overload_until: list[float] = []
    delivered: set[bytes] = set()

    async def overloaded(_r: web.Request, got: Received) -> web.StreamResponse:
        now = time.monotonic()
        if not overload_until:
            overload_until.append(now + 3.0)
        if now < overload_until[0]:
            return web.Response(status=429, headers={"Retry-After": "0"})
        delivered.add(got.body)
        return web.Response(status=200)

    webhook.responder = overloaded
    dlq_url = await make_queue(sqs, queue_name + "-dlq")
    attributes = await sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    arn = attributes["Attributes"]["QueueArn"]
    redrive = f'{{"deadLetterTargetArn": "{arn}", "maxReceiveCount": "5"}}'
    url = await make_queue(sqs, queue_name, VisibilityTimeout="60", RedrivePolicy=redrive)
    await send(sqs, url, 50)
    env = env_for(
        moto,
        queue_name,
        webhook.url,
        CARRIER_SQS_BATCH_SIZE="10",
        CARRIER_SQS_RECEIVER_WORKERS="10",
    )
    async with sidecar_process(sidecar_command, env):
        await eventually(lambda: len(delivered) == 50, 60, "all 50 delivered after the overload")

        async def settled() -> bool:
            return await depth(sqs, url) == (0, 0)

        await eventually(settled, 15, "every delivered message deleted")
    assert await depth(sqs, dlq_url) == (0, 0), "no healthy message dead-lettered"
