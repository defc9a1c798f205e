"""Issue 13 §2: a 2xx is decided on the status line, whatever its body does.

A raw asyncio server (real sockets, hand-written HTTP/1.1) answers 200 with a body that never
ends, one cut short of its Content-Length, or one of 100 MiB. Each message must be POSTed once,
deleted once, and logged as delivered by the real ``carrier-sidecar`` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.queues import depth, make_queue
from tests.support.servers import MotoServer, eventually
from tests.support.sidecars import env_for, sidecar_process

STREAM_LIMIT = 30.0  # seconds: no answer below streams longer than this
HUGE = 100 * 1024 * 1024


@dataclass
class RawWebhook:
    """Answers every POST with ``mode``: ``endless`` chunked, ``truncated`` or ``huge`` 200."""

    mode: str
    posts: int = 0
    bytes_sent: int = 0
    server: asyncio.Server | None = None
    done: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                await reader.readexactly(length)
                self.posts += 1
                await asyncio.wait_for(self._answer(writer), STREAM_LIMIT)
                if self.mode != "keep-alive":
                    break
        self.done.append(time.monotonic())
        writer.close()

    async def _answer(self, writer: asyncio.StreamWriter) -> None:
        if self.mode == "endless":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            while True:  # bounded by STREAM_LIMIT and by the client hanging up
                writer.write(b"5\r\nhello\r\n")
                self.bytes_sent += 5
                await writer.drain()
                await asyncio.sleep(0.01)
        elif self.mode == "truncated":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
            await writer.drain()
        else:
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {HUGE}\r\n\r\n".encode())
            chunk = b"x" * (1024 * 1024)
            while self.bytes_sent < HUGE:
                writer.write(chunk)
                self.bytes_sent += len(chunk)
                await writer.drain()

    async def start(self) -> RawWebhook:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self


@contextlib.asynccontextmanager
async def raw_webhook(mode: str) -> AsyncIterator[RawWebhook]:
    hook = await RawWebhook(mode).start()
    try:
        yield hook
    finally:
        assert hook.server is not None
        hook.server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hook.server.wait_closed(), 5)


def events(lines: list[str], msg: str) -> list[dict[str, Any]]:
    found = []
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("msg") == msg:
                found.append(entry)
    return found


@pytest.mark.parametrize("mode", ["endless", "truncated", "huge"])
async def test_a_2xx_is_delivered_whatever_its_body_does(
    moto: MotoServer, sqs: Any, queue_name: str, sidecar_command: list[str], mode: str
) -> None:
    url = await make_queue(sqs, queue_name, VisibilityTimeout="60")
    await sqs.send_message(QueueUrl=url, MessageBody="said yes")
    async with raw_webhook(mode) as hook:
        env = env_for(
            moto,
            queue_name,
            hook.url,
            CARRIER_LOG_LEVEL="debug",
            CARRIER_WEBHOOK_REQUEST_TIMEOUT="20s",
        )
        async with sidecar_process(sidecar_command, env) as sidecar:

            async def deleted() -> bool:
                return await depth(sqs, url) == (0, 0)

            await eventually(deleted, 15, "the message deleted")
            await eventually(lambda: hook.done, 10, "the sidecar to drop the connection")
            await eventually(lambda: events(sidecar.lines, "delivered"), 5, "the delivered line")
            lines = list(sidecar.lines)
        assert hook.posts == 1, "POSTed once: the 2xx was not re-tried"
    assert len(events(lines, "delivered")) == 1
    assert events(lines, "delivery failed") == []
    assert hook.bytes_sent < HUGE, "the body was not read to its end"
