"""The real ``carrier-sidecar`` process: signals, drain, exit codes, bad configuration, logs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from typing import Any

import pytest
from aiohttp import web

from tests.support.queues import depth, make_queue
from tests.support.servers import (
    MotoServer,
    Received,
    WebhookRecorder,
    always,
    eventually,
    free_port,
)
from tests.support.sidecars import env_for, sidecar_process

HOLD_LIMIT = 20.0


def holding_webhook(webhook: WebhookRecorder, release: asyncio.Event) -> None:
    async def hold(_r: web.Request, _g: Received) -> web.StreamResponse:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), HOLD_LIMIT)
        return web.Response(status=200)

    webhook.responder = hold


async def test_sigterm_drains_in_flight_and_exits_0(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    release = asyncio.Event()
    holding_webhook(webhook, release)
    url = await make_queue(sqs, queue_name)
    await sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(5)]
    )
    env = env_for(moto, queue_name, webhook.url, CARRIER_SQS_RECEIVER_WORKERS="2")
    try:
        async with sidecar_process(sidecar_command, env) as sidecar:
            await eventually(lambda: len(webhook.received) == 2, 15, "two deliveries in flight")
            sidecar.proc.send_signal(signal.SIGTERM)
            await eventually(lambda: sidecar.logged("stopped receiving"), 10, "receiving to stop")
            release.set()  # the in-flight deliveries finish within the shutdown timeout
            assert await sidecar.wait(15) == 0
    finally:
        release.set()
    assert len(webhook.received) == 2, "nothing new was started after SIGTERM"
    assert await depth(sqs, url) == (3, 0), "two deleted, three never received"


async def test_sigterm_releases_received_messages_not_yet_posted(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    """FIFO: one receive brings five messages of a group; only the first is being POSTed."""
    release = asyncio.Event()
    holding_webhook(webhook, release)
    name = queue_name + ".fifo"
    url = await make_queue(sqs, name, VisibilityTimeout="60")
    await sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {
                "Id": str(i),
                "MessageBody": f"m{i}",
                "MessageGroupId": "g",
                "MessageDeduplicationId": f"{i}-{time.time_ns()}",
            }
            for i in range(5)
        ],
    )
    env = env_for(
        moto, name, webhook.url, CARRIER_SQS_BATCH_SIZE="10", CARRIER_SQS_RECEIVER_WORKERS="10"
    )
    try:
        async with sidecar_process(sidecar_command, env) as sidecar:
            await eventually(lambda: len(webhook.received) == 1, 15, "the first delivery")
            assert await depth(sqs, url) == (0, 5)
            sidecar.proc.send_signal(signal.SIGTERM)

            async def waiting_released() -> bool:
                return await depth(sqs, url) == (4, 1)

            await eventually(waiting_released, 10, "the four waiting messages released at once")
            release.set()
            assert await sidecar.wait(15) == 0
    finally:
        release.set()
    # Released, not left to their 60s visibility: visible again right away.
    assert await depth(sqs, url) == (4, 0)


async def test_shutdown_timeout_releases_what_is_still_running(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    release = asyncio.Event()
    holding_webhook(webhook, release)
    url = await make_queue(sqs, queue_name, VisibilityTimeout="60")
    await sqs.send_message(QueueUrl=url, MessageBody="stuck")
    env = env_for(moto, queue_name, webhook.url, CARRIER_SHUTDOWN_TIMEOUT="500ms")
    try:
        async with sidecar_process(sidecar_command, env) as sidecar:
            await eventually(lambda: webhook.received, 15, "the delivery")
            sidecar.proc.send_signal(signal.SIGTERM)
            assert await sidecar.wait(10) == 0
            assert sidecar.logged("releasing deliveries still running")
    finally:
        release.set()
    assert await depth(sqs, url) == (1, 0)


async def test_second_signal_exits_at_once(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    release = asyncio.Event()
    holding_webhook(webhook, release)
    url = await make_queue(sqs, queue_name)
    await sqs.send_message(QueueUrl=url, MessageBody="stuck")
    env = env_for(moto, queue_name, webhook.url, CARRIER_SHUTDOWN_TIMEOUT="60s")
    try:
        async with sidecar_process(sidecar_command, env) as sidecar:
            await eventually(lambda: webhook.received, 15, "the delivery")
            sidecar.proc.send_signal(signal.SIGTERM)
            await eventually(lambda: sidecar.logged("stopped receiving"), 10, "the drain")
            sidecar.proc.send_signal(signal.SIGINT)
            assert await sidecar.wait(5) == 128 + signal.SIGINT
    finally:
        release.set()


BAD = [
    ({"CARRIER_SQS_BATCH_SIZE": "11"}, "CARRIER_SQS_BATCH_SIZE"),
    ({"CARRIER_SQS_RECEIVERS": "two"}, "CARRIER_SQS_RECEIVERS"),
    ({"CARRIER_WEBHOOK_ENDPOINT": "localhost:9000/x"}, "CARRIER_WEBHOOK_ENDPOINT"),
    ({"CARRIER_WEBHOOK_REQUEST_TIMEOUT": "10 minutes"}, "CARRIER_WEBHOOK_REQUEST_TIMEOUT"),
    ({"CARRIER_SQS_QUEUE_NAME": ""}, "CARRIER_SQS_QUEUE_NAME"),
    ({"CARRIER_SQS_QUEUE_NAME": "no-such-queue"}, "does not exist"),
    ({"CARRIER_SQS_ENDPOINT": "http://127.0.0.1:{closed}"}, "CARRIER_SQS_ENDPOINT"),
    ({"CARRIER_WEBHOOK_TASKS": "nightly=/tasks/../admin"}, "CARRIER_WEBHOOK_TASKS"),
    ({"CARRIER_WEBHOOK_FORMAT": "xml"}, "CARRIER_WEBHOOK_FORMAT"),
]


@pytest.mark.parametrize(("overrides", "named"), BAD, ids=[n for _, n in BAD])
async def test_bad_config_exits_2_with_one_line_and_receives_nothing(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
    overrides: dict[str, str],
    named: str,
) -> None:
    url = await make_queue(sqs, queue_name)
    await sqs.send_message(QueueUrl=url, MessageBody="untouched")
    env = env_for(moto, queue_name, webhook.url)
    env.update({k: v.format(closed=free_port()) for k, v in overrides.items()})
    async with sidecar_process(sidecar_command, env) as sidecar:
        code = await sidecar.wait(30)
        stderr = await sidecar.stderr()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, (stderr, sidecar.lines)
    assert len(lines) == 1, lines
    assert named in lines[0]
    assert "Traceback" not in stderr
    assert await depth(sqs, url) == (1, 0), "nothing was received"
    assert webhook.received == []


async def test_rejected_credentials_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    webhook: WebhookRecorder,
    sidecar_command: list[str],
) -> None:
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "0")  # moto then checks every signature
    strict = MotoServer()
    strict.start()
    try:
        env = env_for(strict, "any-queue", webhook.url)
        async with sidecar_process(sidecar_command, env) as sidecar:
            code = await sidecar.wait(30)
            stderr = await sidecar.stderr()
    finally:
        strict.stop()
    assert code == 2, stderr
    assert "credentials rejected" in stderr
    assert len(stderr.strip().splitlines()) == 1


async def test_logs_are_json_lines_by_default(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    webhook.responder = always(500)
    url = await make_queue(sqs, queue_name)
    sent = await sqs.send_message(QueueUrl=url, MessageBody="x")
    env = env_for(
        moto, queue_name, webhook.url, CARRIER_RETRY_BACKOFF="queue", CARRIER_SQS_BATCHSIZE="5"
    )
    async with sidecar_process(sidecar_command, env) as sidecar:
        await eventually(lambda: sidecar.logged("delivery failed"), 15, "the failure log")
        sidecar.proc.send_signal(signal.SIGTERM)
        assert await sidecar.wait(15) == 0
    entries = [json.loads(line) for line in sidecar.lines]
    assert all({"time", "level", "msg"} <= set(e) for e in entries)
    (failure,) = [e for e in entries if e["msg"] == "delivery failed"]
    assert failure["level"] == "warning"
    assert failure["message_id"] == sent["MessageId"]
    assert failure["status"] == 500
    (typo,) = [e for e in entries if e.get("variable") == "CARRIER_SQS_BATCHSIZE"]
    assert typo["level"] == "warning", "an unknown CARRIER_* name is reported"


async def test_colourised_logs_for_people(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    await make_queue(sqs, queue_name)
    env = env_for(moto, queue_name, webhook.url, CARRIER_ENABLE_COLORIZED_LOGGING="true")
    async with sidecar_process(sidecar_command, env) as sidecar:
        await eventually(lambda: sidecar.logged("receiving"), 15, "the start-up log")
        sidecar.proc.send_signal(signal.SIGTERM)
        assert await sidecar.wait(15) == 0
    line = next(line for line in sidecar.lines if "receiving" in line)
    assert "\x1b[" in line
    assert "batch_size" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def catches_sigterm(pid: int) -> bool:
    """The process has installed a SIGTERM handler (Linux: the SigCgt mask in /proc)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    except FileNotFoundError:
        return False
    return False


async def test_sigterm_while_starting_exits_0(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    url = await make_queue(sqs, queue_name)
    await sqs.send_message(QueueUrl=url, MessageBody="untouched")
    env = env_for(moto, queue_name, webhook.url)
    async with sidecar_process(sidecar_command, env) as sidecar:
        await eventually(lambda: catches_sigterm(sidecar.proc.pid), 10, "the early handler")
        sidecar.proc.send_signal(signal.SIGTERM)  # most likely still importing
        assert await sidecar.wait(15) == 0
    assert webhook.received == []
    assert await depth(sqs, url) == (1, 0), "nothing received"
