"""A message released at shutdown stays released, even if a heartbeat was still on its way.

An extension sent before the release but answered after it would make the message invisible
again for a whole visibility timeout after the sidecar has exited. Visibility changes of one
message must therefore reach SQS one at a time, in the order they were asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from tests.support.queues import depth, make_queue
from tests.support.servers import MotoServer, Received, WebhookRecorder, eventually
from tests.support.sidecars import env_for, in_process, proxy_to
from tests.support.sqs_proxy import SqsProxy

VISIBILITY = 6  # the first extension is sent 4 s after the receive
SLOW_ANSWER = 3.0  # how long the server takes to answer that extension


class SlowExtension:
    """The first heartbeat extension (visibility > 0) is answered slowly (the server is busy)."""

    def __init__(self) -> None:
        self.seen = asyncio.Event()

    async def __call__(self, request: web.Request, action: str, _proxy: SqsProxy) -> None:
        if action != "ChangeMessageVisibilityBatch" or self.seen.is_set():
            return
        entries = json.loads(await request.read()).get("Entries", [])
        if any(int(e["VisibilityTimeout"]) > 0 for e in entries):
            self.seen.set()
            await asyncio.sleep(SLOW_ANSWER)  # the fault's length, not a synchronisation
        # returning nothing: the proxy forwards it to moto


async def test_a_late_heartbeat_does_not_undo_the_release_at_shutdown(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    done = asyncio.Event()

    async def never_answers(_r: web.Request, _g: Received) -> web.StreamResponse:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 30)
        return web.Response(status=200)

    webhook.responder = never_answers
    url = await make_queue(sqs, queue_name, VisibilityTimeout=str(VISIBILITY))
    await sqs.send_message(QueueUrl=url, MessageBody="job")
    mischief = SlowExtension()
    try:
        async with proxy_to(moto, mischief) as proxy:
            env = env_for(
                moto,
                queue_name,
                webhook.url,
                CARRIER_SQS_ENDPOINT=proxy.endpoint,
                CARRIER_SHUTDOWN_TIMEOUT="1s",
            )
            async with in_process(env) as sidecar:
                await eventually(mischief.seen.is_set, 2 * VISIBILITY, "the first extension")
                assert await sidecar.finish() == 0
            # The sidecar waited for its calls: what SQS holds now is what it left behind.
            assert await depth(sqs, url) == (1, 0), "the message was left invisible at exit"
            released = [
                a
                for a in proxy.ledger.acks
                if a.kind == "visibility" and any(v == 0 for _h, v in a.handles)
            ]
            assert released, "the release reached SQS"
    finally:
        done.set()
    assert len(webhook.received) == 1
