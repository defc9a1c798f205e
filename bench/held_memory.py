"""Peak RSS of the real ``carrier-sidecar`` against the number of 1 MiB messages it holds.

``python -m bench.held_memory`` starts moto_server on loopback and a webhook that answers every
POST after ``--delay`` seconds (1 s), and for each concurrency (receivers x workers x batch)
fills a queue with 1 MiB bodies (SQS's maximum: 1 048 576 bytes), runs the sidecar until it
has delivered ``--rounds`` full rounds of what it can hold, and reads its peak RSS (``VmHWM``
from ``/proc/<pid>/status``: the kernel's own high-water mark, no sampling gap). It prints one
row per setting and a least-squares fit ``peak = base + factor x held x body``, where
``held = receivers x (workers + batch)``: the slots a receiver fills (``receiver.Slots``).
The formula used by the injector (:mod:`carrier_sidecar.sizing`) comes from these runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from aiobotocore.session import get_session
from aiohttp import web

from carrier_sidecar.sizing import MAX_MESSAGE_BYTES, held_messages_for, memory_bound_for
from tests.support.servers import AWS_TEST_ENV, MotoServer, free_port

MIB = 1024 * 1024
SETTINGS = ((1, 1, 1), (1, 5, 5), (1, 10, 10), (2, 10, 10), (3, 10, 10))


def vm_hwm(pid: int) -> int:
    """Peak resident set size of ``pid`` in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc status")


async def webhook(delay: float, target: int) -> tuple[web.AppRunner, int, list[int], asyncio.Event]:
    delivered: list[int] = []
    enough = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(delay)  # the worker's work: keeps every slot held
        delivered.append(len(body))
        if len(delivered) >= target:
            enough.set()
        return web.Response(status=200)

    app = web.Application(client_max_size=2 * MIB)
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port, delivered, enough


async def fill(sqs: Any, name: str, count: int, size: int) -> None:
    url = (await sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "300"}))[
        "QueueUrl"
    ]
    body = "x" * size
    for _ in range(count):  # one per call: a batch is capped at 1 MiB in total
        await sqs.send_message(QueueUrl=url, MessageBody=body)


async def one_run(
    moto: MotoServer, receivers: int, workers: int, batch: int, args: argparse.Namespace
) -> dict[str, Any]:
    held = held_messages_for(receivers, workers, batch)
    count = held * args.rounds
    name = f"held-{receivers}-{workers}-{batch}-{time.monotonic_ns()}"
    runner, port, delivered, enough = await webhook(args.delay, count - held)
    session = get_session()
    async with session.create_client(
        "sqs", region_name="us-east-1", endpoint_url=moto.endpoint
    ) as sqs:
        await fill(sqs, name, count, args.size)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")},
        **AWS_TEST_ENV,
        "CARRIER_SQS_ENDPOINT": moto.endpoint,
        "CARRIER_SQS_QUEUE_NAME": name,
        "CARRIER_WEBHOOK_ENDPOINT": f"http://127.0.0.1:{port}/",
        "CARRIER_SQS_RECEIVERS": str(receivers),
        "CARRIER_SQS_RECEIVER_WORKERS": str(workers),
        "CARRIER_SQS_BATCH_SIZE": str(batch),
        "CARRIER_SQS_WAIT_TIME": "1s",
        "CARRIER_HTTP_ADDR": "none",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "carrier_sidecar", env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), args.deadline)
        peak = vm_hwm(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
        await runner.cleanup()
    return {
        "receivers": receivers,
        "workers": workers,
        "batch": batch,
        "held": held,
        "held_mib": round(held * args.size / MIB, 1),
        "delivered": len(delivered),
        "peak_rss_mib": round(peak / MIB, 1),
        "bound_mib": round(memory_bound_for(receivers, workers, batch) / MIB, 1),
    }


def fit(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """Least squares: peak_mib = base + factor x held_mib."""
    xs = [float(r["held_mib"]) for r in rows]
    ys = [float(r["peak_rss_mib"]) for r in rows]
    slope, intercept = statistics.linear_regression(xs, ys)
    return intercept, slope


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=MAX_MESSAGE_BYTES)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deadline", type=float, default=120.0)
    parser.add_argument("--settings", default=",".join("x".join(map(str, s)) for s in SETTINGS))
    args = parser.parse_args()
    os.environ.update(AWS_TEST_ENV)
    settings = [tuple(int(n) for n in s.split("x")) for s in args.settings.split(",")]
    moto = MotoServer()
    moto.start()
    try:
        rows = []
        for receivers, workers, batch in settings:
            row = await one_run(moto, receivers, workers, batch, args)
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        moto.stop()
    if len(rows) >= 2:
        base, factor = fit(rows)
        print(json.dumps({"fit_base_mib": round(base, 1), "fit_factor": round(factor, 2)}))


if __name__ == "__main__":
    asyncio.run(main())
