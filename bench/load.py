"""What the harness itself does to the servers: create, preload, watch, probe their ceilings.

Every SQS call here carries ``carrier-bench-harness`` in its User-Agent so the server-side
counter keeps it apart from the sidecar's calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from tests.support.servers import AWS_TEST_ENV

from .sampler import Sampler

HARNESS_UA = "carrier-bench-harness"
PAD = "x" * 160  # ~200-byte bodies


@contextlib.asynccontextmanager
async def sqs_client(endpoint: str) -> AsyncIterator[Any]:
    config = AioConfig(
        user_agent_extra=HARNESS_UA, max_pool_connections=64, retries={"mode": "standard"}
    )
    async with get_session().create_client(
        "sqs",
        region_name=AWS_TEST_ENV["AWS_REGION"],
        endpoint_url=endpoint,
        aws_access_key_id=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
        config=config,
    ) as client:
        yield client


def body(ident: int, sent: float | None = None) -> str:
    doc: dict[str, Any] = {"id": ident, "pad": PAD}
    if sent is not None:
        doc["sent"] = sent
    return json.dumps(doc, separators=(",", ":"))


async def create_queue(client: Any, prefix: str = "bench") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    await client.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})
    return name


async def queue_url(client: Any, name: str) -> str:
    return str((await client.get_queue_url(QueueName=name))["QueueUrl"])


async def preload(client: Any, url: str, count: int, *, start: int = 0, senders: int = 8) -> float:
    """SendMessageBatch ``count`` bodies with unique ids from ``senders`` concurrent tasks."""
    batches = [range(i, min(i + 10, start + count)) for i in range(start, start + count, 10)]
    began = time.monotonic()

    async def sender(share: list[range]) -> None:
        for ids in share:
            entries = [{"Id": str(i), "MessageBody": body(i)} for i in ids]
            result = await client.send_message_batch(QueueUrl=url, Entries=entries)
            if result.get("Failed"):
                raise RuntimeError(f"preload failed: {result['Failed'][:1]}")

    await asyncio.gather(*(sender(batches[k::senders]) for k in range(senders)))
    return time.monotonic() - began


async def depth(client: Any, url: str) -> int:
    attrs = (
        await client.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


async def server_ceiling(
    endpoint: str, count: int, server_pid: int | None, consumers: int = 8
) -> dict[str, Any]:
    """Receive+delete ``count`` messages with plain aiobotocore tasks, no sidecar, no webhook."""
    async with sqs_client(endpoint) as client:
        name = await create_queue(client, "ceiling")
        url = await queue_url(client, name)
        await preload(client, url, count)
        sampler = Sampler(server_pid).start() if server_pid else None
        done = 0
        began = time.monotonic()
        deadline = began + max(60.0, count / 50)

        async def consumer() -> None:
            nonlocal done
            empty = 0
            while empty < 3 and time.monotonic() < deadline:
                got = await client.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                )
                msgs = got.get("Messages", [])
                if not msgs:
                    empty += 1
                    continue
                empty = 0
                await client.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(msgs)
                    ],
                )
                done += len(msgs)

        await asyncio.gather(*(consumer() for _ in range(consumers)))
        elapsed = time.monotonic() - began
        server_cpu = None
        if sampler is not None:
            sampler.stop()
            server_cpu = (sampler.cpu_at(began + elapsed) - sampler.cpu_at(began)) / elapsed
        await client.delete_queue(QueueUrl=url)
    return {
        "messages": done,
        "seconds": elapsed,
        "msg_per_s": done / elapsed if elapsed else 0.0,
        "server_cpu_share": server_cpu,
        "consumers": consumers,
    }


async def webhook_ceiling(
    port: int, webhook_pid: int, seconds: float, conns: int = 32
) -> dict[str, Any]:
    """POSTs from raw keep-alive asyncio clients; the receiver's CPU share tells if it saturated."""
    request = (
        f"POST /hook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body(1))}\r\n\r\n{body(1)}"
    ).encode()
    answered = 0
    stop_at = time.monotonic() + seconds
    sampler = Sampler(webhook_pid).start()
    began = time.monotonic()

    async def client() -> None:
        nonlocal answered
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < stop_at:
                writer.write(request)
                await reader.readuntil(b"\r\n\r\n")
                answered += 1
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(conns)))
    elapsed = time.monotonic() - began
    sampler.stop()
    share = (sampler.cpu_at(began + elapsed) - sampler.cpu_at(began)) / elapsed
    return {
        "req_per_s": answered / elapsed,
        "receiver_cpu_share": share,
        "connections": conns,
        "seconds": elapsed,
    }
