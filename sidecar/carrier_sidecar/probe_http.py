"""A GET-only HTTP/1.1 server on asyncio's protocol layer, for ports a flood may reach.

The probe port is reachable from the pod network. aiohttp's server spends ~275 µs of CPU per
request (a protocol object, two tasks, request and response objects), so 1 000 connections per
wave took a third of a core from deliveries. Here a request whose handler answers at once is
parsed (httptools: llhttp, the parser uvicorn and aiohttp's C path use) and answered inside
``data_received``, with no task: ~40 µs. One request per connection (``Connection: close``): the
kubelet opens a connection per probe anyway and Prometheus reconnects per scrape, and nothing is
left idle to clean up. A connection that has not sent a whole request head within
:data:`REQUEST_DEADLINE` or in :data:`MAX_HEAD_BYTES` is closed, and at most
:func:`.fd_limit.connection_cap` are open at once (beyond it a new one is closed unanswered), so
a flood cannot take the file descriptors the SQS and webhook connections need.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final, cast

import httptools

from .fd_limit import connection_cap

log = logging.getLogger("carrier.probes")

REQUEST_DEADLINE: Final = 10.0  # seconds to send a request head (slow clients are dropped)
MAX_HEAD_BYTES: Final = 16 * 1024
BACKLOG: Final = 1024  # a flood's connections wait in the kernel, not dropped SYNs (1 s retries)
METHODS: Final = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class Request:
    """What a handler gets: the method, the path, the headers (lower-case names), the peer."""

    method: str
    path: str
    headers: Mapping[str, str]
    remote: str | None


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def text(cls, status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
        return cls(status, text.encode(), headers=headers)

    @classmethod
    def json(cls, status: int, body: Mapping[str, object]) -> Answer:
        return cls(status, json.dumps(body).encode(), "application/json; charset=utf-8")


Handler = Callable[[Request], "Answer | Awaitable[Answer]"]
NOT_FOUND: Final = Answer.text(404, "404: Not Found")
NOT_ALLOWED: Final = Answer.text(405, "405: Method Not Allowed", headers=(("Allow", "GET"),))


def server_error(exc: BaseException) -> Answer:
    """A handler failed: log it (one line) and answer 500."""
    log.warning("probe handler failed", extra={"error": f"{type(exc).__name__}: {exc}"})
    return Answer.text(500, "500: Internal Server Error")


def encode(answer: Answer, *, head_only: bool) -> bytes:
    """The whole response: status line, headers and (unless HEAD) the body."""
    lines = [
        f"HTTP/1.1 {answer.status} {HTTPStatus(answer.status).phrase}",
        f"Content-Type: {answer.content_type}",
        f"Content-Length: {len(answer.body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in answer.headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + answer.body


class _Connection(asyncio.Protocol):
    """One connection: read one request head, answer it, close."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._received = 0
        self._request_read = False
        self._deadline: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if len(self._server.connections) >= self._server.max_connections:
            self._request_read = True  # nothing more is read from it
            self._transport.abort()
            return
        self._server.connections.add(self)
        self._deadline = asyncio.get_running_loop().call_later(
            self._server.request_deadline, self.close
        )

    def data_received(self, data: bytes) -> None:
        if self._request_read:
            return  # one request per connection; anything after it is ignored
        self._received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # on_headers_complete has run: an upgrade is answered like any request
        except httptools.HttpParserError:
            self._finish(Answer.text(400, "400: Bad Request"), head_only=False)
            return
        if not self._request_read and self._received > self._server.max_head_bytes:
            self._finish(Answer.text(431, "431: Request Header Fields Too Large"), head_only=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._cancel_deadline()
        self._transport = None

    # --- httptools callbacks ----------------------------------------------------------------
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._request_read = True
        self._cancel_deadline()
        method = self._parser.get_method().decode("ascii", "replace")
        try:
            path = httptools.parse_url(self._url).path.decode("latin-1")
        except httptools.HttpParserInvalidURLError:
            self._finish(Answer.text(400, "400: Bad Request"), head_only=False)
            return
        peer = self._transport.get_extra_info("peername") if self._transport else None
        remote = str(peer[0]) if isinstance(peer, tuple) and peer else None
        self._server.dispatch(self, Request(method, path, self._headers, remote))

    # --- answering --------------------------------------------------------------------------
    def answer_with(self, result: Answer | Awaitable[Answer], *, head_only: bool) -> None:
        if isinstance(result, Answer):
            self._finish(result, head_only=head_only)
            return
        pending = asyncio.ensure_future(result)
        self._server.pending.add(pending)
        pending.add_done_callback(lambda done: self._settled(done, head_only))

    def _settled(self, done: asyncio.Future[Answer], head_only: bool) -> None:
        self._server.pending.discard(done)
        if done.cancelled():
            self.close()
            return
        error = done.exception()
        answer = server_error(error) if error is not None else done.result()
        self._finish(answer, head_only=head_only)

    def _finish(self, answer: Answer, *, head_only: bool) -> None:
        self._request_read = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(encode(answer, head_only=head_only))
        self.close()

    def close(self) -> None:
        self._cancel_deadline()
        if self._transport is not None:
            self._transport.close()

    @property
    def request_read(self) -> bool:
        return self._request_read

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


class HttpServer:
    """Routes GET/HEAD paths to handlers on already-bound sockets (:mod:`.listen`)."""

    def __init__(
        self,
        *,
        request_deadline: float = REQUEST_DEADLINE,
        max_head_bytes: int = MAX_HEAD_BYTES,
        max_connections: int | None = None,
    ) -> None:
        self.request_deadline = request_deadline
        self.max_head_bytes = max_head_bytes
        self.max_connections = connection_cap() if max_connections is None else max_connections
        self.routes: dict[str, Handler] = {}
        self.connections: set[_Connection] = set()
        self.pending: set[asyncio.Future[Answer]] = set()
        self._listeners: list[asyncio.AbstractServer] = []

    async def listen(self, sockets: list[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        for sock in sockets:
            self._listeners.append(
                await loop.create_server(lambda: _Connection(self), sock=sock, backlog=BACKLOG)
            )

    def dispatch(self, connection: _Connection, request: Request) -> None:
        head_only = request.method == "HEAD"
        handler = self.routes.get(request.path)
        if handler is None:
            connection.answer_with(NOT_FOUND, head_only=head_only)
        elif request.method not in METHODS:
            connection.answer_with(NOT_ALLOWED, head_only=head_only)
        else:
            try:
                result = handler(request)
            except Exception as exc:  # a handler's bug answers 500, never kills the server
                result = server_error(exc)
            connection.answer_with(result, head_only=head_only)

    async def stop(self, grace: float) -> None:
        """Stop listening, drop connections that sent no request, give answers in flight
        ``grace`` seconds, then close everything."""
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.close()
        for connection in list(self.connections):
            if not connection.request_read:
                connection.close()
        if self.pending:
            _, late = await asyncio.wait(set(self.pending), timeout=grace)
            for future in late:
                future.cancel()
        for connection in list(self.connections):
            connection.close()
        for listener in listeners:
            await listener.wait_closed()
