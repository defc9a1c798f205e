"""``python -m bench.probe_flood``: delivery rate and ``/healthz`` latency under a probe flood.

The probe port is reachable from the pod network, so anything there can send it 1 000 concurrent
GETs. Targets (issue 13 §5): ``/healthz`` p99 under 100 ms and deliveries at >= 80 % of their
rate during the flood. An SQS server (``--server``: moto, where deliveries are bound by the
server's own CPU, or fauxqs, where they are bound by the sidecar's), the bench webhook (own
process) and the real ``carrier-sidecar``; waves of ``--concurrency`` GETs (half ``/metrics``,
half ``/healthz``), each on its own connection, for ``--seconds``, after a quiet window of the
same length: back to back, or one wave starting every ``--every`` seconds (a fixed offered load),
then a second quiet window. The rate kept is the flood's against the mean of the quiet windows
before and after it: the SQS server's own rate drifts during a run (moto's falls ~20 % over 16 s
with no flood at all), and a single window before the flood counted that drift as the flood's.
``--concurrency 0`` runs the same windows with no flood: the control. Reports each process's CPU
share, and what the flood offered (answers/s).

``--probe-alone`` floods the sidecar's probe server in a process of its own
(:mod:`bench.probe_alone`) instead of the sidecar's port: the best a separate probe process could
do, since the flood then never reaches the delivering loop.

``--flooder-priority idle`` runs the flooding process under ``SCHED_IDLE``: it gets only CPU that
nothing else wants. In a cluster the flood comes from another pod, usually another node, and
costs the sidecar's node nothing; on these 2 shared cores a normal-priority flooder takes up to a
core from the SQS server and the sidecar, which measures the rig rather than the sidecar. The
offered load is reported either way, so an idle flooder that could not keep up shows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.session import get_session

from tests.support.servers import AWS_TEST_ENV, free_port, wait_until

from . import procs, sqs_server
from .sampler import cpu_seconds
from .webhook import WebhookClient


@dataclass
class Flood:
    """What one flood saw: every /healthz latency (s) and the statuses of every answer."""

    healthz: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    outcomes: list[str] = field(default_factory=list)  # every /healthz answer, in order

    def p(self, q: float) -> float:
        ordered = sorted(self.healthz)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def wave(base: str, concurrency: int, flood: Flood, timeout: float = 10.0) -> None:
    """``concurrency`` GETs at once, each on a fresh connection (half /metrics, half /healthz)."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def one(path: str) -> None:
            started = time.monotonic()
            try:
                async with session.get(base + path) as response:
                    await response.read()
                    key = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                key = type(exc).__name__
            if path == "/healthz":
                flood.healthz.append(time.monotonic() - started)
                flood.outcomes.append(key)
            flood.statuses[key] = flood.statuses.get(key, 0) + 1

        paths = ["/metrics" if i % 2 else "/healthz" for i in range(concurrency)]
        await asyncio.gather(*(one(p) for p in paths))


async def flood_for(base: str, seconds: float, concurrency: int, every: float = 0.0) -> Flood:
    """Waves for ``seconds``: back to back (``every`` 0: the next wave starts when the last
    answer of the previous one is in, so a faster server draws a faster flood), or one wave
    starting every ``every`` seconds (a fixed offered load, whatever the server does)."""
    flood = Flood()
    started = time.monotonic()
    deadline = started + seconds
    waves = 0
    while time.monotonic() < deadline:
        await wave(base, concurrency, flood)
        waves += 1
        if every > 0:
            await asyncio.sleep(max(0.0, started + waves * every - time.monotonic()))
    return flood


async def probe_for(base: str, seconds: float, every: float = 0.05) -> Flood:
    """A kubelet's view: one /healthz at a time, new connection each, 1 s timeout."""
    flood = Flood()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await wave(base, 1, flood, timeout=1.0)
        await asyncio.sleep(every)
    return flood


def _cpu_shares(pids: dict[str, int], seconds: float, before: dict[str, float]) -> dict[str, float]:
    return {
        name: round((cpu_seconds(pid) - before[name]) / seconds, 2) for name, pid in pids.items()
    }


def _children(pid: int) -> list[int]:
    listed = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in listed.read_text().split()] if listed.exists() else []


