"""An HTTP proxy in front of an SQS server: it records what the server answered and can fail.

Two jobs:
- the chaos suite's ledger: every ReceiveMessage, DeleteMessage(Batch) and
  ChangeMessageVisibility(Batch) that the server *answered*, with times and the sidecar
  incarnation that asked, so duplicates can be attributed to their cause;
- the network-level outage: :meth:`SqsProxy.outage` stops listening (connection refused) and
  resets every open connection, while the server behind keeps its state. moto_server has no
  state persistence, so killing it would lose messages at the *server* and make "lost = 0"
  meaningless; the outage is staged here instead, and a hung server with SIGSTOP/SIGCONT.

``mischief`` lets the misbehaving-SQS fuzz answer a request itself (garbage, 500, throttling,
truncation, reset) instead of forwarding it.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.servers import free_port

Mischief = Callable[[web.Request, str, "SqsProxy"], Awaitable[web.StreamResponse | None]]
MessageId = Callable[[str], str]

_HOP_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "date", "server"}
)


@dataclass(frozen=True)
class Receive:
    """A ReceiveMessage the server answered: which of our ids went out under which handles."""

    t_req: float
    t_resp: float
    incarnation: int
    visibility: float
    items: tuple[tuple[str, str], ...]  # (message id, receipt handle)


@dataclass(frozen=True)
class Ack:
    """Deletes or visibility changes the server reported as successful, per receipt handle."""

    t_req: float
    t_resp: float
    incarnation: int
    kind: str  # "delete" | "visibility"
    handles: tuple[tuple[str, float], ...]  # (handle, visibility seconds; 0 for delete)


@dataclass
class Ledger:
    receives: list[Receive] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)


def _body_id(body: str) -> str:
    return str(json.loads(body)["id"])


@dataclass
class SqsProxy:
    """Forwards the JSON-protocol SQS API to ``upstream`` and writes the :class:`Ledger`."""

    upstream: str
    queue_visibility: float = 30.0
    message_id: MessageId = _body_id
    mischief: Mischief | None = None
    port: int = field(default_factory=free_port)
    incarnation: int = 0
    ledger: Ledger = field(default_factory=Ledger)
    requests: list[tuple[float, str]] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    """Incarnations that have made at least one call (they are past interpreter start-up)."""
    tls: ssl.SSLContext | None = None
    """Serve https with this context, as SQS itself does (the upstream stays plain http)."""
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None
    _client: aiohttp.ClientSession | None = None
    _open: set[asyncio.Transport] = field(default_factory=set)
    _down: bool = False

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> SqsProxy:
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60),
            connector=aiohttp.TCPConnector(force_close=True),
            auto_decompress=False,
        )
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await self._listen()
        return self

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(
            self._runner, "127.0.0.1", self.port, reuse_address=True, ssl_context=self.tls
        )
        await self._site.start()
        self._down = False

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def outage(self) -> None:
        """Refuse new connections and reset every open one (the server keeps its state)."""
        self._down = True
        if self._site is not None:
            await self._site.stop()
            self._site = None
        for transport in list(self._open):
            transport.abort()
        self._open.clear()

    async def restore(self) -> None:
        await self._listen()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if self._down and transport is not None:
            transport.abort()
            return web.Response(status=503)
        if transport is not None:
            self._open.add(transport)
        try:
            return await self._forward(request)
        finally:
            if transport is not None:
                self._open.discard(transport)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        action = request.headers.get("X-Amz-Target", "").rpartition(".")[2] or "?"
        self.requests.append((time.monotonic(), action))
        self.seen.add(self.incarnation)
        self.ledger.calls[action] = self.ledger.calls.get(action, 0) + 1
        if self.mischief is not None:
            answer = await self.mischief(request, action, self)
            if answer is not None:
                return answer
        status, payload, content_type = await self.relay(request, action)
        return web.Response(status=status, body=payload, headers={"Content-Type": content_type})

    async def relay(self, request: web.Request, action: str) -> tuple[int, bytes, str]:
        """Send the request to the real server and record its answer in the ledger."""
        body = await request.read()
        incarnation = self.incarnation
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        assert self._client is not None
        t_req = time.monotonic()
        async with self._client.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as upstream:
            payload = await upstream.read()
            status = upstream.status
            content_type = upstream.headers.get("Content-Type", "application/x-amz-json-1.0")
        t_resp = time.monotonic()
        if status == 200:
            self._record(action, body, payload, t_req, t_resp, incarnation)
        return status, payload, content_type

    def _record(
        self, action: str, request: bytes, answer: bytes, t_req: float, t_resp: float, inc: int
    ) -> None:
        try:
            asked: dict[str, Any] = json.loads(request or b"{}")
            said: dict[str, Any] = json.loads(answer or b"{}")
        except ValueError:
            return
        if action == "ReceiveMessage":
            items = tuple(
                (self.message_id(m["Body"]), m["ReceiptHandle"]) for m in said.get("Messages", [])
            )
            if items:
                vis = float(asked.get("VisibilityTimeout", self.queue_visibility))
                self.ledger.receives.append(Receive(t_req, t_resp, inc, vis, items))
        elif action == "DeleteMessage":
            self._ack("delete", ((asked["ReceiptHandle"], 0.0),), t_req, t_resp, inc)
        elif action == "ChangeMessageVisibility":
            entry = (asked["ReceiptHandle"], float(asked["VisibilityTimeout"]))
            self._ack("visibility", (entry,), t_req, t_resp, inc)
        elif action in ("DeleteMessageBatch", "ChangeMessageVisibilityBatch"):
            ok = {s["Id"] for s in said.get("Successful", [])}
            handles = tuple(
                (e["ReceiptHandle"], float(e.get("VisibilityTimeout", 0)))
                for e in asked.get("Entries", [])
                if e["Id"] in ok
            )
            kind = "delete" if action == "DeleteMessageBatch" else "visibility"
            self._ack(kind, handles, t_req, t_resp, inc)

    def _ack(
        self,
        kind: str,
        handles: tuple[tuple[str, float], ...],
        t_req: float,
        t_resp: float,
        inc: int,
    ) -> None:
        if handles:
            self.ledger.acks.append(Ack(t_req, t_resp, inc, kind, handles))
