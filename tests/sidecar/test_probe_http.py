"""The probe port's HTTP server over real sockets: the bytes a client sends, the bytes it gets.

Byte-level on purpose: partial writes, malformed and oversized heads, clients that never finish,
pipelining and a handler that fails are what a hostile pod network sends, and a well-behaved
client library would never produce them. Each case also runs on uvloop, the loop the sidecar
process uses (its transports are not ``asyncio.Transport`` subclasses).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvloop

from carrier_sidecar.listen import listen_sockets
from carrier_sidecar.probe_http import Answer, Handler, HttpServer, Request
from tests.support.servers import eventually

Run = Callable[[Coroutine[Any, Any, None]], None]
LOOPS: dict[str, Run] = {"asyncio": asyncio.run, "uvloop": uvloop.run}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Run:
    """Each case on a fresh loop of either kind (not pytest-asyncio's, which is one kind)."""
    return LOOPS[str(request.param)]


@asynccontextmanager
async def serving(
    routes: Mapping[str, Handler] | None = None, server: HttpServer | None = None
) -> AsyncIterator[tuple[HttpServer, int]]:
    """``server`` (default limits unless given) with ``routes`` (default: ``/ok``), listening."""
    server = server or HttpServer()
    server.routes.update(routes or {"/ok": lambda _r: Answer.text(200, "fine")})
    sockets = listen_sockets("127.0.0.1", 0)
    await server.listen(sockets)
    try:
        yield server, int(sockets[0].getsockname()[1])
    finally:
        await server.stop(1.0)


async def exchange(port: int, *chunks: bytes, pause: float = 0.0) -> bytes:
    """Send ``chunks`` (``pause`` between them), then read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def test_one_request_one_answer_then_close(run: Run) -> None:
    run(_one_request_one_answer_then_close())


async def _one_request_one_answer_then_close() -> None:
    async with serving() as (_, port):
        status, headers, body = parse(await exchange(port, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert (status, body) == (200, b"fine")
    assert headers["content-length"] == "4"
    assert headers["connection"] == "close"


def test_a_head_sent_one_byte_at_a_time_is_read_whole(run: Run) -> None:
    run(_a_head_sent_one_byte_at_a_time_is_read_whole())


async def _a_head_sent_one_byte_at_a_time_is_read_whole() -> None:
    request = b"GET /ok?x=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"
    async with serving() as (_, port):
        raw = await exchange(port, *(request[i : i + 1] for i in range(len(request))))
    assert parse(raw)[0] == 200


def test_head_gets_the_headers_without_the_body(run: Run) -> None:
    run(_head_gets_the_headers_without_the_body())


async def _head_gets_the_headers_without_the_body() -> None:
    async with serving() as (_, port):
        status, headers, body = parse(await exchange(port, b"HEAD /ok HTTP/1.1\r\n\r\n"))
    assert (status, headers["content-length"], body) == (200, "4", b"")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /nowhere HTTP/1.1\r\n\r\n", 404),
        (b"POST /ok HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET /ok HTTP/1.1\r\nBad Header Without Colon\r\n\r\n", 400),
    ],
)
def test_wrong_requests_get_a_clear_status(run: Run, request_bytes: bytes, status: int) -> None:
    run(_wrong_requests_get_a_clear_status(request_bytes, status))


async def _wrong_requests_get_a_clear_status(request_bytes: bytes, status: int) -> None:
    async with serving() as (_, port):
        got, headers, _ = parse(await exchange(port, request_bytes))
    assert got == status
    if status == 405:
        assert headers["allow"] == "GET"


def test_an_oversized_head_is_refused_not_buffered(run: Run) -> None:
    run(_an_oversized_head_is_refused_not_buffered())


async def _an_oversized_head_is_refused_not_buffered() -> None:
    huge = b"GET /ok HTTP/1.1\r\nX-Pad: " + b"a" * 4096
    async with serving(server=HttpServer(max_head_bytes=2048)) as (server, port):
        raw = await exchange(port, huge)
        assert parse(raw)[0] == 431
        assert not server.connections


def test_a_client_that_never_finishes_its_head_is_dropped(run: Run) -> None:
    run(_a_client_that_never_finishes_its_head_is_dropped())


async def _a_client_that_never_finishes_its_head_is_dropped() -> None:
    async with serving(server=HttpServer(request_deadline=0.3)) as (server, port):
        started = time.monotonic()
        raw = await exchange(port, b"GET /ok HTTP/1.1\r\nHost: x\r\n")  # no blank line, ever
        assert raw == b""  # closed without an answer
        assert 0.2 < time.monotonic() - started < 5
        assert not server.connections


def test_pipelined_requests_get_one_answer(run: Run) -> None:
    run(_pipelined_requests_get_one_answer())


async def _pipelined_requests_get_one_answer() -> None:
    async with serving() as (_, port):
        raw = await exchange(port, b"GET /ok HTTP/1.1\r\n\r\nGET /ok HTTP/1.1\r\n\r\n")
    assert raw.count(b"HTTP/1.1 200") == 1


def test_a_failing_handler_answers_500_and_the_server_goes_on(run: Run) -> None:
    run(_a_failing_handler_answers_500_and_the_server_goes_on())


async def _a_failing_handler_answers_500_and_the_server_goes_on() -> None:
    def broken(_request: Request) -> Answer:
        raise RuntimeError("boom")

    async def broken_later(_request: Request) -> Answer:
        raise RuntimeError("boom later")

    routes: dict[str, Handler] = {
        "/broken": broken,
        "/later": lambda r: asyncio.ensure_future(broken_later(r)),
        "/ok": lambda _r: Answer.text(200, "fine"),
    }
    async with serving(routes) as (_, port):
        assert parse(await exchange(port, b"GET /broken HTTP/1.1\r\n\r\n"))[0] == 500
        assert parse(await exchange(port, b"GET /later HTTP/1.1\r\n\r\n"))[0] == 500
        assert parse(await exchange(port, b"GET /ok HTTP/1.1\r\n\r\n"))[0] == 200


def test_the_handler_sees_path_headers_and_peer(run: Run) -> None:
    run(_the_handler_sees_path_headers_and_peer())


async def _the_handler_sees_path_headers_and_peer() -> None:
    seen: list[Request] = []

    def record(request: Request) -> Answer:
        seen.append(request)
        return Answer.json(200, {"ok": True})

    async with serving({"/r": record}) as (_, port):
        raw = await exchange(port, b"GET /r?q=1 HTTP/1.1\r\nX-Carrier-Drain-Token: t0k\r\n\r\n")
    assert parse(raw)[1]["content-type"].startswith("application/json")
    assert [(r.method, r.path, r.headers.get("x-carrier-drain-token"), r.remote) for r in seen] == [
        ("GET", "/r", "t0k", "127.0.0.1")
    ]


def test_stop_closes_silent_connections_and_gives_answers_in_flight_a_grace(run: Run) -> None:
    run(_stop_closes_silent_connections_and_gives_answers_in_flight_a_grace())


async def _stop_closes_silent_connections_and_gives_answers_in_flight_a_grace() -> None:
    release, entered = asyncio.Event(), asyncio.Event()

    async def slow(_request: Request) -> Answer:
        entered.set()
        await release.wait()
        return Answer.text(200, "late")

    async with serving({"/slow": lambda r: asyncio.ensure_future(slow(r))}) as (server, port):
        silent = socket.create_connection(("127.0.0.1", port))
        silent.setblocking(False)
        waiting = asyncio.ensure_future(exchange(port, b"GET /slow HTTP/1.1\r\n\r\n"))
        await asyncio.wait_for(entered.wait(), 5)
        stopping = asyncio.ensure_future(server.stop(5.0))
        await asyncio.sleep(0)  # one turn: stop() closes what it closes, then waits
        assert not stopping.done()
        release.set()  # answered within the grace
        await asyncio.wait_for(stopping, 5)
        assert parse(await asyncio.wait_for(waiting, 5))[2] == b"late"
        loop = asyncio.get_running_loop()
        assert await asyncio.wait_for(loop.sock_recv(silent, 10), 5) == b""  # closed by stop
        silent.close()


def test_an_answer_past_the_grace_is_cut_off(run: Run) -> None:
    run(_an_answer_past_the_grace_is_cut_off())


async def _an_answer_past_the_grace_is_cut_off() -> None:
    entered = asyncio.Event()

    async def never(_request: Request) -> Answer:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with serving({"/never": lambda r: asyncio.ensure_future(never(r))}) as (server, port):
        waiting = asyncio.ensure_future(exchange(port, b"GET /never HTTP/1.1\r\n\r\n"))
        await asyncio.wait_for(entered.wait(), 5)
        started = time.monotonic()
        await server.stop(0.2)
        assert time.monotonic() - started < 3
        assert await asyncio.wait_for(waiting, 5) == b""


def test_connections_past_the_cap_are_closed_unanswered(run: Run) -> None:
    run(_connections_past_the_cap_are_closed_unanswered())


async def _connections_past_the_cap_are_closed_unanswered() -> None:
    async with serving(server=HttpServer(max_connections=3)) as (server, port):
        holders = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        for _, holder in holders:  # each sends half a head and holds on
            holder.write(b"GET /ok HTTP/1.1\r\n")
        await eventually(lambda: len(server.connections) == 3, 5, "three connections held")
        assert await exchange(port, b"GET /ok HTTP/1.1\r\n\r\n") == b""  # over the cap
        reader, writer = holders.pop()
        writer.write(b"\r\n")  # one holder finishes its head: answered and closed
        assert parse(await asyncio.wait_for(reader.read(), 5))[0] == 200
        writer.close()
        await eventually(lambda: len(server.connections) == 2, 5, "the answered one gone")
        assert parse(await exchange(port, b"GET /ok HTTP/1.1\r\n\r\n"))[0] == 200  # room again
        for _, held in holders:
            held.close()
