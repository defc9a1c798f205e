"""Odd webhook answers against the real process and moto: never a crash, never a lost message.

Each message gets one odd answer on its first POST (status, Retry-After shape, slow, truncated,
cut mid-headers) and a plain 200 afterwards. At the end every message is either delivered with
a 2xx or still in the queue (a Retry-After of 12 h keeps it invisible), and the process that saw
all of it is still running and stops with exit 0.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support.queues import queue_counts
from tests.support.servers import MotoServer, Received, WebhookRecorder, eventually
from tests.support.sidecar_runner import SidecarRunner

REQUEST_TIMEOUT = 1.5
Odd = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _status(status: int, **headers: str) -> Odd:
    async def answer(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers=headers)

    return answer


async def _slow_200(_request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(REQUEST_TIMEOUT + 1)  # the misbehaviour: answers after the timeout
    return web.Response(status=200)


async def _truncated_200(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200)
    response.content_length = 1000
    await response.prepare(request)
    await response.write(b"x" * 10)
    if request.transport is not None:
        request.transport.abort()
    return response


async def _truncated_500(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=500)
    response.content_length = 1000
    await response.prepare(request)
    await response.write(b"partial")
    if request.transport is not None:
        request.transport.abort()
    return response


async def _cut_mid_headers(request: web.Request) -> web.StreamResponse:
    if request.transport is not None:
        request.transport.write(b"HTTP/1.1 200 OK\r\nContent-Len")
        request.transport.abort()
    return web.Response(status=500)


async def _huge_body_200(_request: web.Request) -> web.StreamResponse:
    return web.Response(status=200, body=b"\xff" * (2 * 1024 * 1024))


ODD: dict[str, Odd] = {
    "429 negative": _status(429, **{"Retry-After": "-5"}),
    "429 huge number": _status(429, **{"Retry-After": "9" * 40}),
    "503 far-future date": _status(503, **{"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}),
    "429 past date": _status(429, **{"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}),
    "429 garbage": _status(429, **{"Retry-After": "soon\u00b2"}),
    "503 unicode digits": _status(503, **{"Retry-After": "\u00b2"}),
    "429 enormous header": _status(429, **{"Retry-After": "1" * 7000}),
    "503 no header": _status(503),
    "299": _status(299),
    "304": _status(304),
    "418": _status(418),
    "599": _status(599),
    "slow 200": _slow_200,
    "truncated 200": _truncated_200,
    "truncated 500": _truncated_500,
    "cut mid-headers": _cut_mid_headers,
    "huge body 200": _huge_body_200,
}
# Answers that legitimately keep a message invisible for up to 12 h (SQS's cap): it may stay.
MAY_STAY = {"429 huge number", "503 far-future date", "429 enormous header"}
SENDS_2XX = {"299", "slow 200", "truncated 200", "huge body 200"}


async def test_odd_webhook_answers_never_crash_or_lose(
    moto: MotoServer, sqs: Any, queue_name: str, tmp_path: Path
) -> None:
    url = (await sqs.create_queue(QueueName=queue_name, Attributes={"VisibilityTimeout": "2"}))[
        "QueueUrl"
    ]
    names = list(ODD)
    for start in range(0, len(names), 10):
        await sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "MessageBody": json.dumps({"id": name})}
                for n, name in enumerate(names[start : start + 10])
            ],
        )
    attempts: Counter[str] = Counter()
    delivered: set[str] = set()

    async def answer(request: web.Request, received: Received) -> web.StreamResponse:
        name = json.loads(received.body)["id"]
        attempts[name] += 1
        if attempts[name] == 1:
            if name in SENDS_2XX:
                delivered.add(name)  # a 2xx status line went out: the sidecar may delete it
            return await ODD[name](request)
        delivered.add(name)
        return web.Response(status=200)

    webhook = await WebhookRecorder(responder=answer).start()
    runner = SidecarRunner(
        env={
            "CARRIER_SQS_ENDPOINT": moto.endpoint,
            "CARRIER_SQS_QUEUE_NAME": queue_name,
            "CARRIER_SQS_BATCH_SIZE": "10",
            "CARRIER_SQS_RECEIVER_WORKERS": "20",
            "CARRIER_SQS_WAIT_TIME": "1s",
            "CARRIER_SQS_VISIBILITY_TIMEOUT": "2s",
            "CARRIER_WEBHOOK_REQUEST_TIMEOUT": f"{REQUEST_TIMEOUT}s",
            "CARRIER_RETRY_BACKOFF_BASE": "1s",
            "CARRIER_RETRY_BACKOFF_MAX": "1s",
            "CARRIER_HTTP_ADDR": "none",
        },
        webhook_url=f"{webhook.url}/hook",
        log_dir=tmp_path,
    )
    must_deliver = set(names) - MAY_STAY
    queue_left: dict[str, int] = {}

    async def settled() -> bool:
        queue_left.update(await queue_counts(sqs, url))
        in_queue = sum(queue_left.values())
        # A 2xx'd message leaves the queue; an undelivered one must still be in it.
        return (
            must_deliver <= delivered and in_queue == len(set(names) - delivered)
        ) or not runner.alive()

    try:
        await runner.start()
        try:
            await eventually(settled, 40, "every message delivered or kept", every=0.25)
        except TimeoutError as exc:
            exc.add_note(
                f"attempts={dict(attempts)} delivered={sorted(delivered)} left={queue_left}"
            )
            exc.add_note(runner.log_tail(lines=60))
            raise
        assert runner.alive(), runner.log_tail()
        assert await runner.end("final", 15) == 0, runner.log_tail()
    finally:
        await runner.close()
        await webhook.stop()
    # After the stop, what is left is deferred by its Retry-After (invisible), not merely held by
    # the process (a held message is released at shutdown and would be visible again).
    queue_left.clear()
    await settled()
    assert queue_left["ApproximateNumberOfMessages"] == 0, queue_left
    assert queue_left["ApproximateNumberOfMessagesNotVisible"] == len(set(names) - delivered)
    assert set(attempts) == set(names), f"never posted: {set(names) - set(attempts)}"
    assert must_deliver <= delivered, f"not delivered: {must_deliver - delivered}"
    assert "Traceback" not in runner.log_tail(lines=10_000)
