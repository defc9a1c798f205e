"""The real ``carrier-sidecar`` against an SQS server the rest of the suite never uses.

Driven only by the Go Carrier's ``CARRIER_*`` variables (plus ``CARRIER_HTTP_ADDR``, so the
probe port cannot clash with another test), as a team swapping the Go image would. The server
is fauxqs 1.x (npm, Node 20, started on loopback by ``bench/sqs_server.py``); without node/npm,
or if it cannot be installed, the module is skipped with the reason. Any other server can be
tried with ``CARRIER_COMPAT_ENDPOINT=http://127.0.0.1:4566`` (e.g. LocalStack): see
docs/compatibility.md.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate
from typing import Any

import pytest
from aiobotocore.session import get_session
from aiohttp import web

from tests.support.queues import depth
from tests.support.servers import Received, WebhookRecorder, eventually, free_port
from tests.support.sidecars import SidecarProcess, sidecar_process

GO_ONLY = {  # the Go Carrier's names; CARRIER_HTTP_ADDR only moves the probe port off :9102
    "CARRIER_SQS_BATCH_SIZE": "10",
    "CARRIER_SQS_RECEIVERS": "2",
    "CARRIER_SQS_RECEIVER_WORKERS": "4",
    "CARRIER_WEBHOOK_REQUEST_TIMEOUT": "10s",
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    given = os.environ.get("CARRIER_COMPAT_ENDPOINT")
    if given:
        yield given
        return
    from bench import sqs_server

    if not sqs_server.node_available():
        pytest.skip("node/npm not found: the fauxqs compatibility check needs Node 20")
    try:
        server = sqs_server.start_fauxqs()
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        pytest.skip(f"fauxqs could not be installed or started: {exc}")
    try:
        yield server.endpoint
    finally:
        server.stop()


@pytest.fixture
async def sqs(endpoint: str) -> AsyncIterator[Any]:
    async with get_session().create_client(
        "sqs", region_name="us-east-1", endpoint_url=endpoint
    ) as client:
        yield client


def go_env(endpoint: str, queue: str, webhook: str, **more: str) -> dict[str, str]:
    return {
        **GO_ONLY,
        "CARRIER_SQS_ENDPOINT": endpoint,
        "CARRIER_SQS_QUEUE_NAME": queue,
        "CARRIER_WEBHOOK_ENDPOINT": webhook,
        "CARRIER_HTTP_ADDR": f"127.0.0.1:{free_port()}",
        **more,
    }


async def stop(sidecar: SidecarProcess) -> int:
    sidecar.proc.terminate()
    return await sidecar.wait(30)


async def test_standard_queue_contract(
    endpoint: str, sqs: Any, webhook: WebhookRecorder, sidecar_command: list[str]
) -> None:
    """Headers, 2xx deletes, 429 with delta and HTTP-date, 500 kept, SIGTERM exits 0."""
    name = f"compat-{uuid.uuid4().hex[:8]}"
    url = (await sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"}))[
        "QueueUrl"
    ]
    seen: dict[str, int] = {}
    at: dict[str, list[float]] = {}

    async def answer(_request: web.Request, got: Received) -> web.StreamResponse:
        body = got.body.decode()
        seen[body] = seen.get(body, 0) + 1
        at.setdefault(body, []).append(time.monotonic())
        if body == "delta" and seen[body] == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        if body == "date" and seen[body] == 1:
            return web.Response(
                status=503, headers={"Retry-After": formatdate(time.time() + 2, usegmt=True)}
            )
        if body == "fail":
            return web.Response(status=500)
        return web.Response(status=204)

    webhook.responder = answer
    sent_at = time.time()
    ids = {}
    for body, attrs in [
        (
            "plain",
            {
                "Body.ContentType": ("String", "text/plain"),
                "tenant": ("String", "Zürich"),
                "n": ("Number", "5"),
            },
        ),
        ("delta", {}),
        ("date", {}),
        ("fail", {}),
    ]:
        sent = await sqs.send_message(
            QueueUrl=url,
            MessageBody=body,
            MessageAttributes={k: {"DataType": t, "StringValue": v} for k, (t, v) in attrs.items()},
        )
        ids[body] = sent["MessageId"]

    env = go_env(endpoint, name, f"{webhook.url}/jobs?src=compat")
    async with sidecar_process(sidecar_command, env) as sidecar:
        await eventually(
            lambda: (
                seen.get("delta", 0) >= 2 and seen.get("date", 0) >= 2 and seen.get("fail", 0) >= 2
            ),
            timeout=20,
            what="the deferred and failing messages delivered twice",
        )
        assert await stop(sidecar) == 0, sidecar.lines

    posts = {r.body.decode(): r for r in webhook.received}  # the last POST of each body
    first = next(r for r in webhook.received if r.body == b"plain")
    assert first.path_qs == "/jobs?src=compat"
    assert first.headers["Content-Type"] == "text/plain"
    assert first.headers["X-Carrier-Receive-Count"] == "1"
    assert first.headers["X-Carrier-Message-Id"] == ids["plain"]
    assert abs(int(first.headers["X-Carrier-First-Receive-Time"]) - sent_at) < 60  # seconds
    assert first.headers["X-Carrier-Attr-tenant"] == "UTF-8''Z%C3%BCrich"
    assert first.headers["X-Carrier-Attr-n"] == "5"
    assert posts["delta"].headers["Content-Type"] == "application/json"
    assert posts["delta"].headers["X-Carrier-Receive-Count"] == "2"
    assert posts["date"].headers["X-Carrier-Receive-Count"] == "2"
    assert seen["plain"] == 1
    # Deferred, not retried at once: back no earlier than Retry-After said (dates: whole seconds).
    assert at["delta"][1] - at["delta"][0] >= 0.9
    assert at["date"][1] - at["date"][0] >= 0.9
    # Only the failing message is left: 2xx (incl. the retried ones) deleted, 500 kept.
    await eventually(
        lambda: _only(sqs, url, "fail"), timeout=10, what="only the failing message left"
    )


async def _only(sqs: Any, url: str, body: str) -> bool:
    visible, in_flight = await depth(sqs, url)
    return visible + in_flight == 1


async def _fifo_queue(sqs: Any, groups: str, per_group: int) -> tuple[str, str]:
    name = f"compat-{uuid.uuid4().hex[:8]}.fifo"
    attrs = {"FifoQueue": "true", "VisibilityTimeout": "30"}
    url = (await sqs.create_queue(QueueName=name, Attributes=attrs))["QueueUrl"]
    for i in range(per_group):
        for g in groups:
            await sqs.send_message(
                QueueUrl=url,
                MessageBody=f"{g}{i}",
                MessageGroupId=g,
                MessageDeduplicationId=f"{g}{i}",
            )
    return name, url


async def _deliver_fifo(
    endpoint: str, sqs: Any, webhook: WebhookRecorder, command: list[str], fail_once: bytes
) -> list[str]:
    failed: list[bytes] = []

    async def answer(_request: web.Request, got: Received) -> web.StreamResponse:
        if got.body == fail_once and not failed:
            failed.append(got.body)
            return web.Response(status=500)
        return web.Response(status=200)

    webhook.responder = answer
    name, url = await _fifo_queue(sqs, "abc", 6)
    expected = 18 + (1 if fail_once else 0)
    async with sidecar_process(command, go_env(endpoint, name, webhook.url)) as sidecar:
        await eventually(lambda: len(webhook.bodies()) >= expected, timeout=20, what="every POST")
        await eventually(lambda: _empty(sqs, url), timeout=10, what="the FIFO queue drained")
        assert await stop(sidecar) == 0
    return [b.decode() for b in webhook.bodies()]


async def test_fifo_order_per_group(
    endpoint: str, sqs: Any, webhook: WebhookRecorder, sidecar_command: list[str]
) -> None:
    got = await _deliver_fifo(endpoint, sqs, webhook, sidecar_command, fail_once=b"")
    for g in "abc":
        assert [b for b in got if b[0] == g] == [f"{g}{i}" for i in range(6)]


async def test_fifo_group_waits_for_a_failed_message(
    endpoint: str, sqs: Any, webhook: WebhookRecorder, sidecar_command: list[str]
) -> None:
    """b2 fails once: b3.. are released, and the server hands the group back from b2."""
    if not await _locks_groups(sqs):
        pytest.skip(
            "this server hands out a FIFO group's next message while an earlier one is in "
            "flight (SQS does not): order after a failure cannot hold (docs/compatibility.md)"
        )
    got = await _deliver_fifo(endpoint, sqs, webhook, sidecar_command, fail_once=b"b2")
    assert [b for b in got if b[0] == "a"] == [f"a{i}" for i in range(6)]
    assert [b for b in got if b[0] == "b"] == ["b0", "b1", "b2", "b2", "b3", "b4", "b5"]
    assert [b for b in got if b[0] == "c"] == [f"c{i}" for i in range(6)]


async def _locks_groups(sqs: Any) -> bool:
    """SQS: while g0 is in flight, g1 (released to visibility 0) is not handed out."""
    _name, url = await _fifo_queue(sqs, "g", 2)
    got = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    first = got["Messages"]
    await sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"], VisibilityTimeout=30
    )
    for later in first[1:]:
        await sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=later["ReceiptHandle"], VisibilityTimeout=0
        )
    again = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return not again.get("Messages")


async def _empty(sqs: Any, url: str) -> bool:
    return await depth(sqs, url) == (0, 0)


@pytest.mark.parametrize(
    ("queue", "more", "expected"),
    [
        ("exists", {"CARRIER_SQS_BATCH_SIZE": "11"}, "CARRIER_SQS_BATCH_SIZE"),
        ("missing", {}, "does not exist"),
    ],
)
async def test_bad_configuration_one_line_exit_2(
    endpoint: str,
    sqs: Any,
    sidecar_command: list[str],
    queue: str,
    more: dict[str, str],
    expected: str,
) -> None:
    name = f"compat-{uuid.uuid4().hex[:8]}"
    if queue == "exists":
        await sqs.create_queue(QueueName=name)
    env = go_env(endpoint, name, "http://127.0.0.1:9/never", **more)
    async with sidecar_process(sidecar_command, env) as sidecar:
        assert await sidecar.wait(30) == 2
        err = (await sidecar.stderr()).strip()
    assert len(err.splitlines()) == 1, err
    assert expected in err
    assert "Traceback" not in err


async def test_sigterm_lets_the_running_delivery_finish(
    endpoint: str, sqs: Any, webhook: WebhookRecorder, sidecar_command: list[str]
) -> None:
    """SIGTERM mid-POST: the POST completes, its message is deleted, the exit code is 0."""
    name = f"compat-{uuid.uuid4().hex[:8]}"
    url = (await sqs.create_queue(QueueName=name))["QueueUrl"]
    release = asyncio.Event()

    async def answer(_request: web.Request, _got: Received) -> web.StreamResponse:
        await asyncio.wait_for(release.wait(), 20)
        return web.Response(status=200)

    webhook.responder = answer
    await sqs.send_message(QueueUrl=url, MessageBody="slow")
    async with sidecar_process(sidecar_command, go_env(endpoint, name, webhook.url)) as sidecar:
        await eventually(lambda: bool(webhook.received), timeout=15, what="the POST")
        sidecar.proc.terminate()
        await eventually(lambda: sidecar.logged("draining"), timeout=10, what="the drain")
        assert sidecar.proc.returncode is None  # still waiting for the running POST
        release.set()
        assert await sidecar.wait(30) == 0
    assert await _empty(sqs, url)


async def test_heartbeat_keeps_a_long_delivery_invisible(
    endpoint: str, sqs: Any, webhook: WebhookRecorder, sidecar_command: list[str]
) -> None:
    """A 1 MB message whose POST takes 2.5 visibility timeouts is POSTed once, then deleted."""
    name = f"compat-{uuid.uuid4().hex[:8]}"
    url = (await sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "2"}))[
        "QueueUrl"
    ]

    async def slow(_request: web.Request, _got: Received) -> web.StreamResponse:
        await asyncio.sleep(5)  # the slow worker under test, not a synchronisation
        return web.Response(status=200)

    webhook.responder = slow
    body = "x" * 1_000_000
    await sqs.send_message(QueueUrl=url, MessageBody=body)
    async with sidecar_process(sidecar_command, go_env(endpoint, name, webhook.url)) as sidecar:
        await eventually(lambda: bool(webhook.received), timeout=15, what="the POST")
        await eventually(lambda: _empty(sqs, url), timeout=15, what="the delete")
        assert await stop(sidecar) == 0
    assert [len(b) for b in webhook.bodies()] == [len(body)]
    assert webhook.received[0].headers["X-Carrier-Receive-Count"] == "1"
