"""Operator memory against cluster size: RSS of the real ``carrier-operator`` process.

``python -m bench.operator_memory`` runs the fake API (tests/support/kube.py: authenticating,
the chart's RBAC, selectors, pagination) in this process and moto_server as SQS, then for each
configuration starts the operator as its own process with a bearer-token kubeconfig, waits
until every binding's status reports its bound pods, lets it settle, and reads VmRSS and
VmHWM (the kernel's peak) from ``/proc/<pid>/status``. Pods are realistic (~3 KB of JSON each):
two labelled pods per binding, the rest unlabelled. Two sweeps: pods in the cluster at 100
bindings, and bindings at 10 000 unlabelled pods. ``--pods``/``--bindings`` narrow them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import spawn, stop
from tests.support.kube import BINDINGS, PODS, FakeKube, fake_kube
from tests.support.servers import AWS_TEST_ENV, MotoServer, free_port

NAMESPACES = tuple(f"team-{i:02d}" for i in range(10))
PODS_PER_BINDING = 2
SETTLE_SECONDS = 5.0
READY_DEADLINE = 600.0
TARGET_MB = 120.0
LABEL = "carrier.amplify.security/binding"


def pod(namespace: str, name: str, binding: str | None) -> dict[str, Any]:
    """A pod about as large as a small real one (labels, env, volumes, status conditions)."""
    labels = {"app": name.rsplit("-", 1)[0], "pod-template-hash": "7d9f8c6b5d"}
    if binding is not None:
        labels[LABEL] = binding
    env = [{"name": f"SETTING_{i}", "value": f"value-{i}-" + "x" * 20} for i in range(12)]
    conditions = [
        {"type": t, "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": labels["app"], "uid": "u"}
            ],
        },
        "spec": {
            "serviceAccountName": "default",
            "nodeName": f"node-{hash(name) % 20}",
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example.com/team/app:1.2.3",
                    "env": env,
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    "volumeMounts": [{"name": "token", "mountPath": "/var/run/secrets/x"}],
                }
            ],
            "volumes": [{"name": "token", "projected": {"sources": [{"serviceAccountToken": {}}]}}],
        },
        "status": {"phase": "Running", "podIP": "10.0.0.1", "conditions": conditions},
    }


def binding(namespace: str, name: str, endpoint: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "queue": {"name": f"q-{name}", "region": "us-east-1", "endpoint": endpoint},
            "webhook": {"port": 8080, "path": "/jobs"},
        },
    }


@dataclass
class Result:
    pods: int  # in the cluster, labelled included
    bindings: int
    rss_mb: float
    peak_mb: float
    ready_s: float


def _status_kb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return 0.0


def _all_reported(kube: FakeKube, keys: list[tuple[str, str]]) -> bool:
    return all(
        kube.status(BINDINGS, ns, name).get("boundPods") == PODS_PER_BINDING for ns, name in keys
    )


def _populate(kube: FakeKube, unlabelled: int, bindings: int, endpoint: str) -> list[Any]:
    keys = [(NAMESPACES[i % len(NAMESPACES)], f"b{i:04d}") for i in range(bindings)]
    kube.load(BINDINGS, (binding(ns, name, endpoint) for ns, name in keys))
    kube.load(
        PODS,
        (pod(ns, f"{name}-{j}", name) for ns, name in keys for j in range(PODS_PER_BINDING)),
    )
    kube.load(
        PODS,
        (pod(NAMESPACES[i % len(NAMESPACES)], f"plain-{i:05d}", None) for i in range(unlabelled)),
    )
    return keys


async def measure(unlabelled: int, bindings: int, moto: MotoServer, logs: Path) -> Result:
    async with fake_kube(namespaces=NAMESPACES) as kube:
        keys = _populate(kube, unlabelled, bindings, moto.endpoint)
        env = {
            **os.environ,
            **AWS_TEST_ENV,
            "KUBECONFIG": str(kube.kubeconfig),
            "CARRIER_OPERATOR_LIVENESS_PORT": str(free_port()),
            "CARRIER_OPERATOR_WEBHOOK_PORT": str(free_port()),
            "CARRIER_OPERATOR_QUEUE_CHECK_INTERVAL": "3600",
            "CARRIER_OPERATOR_LOG_LEVEL": "warning",
        }
        binary = str(Path(sys.executable).with_name("carrier-operator"))
        log = logs / f"operator-{unlabelled}-{bindings}.log"
        proc = spawn([binary], env=env, log=log)
        started = time.monotonic()
        try:
            while not _all_reported(kube, keys):
                if proc.poll() is not None:
                    raise RuntimeError(f"operator exited {proc.returncode}: see {log}")
                if time.monotonic() - started > READY_DEADLINE:
                    raise TimeoutError(f"not every binding reported within {READY_DEADLINE}s")
                await asyncio.sleep(0.5)
            ready = time.monotonic() - started
            await asyncio.sleep(SETTLE_SECONDS)  # a benchmark's settling time, not a test wait
            rss, peak = _status_kb(proc.pid, "VmRSS"), _status_kb(proc.pid, "VmHWM")
        finally:
            stop(proc)
        total = unlabelled + bindings * PODS_PER_BINDING
        return Result(total, bindings, rss / 1024, peak / 1024, ready)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


async def _main(args: argparse.Namespace) -> list[Result]:
    moto = MotoServer()
    moto.start()
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="operator-memory-") as tmp:
            plan = [(p, args.at_bindings) for p in _ints(args.pods)]
            plan += [
                (args.at_pods, b) for b in _ints(args.bindings) if (args.at_pods, b) not in plan
            ]
            for unlabelled, bindings in plan:
                result = await measure(unlabelled, bindings, moto, Path(tmp))
                print(
                    f"pods {result.pods:6d} bindings {result.bindings:5d}: RSS {result.rss_mb:6.1f} MB,"
                    f" peak {result.peak_mb:6.1f} MB, all reported after {result.ready_s:5.1f} s",
                    flush=True,
                )
                results.append(result)
    finally:
        moto.stop()
    return results


def table(results: list[Result]) -> str:
    lines = [
        "| pods in the cluster | bindings | RSS after settling | peak RSS (VmHWM) | all statuses after |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.pods:,} | {r.bindings:,} | {r.rss_mb:.1f} MB | {r.peak_mb:.1f} MB | {r.ready_s:.1f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", default="0,5000,10000", help="unlabelled pods (sweep 1)")
    parser.add_argument("--bindings", default="100,500,1000,2000", help="bindings (sweep 2)")
    parser.add_argument("--at-bindings", type=int, default=100, help="bindings in sweep 1")
    parser.add_argument("--at-pods", type=int, default=10_000, help="unlabelled pods in sweep 2")
    results = asyncio.run(_main(parser.parse_args()))
    print()
    print(table(results))
    target = [r for r in results if r.bindings == 1000 and r.pods >= 10_000]
    for r in target:
        verdict = "met" if r.peak_mb <= TARGET_MB else "NOT met"
        print(
            f"\ntarget <= {TARGET_MB:.0f} MB at 10 000 pods, 1 000 bindings: peak {r.peak_mb:.1f} MB, {verdict}"
        )


if __name__ == "__main__":
    main()
