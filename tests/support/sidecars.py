"""Running the sidecar in tests: in-process (``in_process``) or as the real process
(``sidecar_process``), its environment against moto (``env_for``), behind a proxy (``proxy_to``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

from carrier_sidecar import app
from carrier_sidecar.metrics import Metrics
from carrier_sidecar.settings import Settings
from tests.support.servers import AWS_TEST_ENV, MotoServer
from tests.support.sqs_proxy import Mischief, SqsProxy

FAST = {
    "CARRIER_SQS_WAIT_TIME": "1s",
    "CARRIER_HTTP_ADDR": "none",
    "CARRIER_SHUTDOWN_TIMEOUT": "5s",
    "CARRIER_WEBHOOK_REQUEST_TIMEOUT": "10s",
}


def env_for(moto: MotoServer, queue: str, webhook_url: str, **overrides: str) -> dict[str, str]:
    env = {
        **FAST,
        "CARRIER_SQS_ENDPOINT": moto.endpoint,
        "CARRIER_SQS_QUEUE_NAME": queue,
        "CARRIER_WEBHOOK_ENDPOINT": webhook_url,
    }
    env.update(overrides)
    return env


@dataclass
class InProcess:
    """The sidecar's ``app.run`` as a task of the test's loop, stopped through its event."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    probe_port: int | None = None
    task: asyncio.Task[int] | None = None

    def start(self) -> InProcess:
        def seen(port: int) -> None:
            self.probe_port = port

        self.task = asyncio.ensure_future(
            app.run(
                self.settings,
                stop=self.stop,
                metrics=self.metrics,
                handle_signals=False,
                on_probe_port=seen,
            )
        )
        return self

    def counter(self, name: str) -> float:
        return self.metrics.snapshot().get(name, 0.0)

    async def finish(self, timeout: float = 20) -> int:
        assert self.task is not None
        self.stop.set()
        return await asyncio.wait_for(self.task, timeout)


@contextlib.asynccontextmanager
async def in_process(env: Mapping[str, str]) -> AsyncIterator[InProcess]:
    sidecar = InProcess(Settings.load(env)).start()
    try:
        yield sidecar
    finally:
        assert sidecar.task is not None
        if not sidecar.task.done():
            sidecar.stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sidecar.task, 20)
        elif not sidecar.task.cancelled() and sidecar.task.exception() is not None:
            raise sidecar.task.exception()  # type: ignore[misc]


@contextlib.asynccontextmanager
async def proxy_to(
    moto: MotoServer, mischief: Mischief, before_stop: Callable[[], None] | None = None
) -> AsyncIterator[SqsProxy]:
    """The chaos suite's recording SQS proxy in front of moto, misbehaving as ``mischief`` says;
    ``before_stop`` lets go of whatever the mischief holds, so the proxy can stop."""
    proxy = await SqsProxy(moto.endpoint, message_id=lambda body: body, mischief=mischief).start()
    try:
        yield proxy
    finally:
        if before_stop is not None:
            before_stop()
        await proxy.stop()


def process_env(env: Mapping[str, str]) -> dict[str, str]:
    """A clean environment for the real process: the test's CARRIER_* only, AWS test credentials."""
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("CARRIER_")}
    return {**base, **AWS_TEST_ENV, "PYTHONUNBUFFERED": "1", **env}


@dataclass
class SidecarProcess:
    """The real ``carrier-sidecar`` process; its stdout lines are collected as they come."""

    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, command: list[str], env: Mapping[str, str]) -> SidecarProcess:
        """The process with the test's ``env`` over :func:`process_env`'s clean base."""
        return await cls.start_exact(command, process_env(env))

    @classmethod
    async def start_exact(cls, command: list[str], env: Mapping[str, str]) -> SidecarProcess:
        """The process with exactly ``env``: nothing added (no static test credentials)."""
        proc = await asyncio.create_subprocess_exec(
            *command,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self = cls(proc)
        self.reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    async def wait(self, timeout: float) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self.reader is not None:
            await asyncio.wait_for(self.reader, 5)
        return code

    async def stderr(self) -> str:
        assert self.proc.stderr is not None
        return (await asyncio.wait_for(self.proc.stderr.read(), 5)).decode(errors="replace")

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self.reader is not None:
            self.reader.cancel()


@contextlib.asynccontextmanager
async def sidecar_process(
    command: list[str], env: Mapping[str, str]
) -> AsyncIterator[SidecarProcess]:
    process = await SidecarProcess.start(command, env)
    try:
        yield process
    finally:
        await process.kill()
