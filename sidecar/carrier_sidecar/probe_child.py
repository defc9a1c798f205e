"""The probe process's side (:mod:`.probe_process`): serve the port handed over, from the state
the sidecar reports, forwarding what only the sidecar can answer."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from typing import Any, Final

from .event_loop import run_event_loop
from .fd_limit import raise_open_files_limit
from .probe_channel import Frame, answer_of, read_frame, request_frame
from .probe_checks import Outcome, answer
from .probe_http import Answer, HttpServer, Request

STALE_AFTER: Final = 10.0  # seconds without a state frame: the delivering loop is stuck
MAX_ACCEPTS: Final = 4  # /metrics formats forwarded at once: each is a rendering by the sidecar
STOP_GRACE: Final = 1.0  # this process's own shutdown: answers being written get this long
_SETUP_BYTES: Final = 4096


def serve(channel: socket.socket) -> int:  # pragma: no cover - runs in the forked child
    message, fds, _, _ = socket.recv_fds(channel, _SETUP_BYTES, 16)
    if not fds:  # the sidecar ended before serving (bad config, --help) or serves no port
        return 0
    setup = json.loads(message)
    from .logs import configure

    configure(setup["log_level"], setup["colour"])
    raise_open_files_limit()  # as the sidecar does: the connection cap follows the fd limit
    sockets = [socket.socket(fileno=fd) for fd in fds]
    run_event_loop(_run(channel, sockets, drain=bool(setup["drain"])))
    return 0


class ReportedState:
    """What the sidecar last said of its checks, and when: a silent sidecar is not live."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._at = clock()
        self._live = Outcome(True)  # the sidecar starts parked, i.e. alive (liveness.py)
        self._ready = Outcome(False, "ready check returned false")

    def update(self, head: dict[str, Any]) -> None:
        self._at = self._clock()
        self._live = Outcome(bool(head["live"][0]), str(head["live"][1]))
        self._ready = Outcome(bool(head["ready"][0]), str(head["ready"][1]))

    def live(self, _request: Request) -> Answer:
        silent = self._clock() - self._at
        if silent > STALE_AFTER:
            return answer(
                "live", Outcome(False, f"the sidecar's event loop sent nothing for {silent:.0f}s")
            )
        return answer("live", self._live)

    def ready(self, _request: Request) -> Answer:
        return answer("ready", self._ready)


class Forwarder:
    """Requests the sidecar answers. Concurrent ``/metrics`` with the same ``Accept`` share one
    forwarded request (at most :data:`MAX_ACCEPTS` different ones at once; a scraper sends one).
    One arriving while that one is out waits for the next, sent when it lands, so each gets a
    rendering started after it arrived (as :class:`.SharedRendering`)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._ids = 0
        self._waiting: dict[int, asyncio.Future[Answer]] = {}
        self._out: dict[str, asyncio.Future[Answer]] = {}
        self._next: dict[str, tuple[asyncio.Future[Answer], Request]] = {}
        self._closed = False

    def one(self, request: Request) -> asyncio.Future[Answer]:
        if self._closed:
            return _answered(_GONE)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._ids += 1
        self._waiting[self._ids] = future
        self._writer.write(request_frame(self._ids, request))
        return future

    def shared(self, request: Request) -> asyncio.Future[Answer]:
        key = request.headers.get("accept", "")
        if key in self._next:
            return self._next[key][0]
        if key not in self._out:
            if len(self._out) >= MAX_ACCEPTS:  # a flood of distinct Accept headers
                return _answered(_TOO_MANY_ACCEPTS)
            return self._send_shared(key, request)
        later: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._next[key] = (later, request)
        return later

    def _send_shared(self, key: str, request: Request) -> asyncio.Future[Answer]:
        future = self.one(request)
        self._out[key] = future
        future.add_done_callback(lambda _done: self._landed(key))
        return future

    def _landed(self, key: str) -> None:
        del self._out[key]
        queued = self._next.pop(key, None)
        if queued is None:
            return
        later, request = queued
        self._send_shared(key, request).add_done_callback(lambda done: _pass_on(done, later))

    def answered(self, head: dict[str, Any], body: bytes) -> None:
        future = self._waiting.pop(int(head["id"]), None)
        if future is not None and not future.done():
            future.set_result(answer_of(head, body))

    def fail_all(self) -> None:
        """The sidecar has gone: what it was asked is answered 503."""
        self._closed = True
        for future in [*self._waiting.values(), *(f for f, _ in self._next.values())]:
            if not future.done():
                future.set_result(_GONE)
        self._waiting.clear()


def _pass_on(done: asyncio.Future[Answer], later: asyncio.Future[Answer]) -> None:
    if later.done():
        return
    if done.cancelled():
        later.cancel()
    else:
        later.set_result(done.result())


def _answered(answer_now: Answer) -> asyncio.Future[Answer]:
    future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
    future.set_result(answer_now)
    return future


_GONE: Final = Answer.json(503, {"reason": "the sidecar is stopping"})
_TOO_MANY_ACCEPTS: Final = Answer.json(
    503, {"reason": f"more than {MAX_ACCEPTS} different Accept headers at once; retry"}
)


async def _run(
    channel: socket.socket, sockets: list[socket.socket], *, drain: bool
) -> None:  # pragma: no cover - runs in the forked child
    reader, writer = await asyncio.open_connection(sock=channel)
    state = ReportedState()
    forward = Forwarder(writer)
    server = HttpServer()
    server.routes.update(
        {"/healthz": state.live, "/readyz": state.ready, "/metrics": forward.shared}
    )
    if drain:
        server.routes["/drain"] = forward.one
    await server.listen(sockets)
    while (frame := await read_frame(reader)) is not None:
        _take(frame, state, forward)
    forward.fail_all()
    await server.stop(STOP_GRACE)
    writer.close()


def _take(frame: Frame, state: ReportedState, forward: Forwarder) -> None:
    head, body = frame
    if head["k"] == "s":
        state.update(head)
    elif head["k"] == "a":
        forward.answered(head, body)
