"""A misbehaving SQS-compatible endpoint: retried with backoff, no crash, nothing lost, recovery.

The real sidecar talks to a proxy in front of moto_server. First every ReceiveMessage is
answered badly for a while (each kind of misbehaviour in a seeded order) and the calls are
counted: a bounded number, not a busy loop. Then one in two Receive/Delete/ChangeVisibility
calls is spoiled, including answers lost *after* the server acted. Then it heals: every message
must be delivered with a 2xx and the queue must empty, with the same process still running.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.fuzz.sqs_mischief import KINDS
from tests.support.queues import queue_counts
from tests.support.servers import MotoServer, Received, WebhookRecorder, eventually
from tests.support.sidecar_runner import SidecarRunner
from tests.support.sqs_proxy import SqsProxy

ACTIONS = ("ReceiveMessage", "DeleteMessageBatch", "ChangeMessageVisibilityBatch")
RECEIVERS = 2
OUTAGE = 4.0
MESSAGES = 24


class Misbehaviour:
    """Bad answers to Receive for ``OUTAGE`` seconds, then one call in two for ``flaky`` calls."""

    def __init__(self, seed: int, flaky: int) -> None:
        self.kinds = list(KINDS)
        random.Random(seed).shuffle(self.kinds)
        self.bad_until = float("inf")
        self.flaky = flaky
        self.used: dict[str, int] = {}
        self._calls = 0
        self._n = 0

    def start(self) -> None:
        self.bad_until = time.monotonic() + OUTAGE

    async def __call__(
        self, request: web.Request, action: str, proxy: SqsProxy
    ) -> web.StreamResponse | None:
        if action not in ACTIONS:
            return None
        if time.monotonic() < self.bad_until:
            if action != "ReceiveMessage":
                return None
        else:
            self._calls += 1
            if self._calls > 2 * self.flaky or self._calls % 2:
                return None
        kind = self.kinds[self._n % len(self.kinds)]
        self._n += 1
        self.used[kind] = self.used.get(kind, 0) + 1
        answer = await KINDS[kind](request, action, proxy)  # type: ignore[misc]
        assert isinstance(answer, web.StreamResponse)
        return answer


@pytest.fixture
async def proxy(moto: MotoServer) -> AsyncIterator[SqsProxy]:
    started = await SqsProxy(upstream=moto.endpoint).start()
    try:
        yield started
    finally:
        await started.stop()


async def test_misbehaving_sqs_is_retried_with_backoff_and_recovers(
    moto: MotoServer, sqs: Any, queue_name: str, proxy: SqsProxy, tmp_path: Path
) -> None:
    url = (await sqs.create_queue(QueueName=queue_name, Attributes={"VisibilityTimeout": "2"}))[
        "QueueUrl"
    ]
    ids = [f"m-{i}" for i in range(MESSAGES)]
    for start in range(0, MESSAGES, 10):
        entries = [
            {"Id": str(n), "MessageBody": json.dumps({"id": mid})}
            for n, mid in enumerate(ids[start : start + 10])
        ]
        await sqs.send_message_batch(QueueUrl=url, Entries=entries)

    delivered: set[str] = set()

    async def answer(request: web.Request, received: Received) -> web.StreamResponse:
        mid = json.loads(received.body)["id"]
        # A third of first attempts fail, so visibility changes are exercised too.
        if request.headers.get("X-Carrier-Receive-Count") == "1" and int(mid[2:]) % 3 == 0:
            return web.Response(status=500)
        delivered.add(mid)
        return web.Response(status=200)

    misbehaviour = Misbehaviour(seed=8, flaky=20)
    proxy.mischief = misbehaviour
    webhook = await WebhookRecorder(responder=answer).start()
    runner = SidecarRunner(
        env={
            "CARRIER_SQS_ENDPOINT": proxy.endpoint,
            "CARRIER_SQS_QUEUE_NAME": queue_name,
            "CARRIER_SQS_BATCH_SIZE": "5",
            "CARRIER_SQS_RECEIVERS": str(RECEIVERS),
            "CARRIER_SQS_RECEIVER_WORKERS": "4",
            "CARRIER_SQS_WAIT_TIME": "1s",
            "CARRIER_SQS_VISIBILITY_TIMEOUT": "2s",
            "CARRIER_WEBHOOK_REQUEST_TIMEOUT": "2s",
            "CARRIER_RETRY_BACKOFF_BASE": "1s",
            "CARRIER_RETRY_BACKOFF_MAX": "1s",
            "CARRIER_SHUTDOWN_TIMEOUT": "5s",
            "CARRIER_HTTP_ADDR": "none",
        },
        webhook_url=f"{webhook.url}/hook",
        log_dir=tmp_path,
    )
    try:
        misbehaviour.start()
        await runner.start()
        await eventually(
            lambda: time.monotonic() > misbehaviour.bad_until or not runner.alive(),
            OUTAGE + 5,
            "the outage to pass",
        )
        assert runner.alive(), runner.log_tail()
        receives = [t for t, a in proxy.requests if a == "ReceiveMessage"]
        during = [t for t in receives if t < misbehaviour.bad_until]
        # Backoff starts at 0.25-0.5 s and doubles: a handful of calls per receiver, never a
        # busy loop (which would make hundreds), and at least one retry each (not given up).
        assert RECEIVERS <= len(during) <= RECEIVERS * 8, (len(during), runner.log_tail())

        await eventually(
            lambda: len(delivered) == MESSAGES or not runner.alive(), 45, "every message delivered"
        )
        assert runner.alive(), runner.log_tail()

        async def empty() -> bool:
            counts = await queue_counts(sqs, url)
            return not any(counts.values()) or not runner.alive()

        await eventually(empty, 20, "the queue to empty", every=0.25)
        assert runner.alive(), runner.log_tail()
        assert await runner.end("final", 15) == 0, runner.log_tail()
    finally:
        await runner.close()
        await webhook.stop()
    assert set(misbehaviour.used) == set(KINDS), misbehaviour.used
    assert "Traceback" not in runner.log_tail(lines=10_000)


# Answers no SQS should send, shaped enough to get past the JSON parser: the sidecar must log
# and retry, not crash (a receive loop that dies stops the whole pod's work).
MALFORMED: dict[str, list[object]] = {
    "ReceiveMessage": [
        {"Messages": [{"MessageId": "no-handle-no-body"}]},
        {"Messages": [{"MessageId": "no-body", "ReceiptHandle": "not-a-real-handle"}]},
        {"Messages": "not-a-list"},
        {"Messages": [42, None]},
    ],
    "DeleteMessageBatch": [{"Successful": "everything", "Failed": None}, {"Failed": [{}]}],
    "ChangeMessageVisibilityBatch": [{"Successful": 7}, {"Failed": [{"Id": "999"}]}],
}


async def test_malformed_answers_are_survived(
    moto: MotoServer, sqs: Any, queue_name: str, proxy: SqsProxy, tmp_path: Path
) -> None:
    url = (await sqs.create_queue(QueueName=queue_name, Attributes={"VisibilityTimeout": "2"}))[
        "QueueUrl"
    ]
    ids = [f"m-{i}" for i in range(6)]
    await sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(n), "MessageBody": json.dumps({"id": m})} for n, m in enumerate(ids)],
    )
    left = {action: list(answers) for action, answers in MALFORMED.items()}

    async def malformed(
        _request: web.Request, action: str, _proxy: SqsProxy
    ) -> web.StreamResponse | None:
        if left.get(action):
            doc = left[action].pop(0)
            return web.Response(
                status=200, body=json.dumps(doc).encode(), content_type="application/x-amz-json-1.0"
            )
        return None

    delivered: set[str] = set()

    async def answer(request: web.Request, received: Received) -> web.StreamResponse:
        mid = json.loads(received.body)["id"]
        if request.headers.get("X-Carrier-Receive-Count") == "1" and mid in ("m-0", "m-1"):
            return web.Response(status=503)  # a failure, so visibility changes happen too
        delivered.add(mid)
        return web.Response(status=200)

    proxy.mischief = malformed
    webhook = await WebhookRecorder(responder=answer).start()
    runner = SidecarRunner(
        env={
            "CARRIER_SQS_ENDPOINT": proxy.endpoint,
            "CARRIER_SQS_QUEUE_NAME": queue_name,
            "CARRIER_SQS_BATCH_SIZE": "3",
            "CARRIER_SQS_WAIT_TIME": "1s",
            "CARRIER_SQS_VISIBILITY_TIMEOUT": "2s",
            "CARRIER_RETRY_BACKOFF_BASE": "1s",
            "CARRIER_RETRY_BACKOFF_MAX": "1s",
            "CARRIER_HTTP_ADDR": "none",
        },
        webhook_url=f"{webhook.url}/hook",
        log_dir=tmp_path,
    )
    try:
        await runner.start()
        await eventually(
            lambda: (len(delivered) == len(ids) and not any(left.values())) or not runner.alive(),
            30,
            "every message delivered past the malformed answers",
        )
        assert runner.alive(), runner.log_tail()

        async def empty() -> bool:
            counts = await queue_counts(sqs, url)
            return not any(counts.values()) or not runner.alive()

        await eventually(empty, 20, "the queue to empty", every=0.25)
        assert runner.alive(), runner.log_tail()
        assert await runner.end("final", 15) == 0, runner.log_tail()
    finally:
        await runner.close()
        await webhook.stop()


async def test_a_flaky_start_up_is_retried(
    moto: MotoServer, sqs: Any, queue_name: str, proxy: SqsProxy, tmp_path: Path
) -> None:
    """Throttling and a 500 on the queue lookup at start-up: retried, then the sidecar runs."""
    url = (await sqs.create_queue(QueueName=queue_name))["QueueUrl"]
    await sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": "m-0"}))
    spoil = [KINDS["throttling"], KINDS["http_500"]]

    async def flaky_lookup(
        request: web.Request, action: str, proxy: SqsProxy
    ) -> web.StreamResponse | None:
        if action in ("GetQueueUrl", "GetQueueAttributes") and spoil:
            answer = await spoil.pop(0)(request, action, proxy)  # type: ignore[misc]
            assert isinstance(answer, web.StreamResponse)
            return answer
        return None

    proxy.mischief = flaky_lookup
    webhook = await WebhookRecorder().start()
    runner = SidecarRunner(
        env={
            "CARRIER_SQS_ENDPOINT": proxy.endpoint,
            "CARRIER_SQS_QUEUE_NAME": queue_name,
            "CARRIER_SQS_WAIT_TIME": "1s",
            "CARRIER_HTTP_ADDR": "none",
        },
        webhook_url=f"{webhook.url}/hook",
        log_dir=tmp_path,
    )
    try:
        await runner.start()
        await eventually(
            lambda: bool(webhook.bodies()) or not runner.alive(), 20, "the message delivered"
        )
        assert runner.alive(), runner.log_tail()
        assert not spoil, "the start-up never met the bad answers"
        assert await runner.end("final", 15) == 0, runner.log_tail()
    finally:
        await runner.close()
        await webhook.stop()
