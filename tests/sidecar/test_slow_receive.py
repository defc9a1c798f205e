"""A lease is timed from when the receive was *asked*, not from when its answer arrived.

SQS starts a message's visibility clock when it hands the message out; the answer may reach the
sidecar much later (a loaded server, a slow network). Timing the heartbeat from the answer's
arrival would extend too late and let the message out again while its POST runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tests.support.queues import drained, make_queue
from tests.support.servers import MotoServer, Received, WebhookRecorder, eventually
from tests.support.sidecars import env_for, in_process, proxy_to
from tests.support.sqs_proxy import SqsProxy

VISIBILITY = 4  # the heartbeat extends when a third (1.33 s) is left
ANSWER_DELAY = 3.5  # longer than that third, shorter than the visibility


class SlowFirstAnswer:
    """Delays the first ReceiveMessage answer that carries messages (the server already sent it)."""

    def __init__(self) -> None:
        self.delayed = False

    async def __call__(
        self, request: web.Request, action: str, proxy: SqsProxy
    ) -> web.StreamResponse | None:
        if action != "ReceiveMessage" or self.delayed:
            return None
        status, payload, content_type = await proxy.relay(request, action)
        if b"ReceiptHandle" in payload and not self.delayed:
            self.delayed = True
            await asyncio.sleep(ANSWER_DELAY)  # the fault's length, not a synchronisation
        return web.Response(status=status, body=payload, headers={"Content-Type": content_type})


async def test_a_late_receive_answer_does_not_let_the_message_out_during_its_post(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    async def long_job(_r: web.Request, _g: Received) -> web.StreamResponse:
        await asyncio.sleep(2 * VISIBILITY)  # the worker's long job
        return web.Response(status=200)

    webhook.responder = long_job
    url = await make_queue(sqs, queue_name, VisibilityTimeout=str(VISIBILITY))
    await sqs.send_message(QueueUrl=url, MessageBody="long job")
    mischief = SlowFirstAnswer()
    async with proxy_to(moto, mischief) as proxy:
        # Two receivers: if the visibility ever lapsed, the other would take the message again.
        env = env_for(
            moto,
            queue_name,
            webhook.url,
            CARRIER_SQS_ENDPOINT=proxy.endpoint,
            CARRIER_SQS_RECEIVERS="2",
        )
        async with in_process(env):
            await eventually(lambda: drained(sqs, url), 6 * VISIBILITY, "the message deleted")
        assert mischief.delayed
        receives = [r for r in proxy.ledger.receives if r.items]
    assert len(receives) == 1, "the message was handed out again while its POST ran"
    assert webhook.bodies() == [b"long job"]
