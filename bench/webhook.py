"""The webhook receiver: a raw asyncio HTTP/1.1 keep-alive server in its own process.

Why not aiohttp or nginx: the receiver must not be the bottleneck and must count what it gets.
A bare ``asyncio.Protocol`` on uvloop parses only the request line, Content-Length and a JSON
body, answers ``200`` with an empty body on the same connection, and does nothing else; its own
ceiling is measured by :func:`bench.load.webhook_ceiling`. Each body is ``{"id": n, "sent": t}``:
``id`` counts duplicates, ``sent`` (wall clock) gives send→POST latency.

Control requests (any path starting ``/__``): ``GET /__stats`` and
``POST /__reset?slow_every=N&slow_delay=S`` (every N-th id answered after S seconds).

Run: ``python -m bench.webhook PORT``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@dataclass
class Tally:
    posts: int = 0
    ids: set[int] = field(default_factory=set)
    first: float | None = None
    last: float | None = None
    latencies: list[float] = field(default_factory=list)
    slow_every: int = 0
    slow_delay: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "posts": self.posts,
            "unique": len(self.ids),
            "first": self.first,
            "last": self.last,
            "latencies": self.latencies,
        }


TALLY = Tally()


class Receiver(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end]
            length = 0
            marker = head.lower().find(b"\r\ncontent-length:")
            if marker >= 0:
                line_end = head.find(b"\r\n", marker + 2)
                length = int(head[marker + 17 : line_end if line_end > 0 else None])
            total = head_end + 4 + length
            if len(self.buffer) < total:
                return
            body = self.buffer[head_end + 4 : total]
            self.buffer = self.buffer[total:]
            self.handle(head[: head.find(b"\r\n")], body)

    def handle(self, request_line: bytes, body: bytes) -> None:
        assert self.transport is not None
        method, _, rest = request_line.partition(b" ")
        target = rest.rpartition(b" ")[0].decode()
        if target.startswith("/__"):
            self.transport.write(control(method, target))
            return
        if method != b"POST":
            self.transport.write(OK)
            return
        now = time.monotonic()
        TALLY.posts += 1
        if TALLY.first is None:
            TALLY.first = now
        TALLY.last = now
        try:
            doc = json.loads(body)
            ident = int(doc["id"])
        except (ValueError, KeyError, TypeError):
            self.transport.write(OK)
            return
        TALLY.ids.add(ident)
        sent = doc.get("sent")
        if sent is not None:
            TALLY.latencies.append(time.time() - float(sent))
        if TALLY.slow_every and ident % TALLY.slow_every == 0:
            asyncio.get_running_loop().call_later(TALLY.slow_delay, self.reply_late)
        else:
            self.transport.write(OK)

    def reply_late(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(OK)


def control(method: bytes, target: str) -> bytes:
    global TALLY
    parts = urlsplit(target)
    if method == b"POST" and parts.path == "/__reset":
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        TALLY = Tally(
            slow_every=int(query.get("slow_every", 0)),
            slow_delay=float(query.get("slow_delay", 0)),
        )
    payload = json.dumps(TALLY.as_json()).encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(payload)).encode()
        + b"\r\n\r\n"
        + payload
    )


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Receiver, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(int(sys.argv[1])))


class WebhookClient:
    """The harness's handle on a running receiver process."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, method: str, path: str) -> dict[str, Any]:
        req = urllib.request.Request(
            self.url + path, method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/__stats")

    def reset(self, slow_every: int = 0, slow_delay: float = 0.0) -> None:
        self._call("POST", f"/__reset?slow_every={slow_every}&slow_delay={slow_delay}")


if __name__ == "__main__":
    main()
