"""One benchmark run: preload, start the sidecar, drain, idle, latency; return the figures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import statistics
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.servers import AWS_TEST_ENV, free_port

from . import load, procs
from .sampler import Sampler, status_kb, tree_pss_kb
from .sqs_server import SqsServer
from .webhook import WebhookClient

SLOW_EVERY = 20  # 5 % of ids
# The sidecar logs "receiving" as its receive loops are scheduled: the next thing it does is the
# first ReceiveMessage. (Another binary without that line reports no start-up figure.)
READY_MARK = b'"receiving"'
SLOW_DELAY = 0.5


@dataclass(frozen=True)
class Config:
    key: str
    batch: int
    receivers: int
    workers: int
    mixed: bool = False
    message_share: float = 1.0  # of N
    idle_cost: bool = False

    @property
    def label(self) -> str:
        text = f"batch {self.batch} / {self.receivers} receiver{'s' if self.receivers > 1 else ''} / {self.workers} worker{'s' if self.workers > 1 else ''}"
        return text + (" / mixed-latency webhook" if self.mixed else "")


CONFIGS = (
    Config("b1-r1-w1", 1, 1, 1),
    Config("b10-r1-w10", 10, 1, 10),
    Config("b10-r4-w10", 10, 4, 10, idle_cost=True),
    Config("b10-r1-w10-mixed", 10, 1, 10, mixed=True, message_share=0.25),
)


def config_for(key: str) -> Config:
    """A named configuration above, or any ``b<batch>-r<receivers>-w<workers>`` (the sweep's
    points, or one an A/B pair needs)."""
    for cfg in CONFIGS:
        if cfg.key == key:
            return cfg
    shape = re.fullmatch(r"b(\d+)-r(\d+)-w(\d+)", key)
    if shape is None:
        raise ValueError(
            f"unknown configuration {key!r}: name one, or b<batch>-r<receivers>-w<workers>"
        )
    batch, receivers, workers = (int(n) for n in shape.groups())
    return Config(key, batch, receivers, workers)


@dataclass
class Plan:
    argv: list[str]
    messages: int
    latency_samples: int
    idle_settle: float
    idle_cost_window: float
    results: Path
    extra_env: dict[str, str]
    profile: Path | None = None


def sidecar_env(
    server: SqsServer, queue: str, cfg: Config, hook_url: str, http_port: int
) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        **AWS_TEST_ENV,
        "CARRIER_SQS_ENDPOINT": server.endpoint,
        "CARRIER_SQS_QUEUE_NAME": queue,
        "CARRIER_SQS_BATCH_SIZE": str(cfg.batch),
        "CARRIER_SQS_RECEIVERS": str(cfg.receivers),
        "CARRIER_SQS_RECEIVER_WORKERS": str(cfg.workers),
        "CARRIER_WEBHOOK_ENDPOINT": f"{hook_url}/hook",
        "CARRIER_HTTP_ADDR": f"127.0.0.1:{http_port}",
    }
    if "VIRTUAL_ENV" in os.environ or sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    return env


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def scrape_metrics(port: int) -> dict[str, float] | None:
    """``carrier_sqs_requests_total`` from the sidecar's /metrics, if it serves one."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("carrier_sqs_requests_total{"):
            labels, _, value = line.rpartition(" ")
            found[labels.removeprefix("carrier_sqs_requests_total")] = float(value)
    return found


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_once(
    cfg: Config, plan: Plan, server: SqsServer, hook: WebhookClient, hook_pid: int, tag: str
) -> dict[str, Any]:
    n = max(10, int(plan.messages * cfg.message_share))
    out: dict[str, Any] = {"config": cfg.key, "messages": n, "loadavg_start": os.getloadavg()[0]}
    async with load.sqs_client(server.endpoint) as client:
        queue = await load.create_queue(client)
        url = await load.queue_url(client, queue)
        hook.reset(SLOW_EVERY if cfg.mixed else 0, SLOW_DELAY)
        out["preload_seconds"] = await load.preload(client, url, n)
        server.reset_counts()
        http_port = free_port()
        log = plan.results / f"sidecar-{tag}.log"
        env = {**sidecar_env(server, queue, cfg, hook.url, http_port), **plan.extra_env}
        spawned = time.monotonic()
        proc = procs.spawn(plan.argv, env=env, log=log)
        sidecar = Sampler(proc.pid, every=0.02).start()
        ready = LogMark(log, READY_MARK).start()
        others = [Sampler(pid, every=0.1).start() for pid in (server.pid, hook_pid) if pid]
        profiler = None
        try:
            deadline = time.monotonic() + max(120.0, n / 20)
            stats = hook.stats()
            while stats["unique"] < n:
                if proc.poll() is not None:
                    raise RuntimeError(f"sidecar exited with {proc.returncode}:\n{_tail(log)}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{stats['unique']}/{n} delivered before the deadline")
                if profiler is None and plan.profile is not None and stats["first"] is not None:
                    profiler = start_profiler(proc.pid, plan.profile)
                await asyncio.sleep(0.05)
                stats = hook.stats()
            while await load.depth(client, url) > 0:
                if time.monotonic() > deadline:
                    raise TimeoutError("queue not empty (deletes missing) before the deadline")
                await asyncio.sleep(0.02)
            drained = time.monotonic()
            if profiler is not None:
                procs.interrupt(profiler)
                profiler = None
            counts = server.counts()
            metrics = scrape_metrics(http_port)
            stats = hook.stats()
            first, last = float(stats["first"]), float(stats["last"])
            window = drained - first
            ready.stop()
            whole_cpu = sidecar.cpu_at(drained)
            out.update(
                whole_cpu_ms_per_1000=1e6 * whole_cpu / n,
                whole_seconds=drained - spawned,
                whole_msg_per_s=n / (drained - spawned),
                ready_wall_s=None if ready.seen is None else ready.seen - spawned,
                ready_cpu_s=None if ready.seen is None else sidecar.cpu_at(ready.seen),
            )
            out.update(
                delivered=stats["unique"],
                posts=stats["posts"],
                duplicates=stats["posts"] - stats["unique"],
                seconds=last - first,
                msg_per_s=(n - 1) / (last - first) if last > first else None,
                startup_cpu_s=sidecar.cpu_at(first),
                cpu_ms_per_1000=1e6 * (sidecar.cpu_at(drained) - sidecar.cpu_at(first)) / n,
                system_cpu_share=(sidecar.cpu_at(drained, True) - sidecar.cpu_at(first, True))
                / max(1e-9, sidecar.cpu_at(drained) - sidecar.cpu_at(first)),
                run_queue_wait_share=(
                    sidecar.cpu_at(drained, waited=True) - sidecar.cpu_at(first, waited=True)
                )
                / window,
                sidecar_cpu_share=(sidecar.cpu_at(drained) - sidecar.cpu_at(first)) / window,
                peak_rss_mb=sidecar.peak_rss_kb() / 1024,
                metrics=metrics,
            )
            for sampler, name in zip(others, ("server", "webhook"), strict=False):
                out[f"{name}_cpu_share"] = (
                    sampler.cpu_at(drained) - sampler.cpu_at(first)
                ) / window
            client_counts: dict[str, int] | None = None
            if counts is not None:
                out["requests_counted_by"] = "server"
                client_counts = {
                    k.split("|", 1)[1]: v for k, v in counts.items() if k.startswith("client|")
                }
            elif metrics:
                out["requests_counted_by"] = "sidecar /metrics"
                client_counts = {}
                for labels, value in metrics.items():
                    action = labels.split('action="', 1)[-1].split('"', 1)[0]
                    client_counts[action] = client_counts.get(action, 0) + int(value)
            if client_counts is not None:
                calls = sum(v for k, v in client_counts.items() if not k.endswith(":empty"))
                out["requests"] = client_counts
                out["requests_per_msg"] = calls / n
                out["requests_per_msg_by_action"] = {k: v / n for k, v in client_counts.items()}
            await asyncio.sleep(plan.idle_settle)
            out["idle_pss_mb"] = tree_pss_kb(proc.pid) / 1024  # what the pod holds
            out["idle_rss_mb"] = status_kb(proc.pid, "VmRSS") / 1024  # what ps shows for it
            for key in ("RssAnon", "RssFile"):
                with contextlib.suppress(OSError):
                    out[f"idle_{key.lower()}_mb"] = status_kb(proc.pid, key) / 1024
            if cfg.idle_cost and plan.idle_cost_window > 0 and counts is not None:
                server.reset_counts()
                began = time.monotonic()
                await asyncio.sleep(plan.idle_cost_window)
                idle_counts = server.counts() or {}
                minutes = (time.monotonic() - began) / 60
                receives = idle_counts.get("client|ReceiveMessage", 0)
                out["idle_window_s"] = minutes * 60
                out["idle_receives"] = receives
                out["idle_receives_per_receiver_min"] = receives / cfg.receivers / minutes
            out["latencies_ms"] = await measure_latency(client, url, hook, plan.latency_samples, n)
            lat = out["latencies_ms"]
            out["latency_p50_ms"] = percentile(lat, 0.5)
            out["latency_p99_ms"] = percentile(lat, 0.99)
        finally:
            ready.stop()
            for sampler in (sidecar, *others):
                sampler.stop()
            out["exit_code"] = procs.stop(proc, grace=30)
            if profiler is not None:
                procs.stop(profiler, grace=5)
        with contextlib.suppress(Exception):
            await client.delete_queue(QueueUrl=url)
    out["loadavg_end"] = os.getloadavg()[0]
    return out


