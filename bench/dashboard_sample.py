"""Draw the Grafana dashboard's panels from a real bench run: ``docs/img/dashboard-sample.png``.

``python -m bench.dashboard_sample`` runs moto_server as SQS (a queue whose redrive policy sends a
message to a dead-letter queue after 2 receives), a stand-in worker that answers in 5-80 ms and
fails about 8 % of its deliveries, the real ``carrier-sidecar`` under a varying load, and a real
``carrier-operator`` against the fake Kubernetes API (tests/support/kube.py) reading the queue.
A real Prometheus (``prometheus`` on PATH: Debian's package) scrapes both ``/metrics`` every
second, the sidecar's with ``namespace``/``binding``/``pod`` target labels as the chart's
PodMonitor adds them, the operator's with ``honor_labels`` as its ServiceMonitor does. Then every
panel's expressions are read from the chart's dashboard JSON, evaluated with Prometheus'
``query_range`` API (``$namespace``/``$binding`` filled in, ``$__rate_interval`` = 10s) and drawn
with matplotlib: the same queries Grafana would run, not a re-implementation of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.load import sqs_client
from bench.procs import spawn, stop
from tests.support.kube import BINDINGS, binding_object, fake_kube
from tests.support.operators import RELEASE_NAMESPACE, operators
from tests.support.servers import AWS_TEST_ENV, eventually, free_port, running_moto

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "charts" / "carrier" / "dashboards" / "carrier-bindings.json"
OUT = ROOT / "docs" / "img" / "dashboard-sample.png"
NAMESPACE, BINDING, POD = "shop", "orders", "orders-worker-0"
RATE_INTERVAL = "10s"
FAIL_SHARE = 0.08


async def worker(seed: int) -> tuple[web.AppRunner, int]:
    """The stand-in worker: 5-80 ms per message, about FAIL_SHARE of them answered 500."""
    rng = random.Random(seed)

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(rng.uniform(0.005, 0.08))
        return web.Response(status=500 if rng.random() < FAIL_SHARE else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def prometheus_config(sidecar_port: int, operator_port: int) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "carrier-sidecars",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{sidecar_port}"],
                        "labels": {"namespace": NAMESPACE, "binding": BINDING, "pod": POD},
                    }
                ],
            },
            {
                "job_name": "carrier-operator",
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{operator_port}"]}],
            },
        ],
    }


async def send_load(sqs: Any, url: str, seconds: float) -> int:
    """A wave of load: 5 to 45 messages a second, in batches of 10."""
    sent, start = 0, time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        rate = 25 + 20 * math.sin(elapsed / seconds * 3 * math.pi)
        entries = [{"Id": str(i), "MessageBody": json.dumps({"n": sent + i})} for i in range(10)]
        await sqs.send_message_batch(QueueUrl=url, Entries=entries)
        sent += 10
        await asyncio.sleep(10 / rate)
    return sent


def panel_queries(variables: dict[str, str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """(title, [(expr, legend format)]) of every panel, variables filled in."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out = []
    for panel in dashboard["panels"]:
        targets = []
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(f"${name}", value)
            targets.append((expr, target.get("legendFormat", "")))
        out.append((panel["title"], targets))
    return out


async def query_range(
    session: aiohttp.ClientSession, base: str, expr: str, start: float, end: float
) -> list[dict[str, Any]]:
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "2"}
    async with session.get(f"{base}/api/v1/query_range", params=params) as answer:
        body = await answer.json()
    if body.get("status") != "success":
        raise SystemExit(f"Prometheus refused {expr!r}: {body}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def legend(fmt: str, labels: dict[str, str]) -> str:
    text = fmt
    for key, value in labels.items():
        text = text.replace("{{" + key + "}}", value)
    return text or json.dumps(labels)


def draw(panels: list[tuple[str, list[tuple[str, list[dict[str, Any]]]]]], start: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 3
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(16, 3.6 * rows), squeeze=False)
    for ax, (title, series) in zip(axes.flat, panels, strict=False):
        ax.set_title(title, fontsize=10, loc="left")
        drawn = 0
        for fmt, results in series:
            for result in results:
                points = [(float(t) - start, float(v)) for t, v in result["values"]]
                points = [(t, v) for t, v in points if math.isfinite(v)]
                if not points:
                    continue
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, linewidth=1.2, label=legend(fmt, result["metric"]))
                drawn += 1
        if drawn:
            ax.legend(fontsize=7, loc="upper left")
        else:
            ax.text(
                0.5,
                0.5,
                "no data in the bench\n(kube-state-metrics)",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="grey",
            )
        ax.grid(alpha=0.3)
        ax.set_xlabel("seconds", fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(
        f"Carrier: bindings — {NAMESPACE}/{BINDING} (bench run, dashboard queries via Prometheus)",
        fontsize=12,
    )
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=80)


