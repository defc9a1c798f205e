"""A trivial stand-in consumer (the Go Carrier's loop, naively in Python) to build the harness.

Not the product: it exists so the harness can be exercised before ``carrier-sidecar`` works
and as a floor to compare with. Reads the same ``CARRIER_*`` env through the shared Settings.
Run: ``python -m bench.standin``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiobotocore.session import get_session

from carrier_sidecar.settings import Settings


async def consume(settings: Settings) -> None:
    async with (
        get_session().create_client(
            "sqs", endpoint_url=settings.sqs_endpoint, region_name=settings.sqs_region
        ) as sqs,
        aiohttp.ClientSession() as http,
    ):
        url = (
            settings.sqs_queue_url
            or (await sqs.get_queue_url(QueueName=settings.sqs_queue_name))["QueueUrl"]
        )

        async def deliver(message: dict[str, Any], gate: asyncio.Semaphore) -> bool:
            async with (
                gate,
                http.post(
                    settings.webhook_endpoint,
                    data=message["Body"].encode(),
                    headers={"Content-Type": settings.webhook_default_content_type},
                ) as resp,
            ):
                return resp.status == 200

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

        await asyncio.gather(*(receiver() for _ in range(settings.sqs_receivers)))


def main() -> None:
    asyncio.run(consume(Settings.load()))


if __name__ == "__main__":
    main()