def _posts(webhook_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{webhook_port}/__stats", timeout=5) as r:
        return int(json.load(r)["posts"])


async def _keep_queue_full(sqs: Any, url: str, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        depth = await sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        if int(depth["Attributes"]["ApproximateNumberOfMessages"]) < 500:
            for _ in range(20):
                entries = [
                    {"Id": str(i), "MessageBody": json.dumps({"id": n + i})} for i in range(10)
                ]
                await sqs.send_message_batch(QueueUrl=url, Entries=entries)
                n += 10
        else:
            await asyncio.sleep(0.2)


def _flooder_argv(
    base: str, seconds: float, concurrency: int, every: float, priority: str, report: Path
) -> list[str]:
    return [
        *(sys.executable, "-m", "bench.probe_flood", "--flood", base),
        *("--seconds", str(seconds), "--concurrency", str(concurrency)),
        *("--every", str(every), "--flooder-priority", priority, "--report", str(report)),
    ]


def _offered(report: Path, seconds: float) -> dict[str, Any]:
    """What the flooder sent and got back, from its report (empty if it never wrote one)."""
    if not report.exists():
        return {}
    seen = json.loads(report.read_text())
    answered = sum(n for status, n in seen["statuses"].items() if status.isdigit())
    return {
        "flood_requests": sum(seen["statuses"].values()),
        "flood_answered_per_s": round(answered / seconds, 1),
        "flood_statuses": seen["statuses"],
    }


async def measure(
    seconds: float,
    concurrency: int,
    every: float = 0.0,
    server_kind: str = "moto",
    flooder_priority: str = "normal",
    webhook_delay: float = 0.0,
    probe_alone: bool = False,
    sidecar_cmd: str | None = None,
) -> dict[str, Any]:
    os.environ.update(AWS_TEST_ENV)
    server = sqs_server.start(server_kind)
    webhook_port, probe_port = free_port(), free_port()
    webhook = procs.spawn([sys.executable, "-m", "bench.webhook", str(webhook_port)])
    sidecar_cmd = sidecar_cmd or shutil.which(
        "carrier-sidecar", path=str(Path(sys.executable).parent)
    )
    assert sidecar_cmd, "carrier-sidecar is not installed in this venv"
    sidecar = alone = None
    try:
        wait_until(lambda: _answers(webhook_port), 20, "the bench webhook")
        if webhook_delay > 0:  # every answer late: a worker that takes its time, as real ones do
            WebhookClient(f"http://127.0.0.1:{webhook_port}").reset(1, webhook_delay)
        async with get_session().create_client(
            "sqs", region_name="us-east-1", endpoint_url=server.endpoint
        ) as sqs:
            url = (await sqs.create_queue(QueueName="flood"))["QueueUrl"]
            stop = asyncio.Event()
            filler = asyncio.ensure_future(_keep_queue_full(sqs, url, stop))
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("CARRIER_")},
                **AWS_TEST_ENV,
                "CARRIER_SQS_ENDPOINT": server.endpoint,
                "CARRIER_SQS_QUEUE_NAME": "flood",
                "CARRIER_WEBHOOK_ENDPOINT": f"http://127.0.0.1:{webhook_port}/",
                "CARRIER_SQS_BATCH_SIZE": "10",
                "CARRIER_SQS_RECEIVER_WORKERS": "10",
                "CARRIER_SQS_WAIT_TIME": "1s",
                "CARRIER_HTTP_ADDR": f"127.0.0.1:{probe_port}",
            }
            sidecar = procs.spawn([sidecar_cmd], env=env)
            base = f"http://127.0.0.1:{probe_port}"
            if probe_alone:  # the flood and the probe go to a probe server of its own
                alone_port = free_port()
                alone = procs.spawn([sys.executable, "-m", "bench.probe_alone", str(alone_port)])
                base = f"http://127.0.0.1:{alone_port}"
                await asyncio.to_thread(
                    wait_until, lambda: _answers(alone_port, "/healthz"), 20, "the probe server"
                )
            await asyncio.to_thread(wait_until, lambda: _posts(webhook_port) > 0, 60, "deliveries")
            pids = {
                "sidecar": sidecar.pid,
                "sqs server": server.pid or 0,
                "webhook": webhook.pid,
                **({"probe server": alone.pid} if alone is not None else {}),
                **({"probe process": child[0]} if (child := _children(sidecar.pid)) else {}),
            }
            quiet_start = _posts(webhook_port)
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            quiet = await probe_for(base, seconds)
            quiet_rate = (_posts(webhook_port) - quiet_start) / seconds
            quiet_cpu = _cpu_shares(pids, seconds, before)
            report = Path(tempfile.gettempdir()) / f"flood-{os.getpid()}.json"
            report.unlink(missing_ok=True)
            flooder = procs.spawn(
                _flooder_argv(base, seconds, concurrency, every, flooder_priority, report)
            )
            pids["flooder"] = flooder.pid
            loud_start = _posts(webhook_port)
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            loud = await probe_for(base, seconds)
            loud_rate = (_posts(webhook_port) - loud_start) / seconds
            loud_cpu = _cpu_shares(pids, seconds, before)
            with contextlib.suppress(subprocess.TimeoutExpired):
                flooder.wait(timeout=30)  # its last wave, then its report
            procs.stop(flooder)
            offered = _offered(report, seconds)
            report.unlink(missing_ok=True)
            # A second quiet window: the SQS server's own rate drifts (moto's falls ~20 % over
            # the run with no flood at all), so the flood is judged against both sides of it.
            after_start = _posts(webhook_port)
            await probe_for(base, seconds)
            after_rate = (_posts(webhook_port) - after_start) / seconds
            stop.set()
            await filler
    finally:
        for proc in (alone, sidecar):
            if proc is not None:
                procs.stop(proc)
        procs.stop(webhook)
        server.stop()
    return {
        "sqs_server": server.kind,
        "webhook_delay_s": webhook_delay,
        "concurrency": concurrency,
        "every": every,
        "seconds": seconds,
        "quiet_deliveries_per_s": round(quiet_rate, 1),
        "flood_deliveries_per_s": round(loud_rate, 1),
        "quiet_after_deliveries_per_s": round(after_rate, 1),
        "rate_kept": round(loud_rate / around, 3)
        if (around := (quiet_rate + after_rate) / 2)
        else None,
        "rate_kept_vs_before_only": round(loud_rate / quiet_rate, 3) if quiet_rate else None,
        "quiet_healthz_p50_ms": round(quiet.p(0.5) * 1000, 2),
        "quiet_healthz_p99_ms": round(quiet.p(0.99) * 1000, 2),
        "flood_healthz_p50_ms": round(loud.p(0.5) * 1000, 2),
        "flood_healthz_p99_ms": round(loud.p(0.99) * 1000, 2),
        "flood_healthz_max_ms": round(max(loud.healthz, default=0) * 1000, 2),
        "flood_healthz_mean_ms": round(statistics.fmean(loud.healthz) * 1000, 2)
        if loud.healthz
        else None,
        "probe_answers": loud.statuses,
        "flooder_priority": flooder_priority,
        "probe_alone": probe_alone,
        "sidecar_cmd": sidecar_cmd,
        **offered,
        "quiet_cpu_share": quiet_cpu,  # cores used by each process, in the quiet window
        "flood_cpu_share": loud_cpu,
    }


