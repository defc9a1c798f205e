"""The real sidecar with 1 MiB bodies stays under the memory limit the injector gives it.

For two concurrency settings, the queue holds three rounds of SQS's largest messages
(1 048 576 bytes), the webhook takes 1 s per POST so every slot stays full, and the process's
peak RSS (``VmHWM`` from /proc: the kernel's high-water mark), plus what its probe process holds
of its own (the container's memory limit counts both), is compared with the limit the injector
computes for a binding with those delivery settings.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from carrier_operator.config import OperatorSettings
from carrier_operator.injection import sidecar_container
from carrier_operator.resources import quantity_bytes
from carrier_sidecar.sizing import MAX_MESSAGE_BYTES, held_messages_for
from tests.support.queues import make_queue
from tests.support.servers import MotoServer, Received, WebhookRecorder, eventually, free_port
from tests.support.sidecars import env_for, sidecar_process

ROUNDS = 3


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def private_bytes(pid: int) -> int:
    """The pages only this process maps: what a forked child adds to its parent's RSS."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1]) * 1024
    return total


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def injected_limit(receivers: int, workers: int, batch: int) -> int:
    spec = {
        "queue": {"name": "q"},
        "webhook": {"port": 8080},
        "delivery": {"receivers": receivers, "workersPerReceiver": workers, "batchSize": batch},
    }
    container = sidecar_container(spec, OperatorSettings(), native=True)
    limit = quantity_bytes(container["resources"]["limits"]["memory"])
    assert limit is not None
    return limit


@pytest.mark.parametrize(("receivers", "workers", "batch"), [(1, 2, 2), (2, 3, 4)])
async def test_peak_rss_with_1mib_bodies_stays_under_the_injected_limit(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
    receivers: int,
    workers: int,
    batch: int,
) -> None:
    async def slow(_r: web.Request, _g: Received) -> web.StreamResponse:
        await asyncio.sleep(1.0)  # the worker's work: every slot stays held
        return web.Response(status=200)

    webhook.responder = slow
    held = held_messages_for(receivers, workers, batch)
    url = await make_queue(sqs, queue_name, VisibilityTimeout="300")
    body = "x" * MAX_MESSAGE_BYTES
    for _ in range(ROUNDS * held):
        await sqs.send_message(QueueUrl=url, MessageBody=body)
    env = env_for(
        moto,
        queue_name,
        webhook.url,
        CARRIER_SQS_RECEIVERS=str(receivers),
        CARRIER_SQS_RECEIVER_WORKERS=str(workers),
        CARRIER_SQS_BATCH_SIZE=str(batch),
        CARRIER_HTTP_ADDR=f"127.0.0.1:{free_port()}",  # as injected: its probe process runs too
    )
    async with sidecar_process(sidecar_command, env) as sidecar:
        target = (ROUNDS - 1) * held
        await eventually(lambda: len(webhook.bodies()) >= target, 120, f"{target} deliveries")
        (probe_process,) = children(sidecar.proc.pid)
        peak = peak_rss(sidecar.proc.pid) + private_bytes(probe_process)
    assert all(len(b) == MAX_MESSAGE_BYTES for b in webhook.bodies())
    limit = injected_limit(receivers, workers, batch)
    assert peak < limit, f"peak RSS {peak / 2**20:.1f} MiB >= limit {limit / 2**20:.0f} MiB"
