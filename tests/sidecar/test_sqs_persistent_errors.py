"""Issue 13 §4: a queue deleted under the running sidecar turns it not-ready, then it recovers.

Before, /healthz and /readyz stayed 200 and only warnings were logged. Now 3 `missing` errors in
a row turn /readyz 503 with one ERROR line; the receive loop keeps retrying with backoff, and once
the queue is back the sidecar is ready again and delivers, by itself.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.support.queues import make_queue
from tests.support.servers import MotoServer, WebhookRecorder, eventually, free_port
from tests.support.sidecars import env_for, sidecar_process


async def test_a_deleted_queue_turns_readyz_false_until_it_is_back(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    url = await make_queue(sqs, queue_name)
    probe = free_port()
    env = env_for(moto, queue_name, webhook.url, CARRIER_HTTP_ADDR=f"127.0.0.1:{probe}")
    base = f"http://127.0.0.1:{probe}"
    async with sidecar_process(sidecar_command, env) as sidecar, aiohttp.ClientSession() as http:

        async def status(path: str) -> int:
            try:
                async with http.get(base + path) as response:
                    return response.status
            except aiohttp.ClientError:
                return 0

        async def metric(name: str) -> float:
            async with http.get(base + "/metrics") as response:
                text = await response.text()
            return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(name))

        async def ready() -> bool:
            return await status("/readyz") == 200

        async def not_ready() -> bool:
            return await status("/readyz") == 503

        await eventually(ready, 20, "the sidecar ready")
        await sqs.delete_queue(QueueUrl=url)
        await eventually(not_ready, 30, "/readyz 503 after the queue is gone")
        assert await status("/healthz") == 200, "alive: a restart would not bring the queue back"
        assert await metric('carrier_sqs_errors_total{kind="missing"}') >= 3
        assert await metric('carrier_sqs_errors_total{kind="transient"}') == 0

        url = await make_queue(sqs, queue_name)
        await sqs.send_message(QueueUrl=url, MessageBody="after the queue came back")
        await eventually(ready, 40, "ready again once the queue is back")
        await eventually(lambda: webhook.bodies(), 20, "the delivery after recovery")
        lines = [json.loads(x) for x in sidecar.lines if x.startswith("{")]
    errors = [e for e in lines if e["level"] == "error"]
    assert [e["kind"] for e in errors] == ["missing"], "logged at error once"
    assert any(e["msg"] == "SQS works again; ready" for e in lines)
    assert webhook.bodies() == [b"after the queue came back"]
