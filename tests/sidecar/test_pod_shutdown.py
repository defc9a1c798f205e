"""A pod deleted with slow deliveries in flight, with the kubelet's order simulated over the real
processes: the real ``carrier-sidecar`` on moto and a real worker process (``slow_worker``).

What the kubelet does when a pod is deleted (container hooks run before the container's
SIGTERM, and the kubelet waits for them):

- native sidecar: the worker's preStop (GET /drain with the pod's token, wait for the answer)
  → SIGTERM to the worker → the worker exits → SIGTERM to the sidecar;
- regular container: every container is stopped in parallel: the worker's preStop then its
  SIGTERM, and the sidecar (no hook) gets SIGTERM at once, while the hook is running.

Asserted: zero failed POSTs (the worker never answers 503, the sidecar logs no failed
delivery), every delivery carries receive count 1, no message is left in flight, no message
left in the queue was ever received (the drain delivered the prefetch rather than release it),
delivered + left = sent, and every process exits 0. A control run without the hook shows the failures it prevents.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from carrier_sidecar.drain import DRAIN_PATH, TOKEN_HEADER
from tests.support.queues import depth, make_queue
from tests.support.servers import MotoServer, eventually, free_port
from tests.support.sidecars import SidecarProcess, env_for

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "pod-token-0123456789abcdefghijklmnop"
MESSAGES = 40
DELAY = 1.0  # each delivery takes this long in the worker
WORKERS, BATCH = 4, 2
WORKER = ("--delay", str(DELAY), "--linger", "2")
GRACE = 30.0  # the pod's terminationGracePeriodSeconds bounds the hook and the exits


@dataclass
class Pod:
    sidecar: SidecarProcess
    worker: SidecarProcess
    probe_port: int

    def worker_events(self, kind: str) -> list[dict[str, Any]]:
        events = [json.loads(line) for line in self.worker.lines if line.startswith("{")]
        return [e for e in events if e["event"] == kind]

    def in_flight(self) -> int:
        return len(self.worker_events("start")) - len(self.worker_events("done"))

    def sidecar_failures(self) -> list[str]:
        return [line for line in self.sidecar.lines if '"delivery failed"' in line]

    async def prestop(self) -> int:
        """The kubelet's httpGet hook (bounded by the grace period), as the injector wires it."""
        url = f"http://127.0.0.1:{self.probe_port}{DRAIN_PATH}"
        timeout = aiohttp.ClientTimeout(total=GRACE)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers={TOKEN_HEADER: TOKEN}) as response,
        ):
            return response.status

    async def stop_worker(self) -> int:
        self.worker.proc.send_signal(signal.SIGTERM)
        return await self.worker.wait(GRACE)

    async def stop_sidecar(self) -> int:
        self.sidecar.proc.send_signal(signal.SIGTERM)
        return await self.sidecar.wait(GRACE)


@asynccontextmanager
async def running_pod(
    moto: MotoServer, queue_name: str, sidecar_command: list[str]
) -> AsyncIterator[Pod]:
    worker_port, probe_port = free_port(), free_port()
    worker = await SidecarProcess.start(
        [sys.executable, "-m", "tests.sidecar.slow_worker", "--port", str(worker_port), *WORKER],
        {"PYTHONPATH": str(ROOT)},
    )
    env = env_for(
        moto,
        queue_name,
        f"http://127.0.0.1:{worker_port}/jobs",
        CARRIER_HTTP_ADDR=f"127.0.0.1:{probe_port}",
        CARRIER_DRAIN_TOKEN=TOKEN,
        CARRIER_SQS_RECEIVER_WORKERS=str(WORKERS),
        CARRIER_SQS_BATCH_SIZE=str(BATCH),
        CARRIER_SHUTDOWN_TIMEOUT="10s",
        CARRIER_RETRY_BACKOFF="queue",  # a failed POST leaves the message in flight: visible
    )
    sidecar = None
    try:
        await eventually(lambda: worker.logged('"listening"'), 20, "the worker to listen")
        sidecar = await SidecarProcess.start(sidecar_command, env)
        yield Pod(sidecar, worker, probe_port)
    finally:
        await worker.kill()
        if sidecar is not None:
            await sidecar.kill()


