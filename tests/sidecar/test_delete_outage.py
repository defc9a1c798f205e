"""Issue 13 §3: a delete that fails through a credential outage is retried while the message's
visibility lasts, so the delivered message is not delivered again.

Before, the delete retry budget was about 10 s, shorter than a typical credential blip: the
delete was given up and the message came back after its visibility. Here a proxy in front of
moto_server answers every DeleteMessageBatch and ChangeMessageVisibilityBatch with
``ExpiredToken`` (as SQS does when the session token expired) for 15 s after the first delete.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from tests.support.queues import drained, make_queue
from tests.support.servers import MotoServer, WebhookRecorder, eventually
from tests.support.sidecars import env_for, in_process, proxy_to
from tests.support.sqs_proxy import SqsProxy

OUTAGE = 15.0
VISIBILITY = 30
EXPIRED = {
    "__type": "com.amazon.coral.service#ExpiredToken",
    "message": "The security token included in the request is expired",
}


class CredentialOutage:
    """From the first delete on, refuse acknowledgements for ``OUTAGE`` seconds."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.refused = 0

    async def __call__(
        self, _req: web.Request, action: str, _proxy: SqsProxy
    ) -> web.StreamResponse | None:
        if action not in {"DeleteMessageBatch", "ChangeMessageVisibilityBatch"}:
            return None
        now = time.monotonic()
        if self.started is None and action == "DeleteMessageBatch":
            self.started = now
        if self.started is not None and now - self.started < OUTAGE:
            self.refused += 1
            return web.json_response(
                EXPIRED,
                status=400,
                content_type="application/x-amz-json-1.0",
                headers={"x-amzn-query-error": "ExpiredToken;Sender"},
            )
        return None


async def test_a_delete_failing_for_15s_is_retried_and_the_message_delivered_once(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    url = await make_queue(sqs, queue_name, VisibilityTimeout=str(VISIBILITY))
    await sqs.send_message(QueueUrl=url, MessageBody="once")
    outage = CredentialOutage()
    async with proxy_to(moto, outage) as proxy:
        env = env_for(moto, queue_name, webhook.url, CARRIER_SQS_ENDPOINT=proxy.endpoint)
        async with in_process(env) as sidecar:
            await eventually(lambda: outage.started is not None, 15, "the first delete")
            await eventually(lambda: drained(sqs, url), OUTAGE + 20, "the delete to land")
            deletes = sum(1 for _, action in proxy.requests if action == "DeleteMessageBatch")
            assert sidecar.counter("messages_deleted") == 1
    assert outage.started is not None
    assert outage.refused > 6, "refused for longer than the old retry budget"
    assert deletes > 6
    assert len(webhook.received) == 1, "delivered once"