def _answers(port: int, path: str = "/__stats") -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            r.read()
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.probe_flood", description=__doc__)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=1000)
    ap.add_argument(
        "--every",
        type=float,
        default=0.0,
        help="start a wave every SECONDS (default 0: back to back, as fast as answered)",
    )
    ap.add_argument(
        "--server",
        choices=["moto", "fauxqs"],
        default="moto",
        help="moto: deliveries bound by the SQS server's CPU; fauxqs: by the sidecar's",
    )
    ap.add_argument(
        "--flooder-priority",
        choices=["normal", "idle"],
        default="normal",
        help="idle: the flooding process runs under SCHED_IDLE, as if on another node",
    )
    ap.add_argument(
        "--webhook-delay",
        type=float,
        default=0.0,
        help="the webhook answers every POST after SECONDS (deliveries bound by the worker)",
    )
    ap.add_argument(
        "--probe-alone",
        action="store_true",
        help="flood the sidecar's probe server in a process of its own (bench.probe_alone), "
        "not the sidecar's port: what a separate probe process would give at best",
    )
    ap.add_argument(
        "--sidecar-cmd",
        help="the sidecar binary to flood (default: this venv's carrier-sidecar), e.g. an image venv's",
    )
    ap.add_argument("--flood", metavar="BASE_URL", help="only flood BASE_URL (the load process)")
    ap.add_argument("--report", type=Path, help="with --flood: write the statuses seen here")
    args = ap.parse_args(argv)
    if args.flood:
        if args.flooder_priority == "idle":
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        flood = asyncio.run(flood_for(args.flood, args.seconds, args.concurrency, args.every))
        if args.report is not None:
            args.report.write_text(json.dumps({"statuses": flood.statuses}))
        return
    result = measure(
        args.seconds,
        args.concurrency,
        args.every,
        args.server,
        args.flooder_priority,
        args.webhook_delay,
        args.probe_alone,
        args.sidecar_cmd,
    )
    print(json.dumps(asyncio.run(result), indent=2))


if __name__ == "__main__":
    main()
