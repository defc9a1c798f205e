"""Issue 13 §5: SIGHUP and SIGQUIT stop the real process gracefully, like SIGTERM.

Before, both killed it silently (exit -1 / -3, no log line) and the message in delivery stayed
invisible until its visibility ended.
"""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import pytest

from tests.support.queues import depth, make_queue
from tests.support.servers import MotoServer, WebhookRecorder, eventually
from tests.support.sidecars import env_for, sidecar_process

from .test_process import holding_webhook


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT])
async def test_sighup_and_sigquit_drain_release_and_exit_0(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
    sig: signal.Signals,
) -> None:
    release = asyncio.Event()
    holding_webhook(webhook, release)
    url = await make_queue(sqs, queue_name, VisibilityTimeout="60")
    await sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)]
    )
    env = env_for(moto, queue_name, webhook.url, CARRIER_SQS_BATCH_SIZE="3")
    try:
        async with sidecar_process(sidecar_command, env) as sidecar:
            await eventually(lambda: len(webhook.received) == 1, 15, "one delivery in flight")
            await eventually(lambda: sidecar.logged("receiving"), 5, "the receive loop")
            sidecar.proc.send_signal(sig)
            await eventually(lambda: sidecar.logged("stopped receiving"), 10, "receiving to stop")
            release.set()  # the delivery in flight finishes within the shutdown timeout
            assert await sidecar.wait(15) == 0
            lines = [json.loads(line) for line in sidecar.lines if line.startswith("{")]
    finally:
        release.set()
    named = [e for e in lines if e.get("msg") == "signal received: shutting down"]
    assert [e["signal"] for e in named] == [sig.name]
    assert len(webhook.received) == 1
    assert await depth(sqs, url) == (2, 0), "one delivered and deleted, two released at once"
