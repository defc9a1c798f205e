"""``python -m bench.run [--quick] [--messages N] [--runs K] [--sidecar-cmd "..."]``.

Starts fauxqs (or moto without node), the webhook receiver, measures both servers' ceilings,
then runs every configuration K times against the sidecar and writes docs/benchmarks.md
(``--report``) and the raw figures as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from tests.support.servers import free_port

from . import load, procs, profile, report, sqs_server
from .measure import CONFIGS, Plan, run_once
from .webhook import WebhookClient

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="2 000 messages, 1 run, 20 s idle window")
    ap.add_argument("--messages", type=int, help="messages per run (default 20 000; quick 2 000)")
    ap.add_argument("--runs", type=int, help="runs per configuration (default 3; quick 1)")
    ap.add_argument(
        "--sidecar-cmd",
        help="command to benchmark (default: carrier-sidecar; 'standin' = bench.standin)",
    )
    ap.add_argument(
        "--reference-cmd",
        help="a second binary (the Go Carrier) run after each sidecar run of the CPU-target "
        "configurations, on the same servers: the targets are then judged against it",
    )
    ap.add_argument("--only", action="append", help="configuration key(s) to run, e.g. b10-r1-w10")
    ap.add_argument("--server", choices=["auto", "fauxqs", "moto"], default="auto")
    ap.add_argument("--env", action="append", default=[], help="extra KEY=VALUE for the sidecar")
    ap.add_argument(
        "--report",
        type=Path,
        default=ROOT / "docs" / "benchmarks.md",
        help="markdown output ('-' for none)",
    )
    ap.add_argument("--json", type=Path, help="raw results (default bench/results/<time>.json)")
    ap.add_argument(
        "--profile",
        type=Path,
        help="an extra b10-r1-w10 run under py-spy (not in the medians); collapsed stacks here",
    )
    ap.add_argument(
        "--profile-config", default="b10-r1-w10", help="configuration key the --profile run uses"
    )
    ap.add_argument("--latency-samples", type=int)
    ap.add_argument(
        "--idle-window", type=float, help="seconds to count idle receives (default 60; quick 20)"
    )
    ap.add_argument(
        "--idle-settle", type=float, default=5.0, help="seconds on an empty queue before idle RSS"
    )
    return ap.parse_args(argv)


def default_sidecar() -> tuple[list[str], str]:
    script = Path(sys.executable).with_name("carrier-sidecar")
    if script.exists() and find_spec("carrier_sidecar.__main__") is not None:
        return [str(script)], "carrier-sidecar"
    return [
        sys.executable,
        "-m",
        "bench.standin",
    ], "bench.standin (carrier-sidecar not runnable yet)"


def sidecar_argv(spec: str | None) -> tuple[list[str], str]:
    if spec is None:
        return default_sidecar()
    if spec == "standin":
        return [sys.executable, "-m", "bench.standin"], "bench.standin"
    return shlex.split(spec), spec


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=10
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    node = shutil.which("node")
    node_version = (
        subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if node
        else None
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node_version,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "loadavg": os.getloadavg(),
    }


def start_webhook() -> tuple[WebhookClient, int, Any]:
    port = free_port()
    proc = procs.spawn(
        [sys.executable, "-m", "bench.webhook", str(port)], cwd=ROOT, log=RESULTS / "webhook.log"
    )
    client = WebhookClient(f"http://127.0.0.1:{port}")

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError("webhook receiver exited")
        try:
            client.stats()
            return True
        except OSError:
            return False

    procs.wait_until(answers, 20, "webhook receiver")
    return client, port, proc


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    argv, sidecar_name = sidecar_argv(args.sidecar_cmd)
    RESULTS.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench.run " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "machine": machine(),
        "sidecar": sidecar_name,
        "notes": [],
    }
    server = sqs_server.start(args.server, log=RESULTS / "fauxqs.log")
    result["server"] = {"kind": server.kind, "version": server.version}
    result["notes"].extend(server.notes)
    default_n = (2000 if quick else 20000) if server.kind == "fauxqs" else 200
    n = args.messages or default_n
    runs = args.runs or (1 if quick else 3)
    plan = Plan(
        argv=argv,
        messages=n,
        latency_samples=args.latency_samples or (15 if quick else 50),
        idle_settle=args.idle_settle,
        idle_cost_window=args.idle_window
        if args.idle_window is not None
        else (20.0 if quick else 60.0),
        results=RESULTS,
        extra_env=dict(kv.split("=", 1) for kv in args.env),
    )
    result.update(messages=n, runs_per_config=runs, idle_cost_window=plan.idle_cost_window)
    try:
        hook, hook_port, hook_proc = start_webhook()
        result["webhook_ceiling"] = await load.webhook_ceiling(
            hook_port, hook_proc.pid, 1.0 if quick else 3.0
        )
        result["server_ceiling"] = await load.server_ceiling(server.endpoint, n, server.pid)
        configs = [c for c in CONFIGS if not args.only or c.key in args.only]
        result["configs"] = {c.key: {"label": c.label, "runs": []} for c in configs}
        if args.profile:
            result["profile"] = await profile_run(
                plan, server, hook, hook_proc.pid, args.profile, args.profile_config
            )
        reference = None
        if args.reference_cmd:
            reference = replace(plan, argv=shlex.split(args.reference_cmd))
            result["reference"] = {"command": args.reference_cmd, "configs": {}}
        for cfg in configs:
            for k in range(runs):
                began = time.monotonic()
                one = await run_once(cfg, plan, server, hook, hook_proc.pid, f"{cfg.key}-{k}")
                one["wall_s"] = time.monotonic() - began
                result["configs"][cfg.key]["runs"].append(one)
                print(report.one_line(cfg.key, k, one, server.kind), flush=True)
                if reference is None or cfg.key not in report.CPU_TARGETS:
                    continue
                ref = await run_once(
                    cfg, reference, server, hook, hook_proc.pid, f"ref-{cfg.key}-{k}"
                )
                result["reference"]["configs"].setdefault(cfg.key, {"runs": []})["runs"].append(ref)
                print(report.one_line(f"reference {cfg.key}", k, ref, server.kind), flush=True)
    finally:
        server.stop()
    result["finished"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    result["machine"]["loadavg_end"] = os.getloadavg()
    return result


async def profile_run(
    plan: Plan,
    server: sqs_server.SqsServer,
    hook: WebhookClient,
    hook_pid: int,
    out: Path,
    key: str = "b10-r1-w10",
) -> dict[str, Any]:
    """An extra run (batch 10 / 1 / 10 unless told) under py-spy, kept out of the medians."""
    cfg = next(c for c in CONFIGS if c.key == key)
    plan.profile = out
    try:
        one = await run_once(cfg, plan, server, hook, hook_pid, "profile")
    finally:
        plan.profile = None
    print(report.one_line("profile", 0, one), flush=True)
    summary = await asyncio.to_thread(profile.summarise, out, 15)
    return {"file": str(out), "config": key, "run": one, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    with procs.cleanup():
        result = asyncio.run(bench(args))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    out = args.json or RESULTS / f"{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    if str(args.report) != "-":
        report.write(result, args.report)
        print(f"report: {args.report}")
    print(f"raw: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
