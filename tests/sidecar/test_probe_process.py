"""The real ``carrier-sidecar`` serves its probe port from a child process (probe_process.py).

A flood on the port must not reach the delivering loop, and the split must not cost what the
in-loop port gave: the kubelet still sees a stuck sidecar (its loop stopped: ``/healthz`` 503),
and no way the sidecar ends leaves the child behind holding the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from carrier_sidecar.probe_child import STALE_AFTER
from tests.support.queues import depth, make_queue
from tests.support.servers import MotoServer, WebhookRecorder, eventually, free_port
from tests.support.sidecars import SidecarProcess, env_for, sidecar_process

from .test_process import holding_webhook


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def get(port: int, path: str) -> tuple[int, bytes]:
    timeout = aiohttp.ClientTimeout(total=2)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"http://127.0.0.1:{port}{path}") as answer,
    ):
        return answer.status, await answer.read()


async def status(port: int, path: str) -> int | None:
    """The status answered, None if nothing listens."""
    try:
        return (await get(port, path))[0]
    except aiohttp.ClientConnectionError:
        return None


async def _is(port: int, path: str, code: int) -> bool:
    return await status(port, path) == code


async def refused(port: int) -> bool:
    return await status(port, "/healthz") is None


async def started(sidecar: SidecarProcess, port: int) -> int:
    """The child's pid, once the port answers ready."""
    await eventually(lambda: _is(port, "/readyz", 200), 30, "the sidecar to be ready")
    (child,) = children(sidecar.proc.pid)
    return child


@contextlib.asynccontextmanager
async def probed_sidecar(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str, command: list[str]
) -> AsyncIterator[tuple[SidecarProcess, int, int]]:
    """The real sidecar on an empty queue with its probe port on: (process, port, child pid)."""
    await make_queue(sqs, queue_name)
    port = free_port()
    env = env_for(moto, queue_name, webhook.url, CARRIER_HTTP_ADDR=f"127.0.0.1:{port}")
    async with sidecar_process(command, env) as sidecar:
        yield sidecar, port, await started(sidecar, port)


async def test_the_port_is_served_by_a_child_that_leaves_with_the_sidecar(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str,
    sidecar_command: list[str],
) -> None:  # fmt: skip
    async with probed_sidecar(moto, sqs, webhook, queue_name, sidecar_command) as probed:
        sidecar, port, child = probed
        code, body = await get(port, "/healthz")
        assert (code, json.loads(body)) == (200, {"live": True})
        code, metrics = await get(port, "/metrics")
        assert code == 200
        assert b"carrier_messages_received_total" in metrics  # rendered by the sidecar, relayed
        os.kill(child, signal.SIGTERM)  # the child follows the sidecar, not the signals
        assert [await status(port, "/healthz") for _ in range(3)] == [200] * 3
        assert alive(child)
        sidecar.proc.send_signal(signal.SIGTERM)
        assert await sidecar.wait(15) == 0
    assert not alive(child), "the child was reaped with the sidecar"
    assert await refused(port)
    logs = [json.loads(line) for line in sidecar.lines if line.startswith("{")]
    assert [e["signal"] for e in logs if e.get("msg", "").startswith("signal received")] == [
        "SIGTERM"
    ], "only the sidecar logs the signal"


async def test_a_killed_sidecar_takes_its_child_and_port_with_it(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str,
    sidecar_command: list[str],
) -> None:  # fmt: skip
    async with probed_sidecar(moto, sqs, webhook, queue_name, sidecar_command) as probed:
        sidecar, port, child = probed
        sidecar.proc.kill()  # no clean-up of its own: the channel closing is all the child sees
        await sidecar.proc.wait()
        await eventually(lambda: not alive(child), 5, "the child to exit")
        assert await refused(port)


async def test_a_stopped_event_loop_turns_healthz_false(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str,
    sidecar_command: list[str],
) -> None:  # fmt: skip
    """In-loop, a stuck loop could not answer at all (the kubelet's timeout); now the child
    answers, so it must say so: 503 once the loop has been silent for STALE_AFTER."""
    async with probed_sidecar(moto, sqs, webhook, queue_name, sidecar_command) as probed:
        sidecar, port, _ = probed
        sidecar.proc.send_signal(signal.SIGSTOP)
        try:
            assert await status(port, "/healthz") == 200  # just stopped: not stale yet
            await eventually(
                lambda: _is(port, "/healthz", 503), STALE_AFTER + 10, "healthz to fail"
            )
            code, body = await get(port, "/healthz")
            said = json.loads(body)
            assert code == 503
            assert said["live"] is False
            assert "sent nothing" in said["reason"]
        finally:
            sidecar.proc.send_signal(signal.SIGCONT)
        await eventually(lambda: _is(port, "/healthz", 200), 10, "healthz to recover")


async def test_a_lost_child_stops_the_sidecar_gracefully_with_exit_1(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str,
    sidecar_command: list[str],
) -> None:  # fmt: skip
    """Nothing would answer the kubelet any more: the sidecar says so and exits, releasing
    what it holds instead of waiting to be killed with it."""
    release = asyncio.Event()
    holding_webhook(webhook, release)
    url = await make_queue(sqs, queue_name, VisibilityTimeout="60")
    await sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)]
    )
    port = free_port()
    env = env_for(
        moto, queue_name, webhook.url,
        CARRIER_HTTP_ADDR=f"127.0.0.1:{port}", CARRIER_SQS_BATCH_SIZE="3",
    )  # fmt: skip
    try:
        async with sidecar_process(sidecar_command, env) as sidecar:
            await eventually(lambda: len(webhook.received) == 1, 15, "one delivery in flight")
            (child,) = children(sidecar.proc.pid)
            os.kill(child, signal.SIGKILL)
            await eventually(lambda: sidecar.logged("probe port lost"), 10, "the loss logged")
            release.set()
            assert await sidecar.wait(15) == 1
    finally:
        release.set()
    assert await depth(sqs, url) == (2, 0), "one delivered and deleted, two released at once"
