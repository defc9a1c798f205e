"""A 2xx'd message stays invisible until SQS acknowledges its delete, however slow the delete.

The chaos suite's ``late_ack`` duplicates: the heartbeat stopped at the webhook's 2xx, so with a
short visibility a delete that took a while to land let the queue hand the message out again.
Here a recording proxy in front of moto_server holds every DeleteMessageBatch until the test lets
it through, for longer than the visibility timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from tests.support.queues import drained, make_queue
from tests.support.servers import MotoServer, WebhookRecorder, eventually
from tests.support.sidecars import env_for, in_process, proxy_to
from tests.support.sqs_proxy import SqsProxy

VISIBILITY = 2  # seconds; the heartbeat extends when a third is left


class DeleteGate:
    """Holds DeleteMessageBatch calls at the proxy until ``open`` is set (bounded)."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.held_at: float | None = None

    async def __call__(self, _req: web.Request, action: str, _proxy: SqsProxy) -> None:
        if action == "DeleteMessageBatch":
            if self.held_at is None:
                self.held_at = asyncio.get_running_loop().time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.open.wait(), 30)
        # returning nothing: the proxy forwards it to moto


async def test_a_slow_delete_does_not_let_the_message_out_again(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    url = await make_queue(sqs, queue_name, VisibilityTimeout=str(VISIBILITY))
    await sqs.send_message(QueueUrl=url, MessageBody="once")
    gate = DeleteGate()
    async with proxy_to(moto, gate, before_stop=gate.open.set) as proxy:
        loop = asyncio.get_running_loop()

        def extensions_since_hold() -> int:
            if gate.held_at is None:
                return 0
            # proxy.requests uses time.monotonic, as does the loop's clock
            return sum(
                1
                for t, action in proxy.requests
                if action == "ChangeMessageVisibilityBatch" and t >= gate.held_at
            )

        # Two receivers: if the visibility ever lapsed, one of them would take the message again.
        env = env_for(
            moto,
            queue_name,
            webhook.url,
            CARRIER_SQS_ENDPOINT=proxy.endpoint,
            CARRIER_SQS_RECEIVERS="2",
        )
        async with in_process(env) as sidecar:
            await eventually(lambda: gate.held_at is not None, 10, "the delete to reach SQS")
            assert len(webhook.received) == 1
            # Hold the delete past the visibility: three extensions ≈ 2 visibilities of time.
            await eventually(
                lambda: len(webhook.received) >= 2 or extensions_since_hold() >= 3,
                4 * VISIBILITY + 5,
                "the heartbeat to go on extending while the delete is held",
            )
            assert len(webhook.received) == 1, "the message was handed out again before its delete"
            assert loop.time() - (gate.held_at or 0) > VISIBILITY
            gate.open.set()
            await eventually(lambda: drained(sqs, url), 10, "the delete to land")
            await eventually(lambda: sidecar.counter("messages_deleted") == 1, 5, "delete counted")
        assert webhook.bodies() == [b"once"]
