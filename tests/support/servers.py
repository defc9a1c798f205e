"""Start real servers on loopback and wait for them with a deadline, never a bare sleep."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


_HANDED_OUT: set[int] = set()
_PORTS_FROM = 10_000


def _ephemeral_low() -> int:
    """The first port the kernel hands to outgoing connections (Linux's default otherwise)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _bindable(port: int) -> bool:
    """Free on every IPv4 and (where the machine has it) every IPv6 address."""
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.bind((host, port))
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                continue  # no IPv6 here
            return False
    return True


def free_port() -> int:
    """A port a server started later (often in another process) can listen on.

    Chosen below the kernel's ephemeral range, never from it: a port picked with ``bind(0)``
    and closed again is exactly the kind the kernel then gives an outgoing connection in the
    gap before the server binds it, and the server fails with "address in use". Ports are
    never handed out twice in one test run, and each is checked free on every address.
    """
    top = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(_PORTS_FROM, top)
        if port not in _HANDED_OUT and _bindable(port):
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError(f"no free port found in {_PORTS_FROM}-{top - 1} after 200 tries")


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    """Poll ``check`` until true or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


async def eventually(
    check: Callable[[], object],
    timeout: float,
    what: str | Callable[[], str],
    every: float = 0.05,
) -> None:
    """Async poll with a deadline: the test-side replacement for ``sleep``.

    ``check`` returns anything truthy when done (a bool, a non-empty list), or an awaitable of it.
    ``what`` may be a callable, to describe the state at the deadline (a log tail then, not
    when the wait began).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(every)
    described = what() if callable(what) else what
    raise TimeoutError(f"timed out after {timeout}s waiting for {described}")


def _moto_binary() -> str:
    found = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which(
        "moto_server"
    )
    if not found:
        raise RuntimeError("moto_server not found: install the dev extra (moto[server])")
    return found


@dataclass
class MotoServer:
    """A real ``moto_server`` process on loopback; ``stop``/``start`` simulate an SQS outage."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> None:
        env = {**os.environ, **AWS_TEST_ENV}
        self.proc = subprocess.Popen(
            [_moto_binary(), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        wait_until(self._answers, 30, f"moto_server on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=5):
            pass


@contextlib.contextmanager
def running_moto() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Received:
    """One request as the webhook saw it."""

    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes


Responder = Callable[[web.Request, Received], Awaitable[web.StreamResponse]]


def always(status: int, headers: Mapping[str, str] | None = None) -> Responder:
    """A responder answering every request with ``status`` (and ``headers``), empty body."""

    async def answer(_request: web.Request, _received: Received) -> web.StreamResponse:
        return web.Response(status=status, headers=dict(headers or {}))

    return answer


_ok = always(200)


@dataclass
class WebhookRecorder:
    """A real aiohttp server that records every request; ``responder`` decides each answer."""

    responder: Responder = _ok
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        item = Received(
            method=request.method,
            path_qs=request.path_qs,
            headers=dict(request.headers.items()),
            body=await request.read(),
        )
        self.received.append(item)
        self.arrived.set()
        return await self.responder(request, item)

    async def start(self) -> WebhookRecorder:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port or free_port())
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = int(server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def bodies(self) -> list[bytes]:
        return [r.body for r in self.received if r.method == "POST"]