async def leftover_receive_counts(sqs: Any, url: str) -> dict[str, int]:
    """Body → ApproximateReceiveCount of what is still in the queue (our read adds one)."""
    counts: dict[str, int] = {}
    for _ in range(MESSAGES):  # bounded: at most one message per round is enough to finish
        answer = await sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["ApproximateReceiveCount"],
            VisibilityTimeout=300,
            WaitTimeSeconds=0,
        )
        messages = answer.get("Messages", [])
        if not messages:
            break
        for message in messages:
            counts[message["Body"]] = int(message["Attributes"]["ApproximateReceiveCount"])
    return counts


async def fill(sqs: Any, queue_name: str) -> str:
    url = await make_queue(sqs, queue_name, VisibilityTimeout="120")
    for start in range(0, MESSAGES, 10):
        await sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, start + 10)],
        )
    return url


async def slow_deliveries_in_flight(pod: Pod) -> None:
    await eventually(lambda: len(pod.worker_events("done")) >= 4, 60, "some deliveries done")
    await eventually(lambda: pod.in_flight() >= 2, 30, "deliveries in flight")


@pytest.mark.parametrize("native", [True, False], ids=["native", "regular"])
async def test_pod_deletion_drains_before_the_worker_stops(
    moto: MotoServer, sqs: Any, queue_name: str, sidecar_command: list[str], native: bool
) -> None:
    url = await fill(sqs, queue_name)
    async with running_pod(moto, queue_name, sidecar_command) as pod:
        await slow_deliveries_in_flight(pod)
        if native:
            hook = await pod.prestop()
            worker_exit = await pod.stop_worker()
            sidecar_exit = await pod.stop_sidecar()
        else:
            running_hook = asyncio.ensure_future(pod.prestop())
            await eventually(lambda: pod.sidecar.logged("drain requested"), 10, "the hook call")
            pod.sidecar.proc.send_signal(signal.SIGTERM)  # no hook on the sidecar: at once
            hook = await running_hook
            worker_exit = await pod.stop_worker()
            sidecar_exit = await pod.sidecar.wait(GRACE)

        assert hook == 200
        assert (worker_exit, sidecar_exit) == (0, 0)
        assert pod.worker_events("refused") == [], "a POST reached the stopping worker"
        assert pod.sidecar_failures() == []
        done = pod.worker_events("done")
        assert len(done) == len(pod.worker_events("start")), "a delivery was cut off"
        assert {e["receive_count"] for e in done} == {"1"}
        delivered = [e["body"] for e in done]
        assert len(delivered) == len(set(delivered)), "a message was delivered twice"

    visible, in_flight = await depth(sqs, url)
    assert in_flight == 0, "held messages were released, deliveries finished and deleted"
    left = await leftover_receive_counts(sqs, url)
    assert len(left) == visible
    assert set(delivered).isdisjoint(left), "a delivered message was not deleted"
    assert len(delivered) + len(left) == MESSAGES, "nothing lost"
    # 1 = our read only: the prefetch was delivered during the drain, not released (a released
    # message would read 2 here, one receive nearer the DLQ with nothing wrong with it).
    assert set(left.values()) == {1}, "a held message was released instead of delivered"


async def test_without_the_hook_the_stopping_worker_gets_posts(
    moto: MotoServer, sqs: Any, queue_name: str, sidecar_command: list[str]
) -> None:
    """Control: the native order without the preStop (the fault this hook fixes) is detected."""
    await fill(sqs, queue_name)
    async with running_pod(moto, queue_name, sidecar_command) as pod:
        await slow_deliveries_in_flight(pod)
        worker_exit = await pod.stop_worker()
        sidecar_exit = await pod.stop_sidecar()
        assert (worker_exit, sidecar_exit) == (0, 0)
        assert pod.worker_events("refused") or pod.sidecar_failures()
