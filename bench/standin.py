"""The floor: the Go Carrier's loop in Python, on the clients issue 15 keeps, and nothing else.

Issue 15 asks for CPU per message within 1.25x of the Go Carrier while "aiobotocore and aiohttp
stay the SQS and HTTP clients". This is the least a relay on those clients can do: receive a
batch (aiobotocore with the sidecar's client options: no parameter validation, a fixed
User-Agent, one attempt), POST every message at once up to the workers (one keep-alive aiohttp
session, on uvloop as the sidecar), delete the answered ones in one ``DeleteMessageBatch``,
receive again. No logging, metrics, probes, heartbeat, backoff, drain or pipelining. Whatever it
costs, the sidecar cannot cost less, so its figures are the floor the targets are held against
(docs/benchmarks.md, "The floor"). It also exercises the harness (``--sidecar-cmd standin``).

Reads the same ``CARRIER_*`` env through the shared Settings, and logs the ``"receiving"`` line
the bench times start-up by. Run: ``python -m bench.standin``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import uvloop
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from carrier_sidecar.settings import Settings


def client_config(settings: Settings) -> AioConfig:
    """The sidecar's per-call savings (sqs.py), so the floor is not the SDK's defaults."""
    return AioConfig(
        max_pool_connections=settings.sqs_receivers + 2,
        retries={"mode": "standard", "total_max_attempts": 1},
        parameter_validation=False,
        user_agent="carrier-floor",
    )


async def consume(settings: Settings) -> None:
    async with (
        get_session().create_client(
            "sqs",
            endpoint_url=settings.sqs_endpoint,
            region_name=settings.sqs_region or "us-east-1",
            config=client_config(settings),
        ) as sqs,
        aiohttp.ClientSession() as http,
    ):
        url = (
            settings.sqs_queue_url
            or (await sqs.get_queue_url(QueueName=settings.sqs_queue_name))["QueueUrl"]
        )
        headers = {"Content-Type": settings.webhook_default_content_type}

        async def deliver(message: dict[str, Any], gate: asyncio.Semaphore) -> bool:
            async with (
                gate,
                http.post(
                    settings.webhook_endpoint, data=message["Body"].encode(), headers=headers
                ) as resp,
            ):
                await resp.read()
                return 200 <= resp.status < 300

        async def receiver() -> None:
            gate = asyncio.Semaphore(settings.sqs_receiver_workers)
            while True:
                got = await sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=settings.sqs_batch_size,
                    WaitTimeSeconds=int(settings.sqs_wait_time),
                )
                messages = got.get("Messages", [])
                done = await asyncio.gather(*(deliver(m, gate) for m in messages))
                entries = [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, (m, ok) in enumerate(zip(messages, done, strict=True))
                    if ok
                ]
                if entries:
                    await sqs.delete_message_batch(QueueUrl=url, Entries=entries)

        print('{"msg": "receiving"}', flush=True)  # the bench's start-up mark, as the sidecar's
        await asyncio.gather(*(receiver() for _ in range(settings.sqs_receivers)))


def main() -> None:
    uvloop.run(consume(Settings.load()))


if __name__ == "__main__":
    main()
