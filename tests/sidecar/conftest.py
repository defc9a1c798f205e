"""The sidecar suite's fixtures: a scriptable health endpoint (a real aiohttp server), a client
session, a leaked-task check; and ``gate_settings`` for the health gate."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from carrier_sidecar.settings import Settings
from tests.support.servers import Received, WebhookRecorder, eventually, free_port

HANG_LIMIT = 15.0  # a "hanging" endpoint still answers eventually, so no test can wedge


@dataclass
class HealthEndpoint:
    """Answers from ``script`` (one status per request), then ``status``; or hangs if ``hang``."""

    port: int = field(default_factory=free_port)
    status: int = 200
    script: list[int] = field(default_factory=list)
    hang: bool = False
    times: list[float] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    _server: WebhookRecorder | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    @property
    def hits(self) -> int:
        return len(self.times)

    async def _respond(self, _request: web.Request, _received: Received) -> web.StreamResponse:
        self.times.append(time.monotonic())
        if self.hang:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), HANG_LIMIT)
        status = self.script.pop(0) if self.script else self.status
        return web.Response(status=status, text="health")

    async def up(self) -> HealthEndpoint:
        self._server = await WebhookRecorder(responder=self._respond, port=self.port).start()
        return self

    async def down(self) -> None:
        self.release.set()
        if self._server is not None:
            await self._server.stop()
            self._server = None


@pytest.fixture
async def endpoint() -> AsyncIterator[HealthEndpoint]:
    """A health endpoint on a reserved port, not started: call ``await endpoint.up()``."""
    server = HealthEndpoint()
    try:
        yield server
    finally:
        await server.down()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def gate_settings(url: str | None, **fields: Any) -> Settings:
    values: dict[str, Any] = {"sqs_queue_name": "q", "webhook_health_check_interval": 0.05}
    if url is not None:
        values["webhook_health_check_endpoint"] = url
    values.update(fields)
    return Settings.from_fields(values)


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail if the test leaves tasks running. List it first, so it is torn down last."""
    before = set(asyncio.all_tasks())

    def leaked() -> set[asyncio.Task[Any]]:
        return {t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()}

    yield
    with contextlib.suppress(TimeoutError):
        await eventually(lambda: not leaked(), 2.0, "tasks to finish")
    assert not leaked(), f"tasks left running: {leaked()}"
