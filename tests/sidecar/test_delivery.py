"""The delivery contract of issue 2, bullet by bullet, against moto_server and a real webhook."""

from __future__ import annotations

import asyncio
import contextlib
import time
from email.utils import formatdate
from typing import Any

import pytest
from aiohttp import web

from tests.support.queues import depth, drained, make_queue
from tests.support.servers import (
    MotoServer,
    Received,
    WebhookRecorder,
    always,
    eventually,
    free_port,
)
from tests.support.sidecars import env_for, in_process


def sample(sidecar: Any, name: str, **labels: str) -> float:
    return sidecar.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_posts_to_the_exact_url_with_path_and_query(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    url = await make_queue(sqs, queue_name)
    await sqs.send_message(QueueUrl=url, MessageBody="x")
    target = "/hooks/v1/job%2Fid/?token=a%2Bb%3D&x=1&x=2&empty="
    async with in_process(env_for(moto, queue_name, webhook.url + target)):
        await eventually(lambda: webhook.received, 10, "the POST")
    (got,) = webhook.received
    assert got.method == "POST"
    assert got.path_qs == target


async def test_bodies_are_byte_identical(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    url = await make_queue(sqs, queue_name, MaximumMessageSize="1048576")
    large = ("0123456789abcdef" * 64 + "é✓日本\n") * 1000  # ~1 MiB of UTF-8 text
    bodies = ['{"a": 1}', "héllo wörld ✓ 日本語 🚀", "  leading and trailing  \n", large]
    assert len(large.encode()) > 1_000_000
    for body in bodies:
        await sqs.send_message(QueueUrl=url, MessageBody=body)
    async with in_process(env_for(moto, queue_name, webhook.url, CARRIER_SQS_BATCH_SIZE="10")):
        await eventually(lambda: len(webhook.received) >= 4, 20, "four POSTs")
        await eventually(lambda: drained(sqs, url), 10, "the queue to drain")
    assert sorted(webhook.bodies()) == sorted(b.encode("utf-8") for b in bodies)


async def test_headers(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    url = await make_queue(sqs, queue_name)
    sent = await sqs.send_message(
        QueueUrl=url,
        MessageBody="<a/>",
        MessageAttributes={
            "Body.ContentType": {"DataType": "String", "StringValue": "application/xml"},
            "tenant": {"DataType": "String", "StringValue": "Zürich"},
            "priority": {"DataType": "Number", "StringValue": "5"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    await sqs.send_message(QueueUrl=url, MessageBody="{}")
    before = int(time.time())
    env = env_for(
        moto, queue_name, webhook.url, CARRIER_WEBHOOK_DEFAULT_CONTENT_TYPE="text/x-default"
    )
    async with in_process(env):
        await eventually(lambda: len(webhook.received) >= 2, 10, "two POSTs")
    by_body = {r.body: r.headers for r in webhook.received}
    xml, plain = by_body[b"<a/>"], by_body[b"{}"]
    assert xml["Content-Type"] == "application/xml"
    assert plain["Content-Type"] == "text/x-default"
    assert xml["X-Carrier-Receive-Count"] == "1"
    first = int(xml["X-Carrier-First-Receive-Time"])
    assert before - 60 <= first <= time.time() + 1, "whole seconds since the epoch"
    assert xml["X-Carrier-Message-Id"] == sent["MessageId"]
    assert xml["X-Carrier-Attr-tenant"] == "UTF-8''Z%C3%BCrich"
    assert xml["X-Carrier-Attr-priority"] == "5"
    assert not any(name.lower().endswith("blob") for name in xml)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_every_2xx_deletes_in_batches(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str, status: int
) -> None:
    webhook.responder = always(status)
    url = await make_queue(sqs, queue_name)
    await sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)]
    )
    env = env_for(
        moto,
        queue_name,
        webhook.url,
        CARRIER_SQS_BATCH_SIZE="10",
        CARRIER_SQS_RECEIVER_WORKERS="10",
    )
    async with in_process(env) as sidecar:
        await eventually(lambda: drained(sqs, url), 15, "every message deleted")
        # The queue can be empty a moment before the DeleteMessageBatch answer is counted.
        await eventually(lambda: sidecar.counter("messages_deleted") == 10, 5, "10 deletes")
        calls = sample(
            sidecar, "carrier_sqs_requests_total", action="DeleteMessageBatch", outcome="ok"
        )
        assert 1 <= calls < 10, "deletes are batched"
    assert len(webhook.received) == 10


@pytest.mark.parametrize(
    ("status", "form"), [(429, "delta"), (503, "delta"), (429, "date"), (503, "date")]
)
async def test_retry_after_sets_the_visibility(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str, status: int, form: str
) -> None:
    seen: list[float] = []

    async def answer(_r: web.Request, _g: Received) -> web.StreamResponse:
        seen.append(time.monotonic())
        if len(seen) > 1:
            return web.Response(status=200)
        value = "2" if form == "delta" else formatdate(time.time() + 3, usegmt=True)
        return web.Response(status=status, headers={"Retry-After": value})

    webhook.responder = answer
    url = await make_queue(sqs, queue_name, VisibilityTimeout="60")
    await sqs.send_message(QueueUrl=url, MessageBody="again")
    async with in_process(env_for(moto, queue_name, webhook.url)) as sidecar:
        await eventually(lambda: len(seen) >= 2, 15, "the message to come back")
        await eventually(lambda: drained(sqs, url), 10, "the second try to delete it")
        assert sidecar.counter("visibility_changes_retry_after") == 1
    gap = seen[1] - seen[0]
    assert 1.0 <= gap < 10, f"came back after {gap:.1f}s (queue visibility is 60s)"
    assert webhook.received[1].headers["X-Carrier-Receive-Count"] == "2"


@pytest.mark.parametrize("failure", [500, 404, 302, "429-no-retry-after", "refused"])
async def test_other_failures_leave_the_message(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str, failure: object
) -> None:
    async def answer(_r: web.Request, _g: Received) -> web.StreamResponse:
        status = 429 if failure == "429-no-retry-after" else int(str(failure))
        return web.Response(status=status, headers={"Location": "/elsewhere"})

    webhook.responder = answer
    target = f"http://127.0.0.1:{free_port()}/" if failure == "refused" else webhook.url
    url = await make_queue(sqs, queue_name, VisibilityTimeout="60")
    await sqs.send_message(QueueUrl=url, MessageBody="stays")
    env = env_for(moto, queue_name, target, CARRIER_RETRY_BACKOFF="queue")
    async with in_process(env) as sidecar:
        await eventually(lambda: sidecar.counter("deliveries_failure") >= 1, 10, "a failure")
        assert await depth(sqs, url) == (0, 1), "not deleted: invisible until its visibility ends"
        assert sidecar.counter("messages_deleted") == 0
        assert sidecar.counter("visibility_changes_backoff") == 0
    expected_posts = 0 if failure == "refused" else 1
    assert len(webhook.received) == expected_posts


async def test_timeout_is_a_failure(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    gate = asyncio.Event()

    async def slow(_r: web.Request, _g: Received) -> web.StreamResponse:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gate.wait(), 10)
        return web.Response(status=200)

    webhook.responder = slow
    url = await make_queue(sqs, queue_name, VisibilityTimeout="60")
    await sqs.send_message(QueueUrl=url, MessageBody="slow")
    env = env_for(
        moto,
        queue_name,
        webhook.url,
        CARRIER_WEBHOOK_REQUEST_TIMEOUT="300ms",
        CARRIER_RETRY_BACKOFF="queue",
    )
    try:
        async with in_process(env) as sidecar:
            await eventually(lambda: sidecar.counter("deliveries_timeout") >= 1, 10, "a timeout")
            assert sidecar.counter("messages_deleted") == 0
            assert await depth(sqs, url) == (0, 1)
    finally:
        gate.set()


async def test_failures_back_off_exponentially(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    webhook.responder = always(500)
    url = await make_queue(sqs, queue_name, VisibilityTimeout="60")
    await sqs.send_message(QueueUrl=url, MessageBody="poison")
    env = env_for(moto, queue_name, webhook.url, CARRIER_RETRY_BACKOFF_BASE="1s")
    started = time.monotonic()
    async with in_process(env) as sidecar:
        await eventually(lambda: len(webhook.received) >= 3, 20, "three attempts")
        assert sidecar.counter("visibility_changes_backoff") >= 2
    counts = [r.headers["X-Carrier-Receive-Count"] for r in webhook.received[:3]]
    assert counts == ["1", "2", "3"]
    assert time.monotonic() - started < 20, "retried at the backoff pace, not the 60s visibility"


async def test_poison_message_reaches_the_dead_letter_queue(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    webhook.responder = always(500)
    dlq_url = await make_queue(sqs, queue_name + "-dlq")
    dlq_arn = (await sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"]))[
        "Attributes"
    ]["QueueArn"]
    redrive = f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": "2"}}'
    url = await make_queue(sqs, queue_name, VisibilityTimeout="60", RedrivePolicy=redrive)
    await sqs.send_message(QueueUrl=url, MessageBody="poison")
    async with in_process(env_for(moto, queue_name, webhook.url)):
        await eventually(lambda: len(webhook.received) >= 2, 15, "two attempts")

        async def in_dlq() -> bool:
            return (await depth(sqs, dlq_url))[0] == 1

        await eventually(in_dlq, 15, "the message in the dead-letter queue")
    assert len(webhook.received) == 2


async def test_queue_url_instead_of_name_and_endpoint(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    """CARRIER_SQS_QUEUE_URL alone: a non-AWS URL host is also the endpoint (local servers)."""
    url = await make_queue(sqs, queue_name)
    await sqs.send_message(QueueUrl=url, MessageBody="by url")
    env = env_for(moto, queue_name, webhook.url, CARRIER_SQS_QUEUE_URL=url)
    del env["CARRIER_SQS_QUEUE_NAME"], env["CARRIER_SQS_ENDPOINT"]
    async with in_process(env):
        await eventually(lambda: drained(sqs, url), 10, "the delivery")
    assert webhook.bodies() == [b"by url"]


async def test_failed_batch_entries_are_logged_never_dropped_silently(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The message vanishes (purged) while its POST runs; SQS then fails its visibility entry."""
    url = await make_queue(sqs, queue_name)

    async def purge_then_retry_later(_r: web.Request, _g: Received) -> web.StreamResponse:
        await sqs.purge_queue(QueueUrl=url)
        return web.Response(status=429, headers={"Retry-After": "5"})

    webhook.responder = purge_then_retry_later
    sent = await sqs.send_message(QueueUrl=url, MessageBody="vanishes")
    env = env_for(moto, queue_name, webhook.url, CARRIER_SQS_HEARTBEAT="false")
    async with in_process(env) as sidecar:

        def logged() -> bool:
            return any("receipt handle invalid" in r.getMessage() for r in caplog.records)

        await eventually(logged, 10, "the failed entry to be logged")
        assert sidecar.counter("visibility_changes_retry_after") == 0
    (record,) = [r for r in caplog.records if "receipt handle invalid" in r.getMessage()]
    assert record.levelname == "ERROR"
    assert record.message_id == sent["MessageId"]  # type: ignore[attr-defined]
    assert record.code == "ReceiptHandleIsInvalid"  # type: ignore[attr-defined]