async def run(seconds: float) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise SystemExit("prometheus not found: apt-get install -y prometheus")
    work = Path(tempfile.mkdtemp(prefix="carrier-dashboard-"))
    runner, worker_port = await worker(seed=16)
    with running_moto() as moto:
        async with sqs_client(moto.endpoint) as sqs:
            dlq = (await sqs.create_queue(QueueName="orders-dlq"))["QueueUrl"]
            arn = (await sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"]))[
                "Attributes"
            ]["QueueArn"]
            policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "2"})
            url = (
                await sqs.create_queue(
                    QueueName="orders",
                    Attributes={"RedrivePolicy": policy, "VisibilityTimeout": "5"},
                )
            )["QueueUrl"]
            sidecar_port = free_port()
            env = {
                "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
                "HOME": str(work),
                **AWS_TEST_ENV,
                "CARRIER_SQS_ENDPOINT": moto.endpoint,
                "CARRIER_SQS_QUEUE_URL": url,
                "CARRIER_SQS_REGION": "us-east-1",
                "CARRIER_SQS_WAIT_TIME": "1s",
                "CARRIER_WEBHOOK_ENDPOINT": f"http://127.0.0.1:{worker_port}/hook",
                "CARRIER_HTTP_ADDR": f"127.0.0.1:{sidecar_port}",
                "CARRIER_RETRY_BACKOFF_BASE": "1s",
                "CARRIER_RETRY_BACKOFF_MAX": "2s",
                "CARRIER_SQS_RECEIVER_WORKERS": "2",
            }
            sidecar = spawn(
                [sys.executable, "-m", "carrier_sidecar"], env=env, log=work / "sidecar.log"
            )
            async with (
                fake_kube(
                    namespaces=("default", NAMESPACE, RELEASE_NAMESPACE),
                    chart_values={"replicaCount": 2},
                ) as kube,
                operators(kube, 1) as fleet,
            ):
                spec = {
                    "queue": {"url": url, "region": "us-east-1", "endpoint": moto.endpoint},
                    "webhook": {"port": worker_port, "path": "/hook"},
                }
                await kube.create(BINDINGS, binding_object(NAMESPACE, BINDING, spec))
                (replica,) = fleet.replicas
                prom_port = free_port()
                config = work / "prometheus.yml"
                config.write_text(
                    json.dumps(prometheus_config(sidecar_port, replica.liveness_port)), "utf-8"
                )
                prom = spawn(
                    [
                        prometheus,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={work / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                    ],
                    log=work / "prometheus.log",
                )
                base = f"http://127.0.0.1:{prom_port}"
                try:
                    async with aiohttp.ClientSession() as session:

                        async def ready() -> bool:
                            try:
                                async with session.get(f"{base}/-/ready") as answer:
                                    return answer.status == 200
                            except aiohttp.ClientError:
                                return False

                        await eventually(ready, 60, "Prometheus ready", every=0.5)
                        start = time.time()
                        sent = await send_load(sqs, url, seconds)
                        await asyncio.sleep(15)  # let the tail drain into the picture
                        end = time.time()
                        variables = {
                            "namespace": NAMESPACE,
                            "binding": BINDING,
                            "workload": ".*",
                            "__rate_interval": RATE_INTERVAL,
                        }
                        drawn = []
                        for title, targets in panel_queries(variables):
                            series = [
                                (fmt, await query_range(session, base, expr, start, end))
                                for expr, fmt in targets
                            ]
                            drawn.append((title, series))
                    draw(drawn, start)
                    print(f"sent {sent} messages over {seconds:g}s; wrote {OUT}")
                finally:
                    stop(prom)
                    stop(sidecar)
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the load wave")
    args = parser.parse_args()
    asyncio.run(run(args.seconds))


if __name__ == "__main__":
    main()