async def measure_latency(
    client: Any, url: str, hook: WebhookClient, samples: int, base: int
) -> list[float]:
    """One message at a time into an idle queue the sidecar long-polls; the webhook times it."""
    hook.reset()
    for k in range(samples):
        await asyncio.sleep(random.uniform(0.05, 0.2))  # let the receivers sit in their long poll
        await client.send_message(QueueUrl=url, MessageBody=load.body(base + k, sent=time.time()))
        deadline = time.monotonic() + 30
        while hook.stats()["posts"] <= k:
            if time.monotonic() > deadline:
                raise TimeoutError("latency probe not delivered within 30s")
            await asyncio.sleep(0.005)
    return [1000 * v for v in hook.stats()["latencies"]]


class LogMark:
    """Polls a log file (every 5 ms, in a thread) for a byte string; ``seen`` = monotonic time."""

    def __init__(self, path: Path, needle: bytes, every: float = 0.005) -> None:
        self.path, self.needle, self.every = path, needle, every
        self.seen: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-mark", daemon=True)

    def start(self) -> LogMark:
        self._thread.start()
        return self

    def _run(self) -> None:
        offset, tail = 0, b""
        while not self._stop.is_set() and self.seen is None:
            with contextlib.suppress(OSError), self.path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
                offset += len(chunk)
                if self.needle in tail + chunk:
                    self.seen = time.monotonic()
                    return
                tail = (tail + chunk)[-len(self.needle) :]
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def start_profiler(pid: int, out: Path) -> Any:
    """py-spy attached to the sidecar during the drain, collapsed stacks to ``out``."""
    py_spy = Path(sys.executable).with_name("py-spy")
    return procs.spawn(
        [
            str(py_spy),
            "record",
            "-p",
            str(pid),
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            str(out),
            "--nonblocking",
        ],
        log=out.with_suffix(".log"),
    )


def median(values: list[Any]) -> Any:
    clean = [v for v in values if isinstance(v, int | float)]
    return statistics.median(clean) if clean else None
