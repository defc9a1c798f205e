"""``python -m bench.sweep [--messages N] [--sidecar-cmd "..."] [--label NAME]``: curves, as PNGs.

Runs the sidecar (and, with ``--sidecar-cmd``, another binary, e.g. the Go Carrier) over a grid:
batch size 1, 2, 5, 10 at 1 receiver / 10 workers, and workers 1, 2, 5, 10, 20 at batch 10 /
1 receiver, one run per point. Writes the raw points to bench/results/sweep-<label>.json and
plots every sweep JSON there into docs/img/: CPU per 1 000 messages (steady state and whole
process) and throughput, against batch size and against workers. ``--plot-only`` redraws.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from . import procs, sqs_server
from .measure import Config, Plan, config_for, run_once
from .run import RESULTS, ROOT, sidecar_argv, start_webhook

IMG = ROOT / "docs" / "img"
BATCHES = (1, 2, 5, 10)
WORKERS = (1, 2, 5, 10, 20)


def grid() -> list[tuple[str, Config]]:
    points = [("batch", config_for(f"b{b}-r1-w10")) for b in BATCHES]
    points += [("workers", config_for(f"b10-r1-w{w}")) for w in WORKERS]
    return points


async def sweep(args: argparse.Namespace) -> dict[str, Any]:
    argv, name = sidecar_argv(args.sidecar_cmd)
    plan = Plan(
        argv=argv,
        messages=args.messages,
        latency_samples=3,
        idle_settle=1.0,
        idle_cost_window=0.0,
        results=RESULTS,
        extra_env={},
    )
    server = sqs_server.start(args.server, log=RESULTS / "sweep-server.log")
    out: dict[str, Any] = {"sidecar": name, "label": args.label, "server": server.kind}
    out["points"] = []
    try:
        hook, _port, hook_proc = start_webhook()
        for axis, cfg in grid():
            one = await run_once(cfg, plan, server, hook, hook_proc.pid, f"sweep-{cfg.key}")
            one.pop("latencies_ms", None)
            one.update(axis=axis, batch=cfg.batch, workers=cfg.workers)
            out["points"].append(one)
            print(
                f"{args.label} {cfg.key}: {one.get('msg_per_s') or 0:.0f} msg/s, "
                f"{one.get('cpu_ms_per_1000') or 0:.0f} ms CPU/1000 steady, "
                f"{one.get('whole_cpu_ms_per_1000') or 0:.0f} whole, "
                f"load {one['loadavg_start']:.1f}",
                flush=True,
            )
    finally:
        server.stop()
    return out


def plot(sweeps: list[dict[str, Any]], img: Path = IMG) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    written = []
    for axis, xlabel in (("batch", "batch size (1 receiver, 10 workers)"),
                         ("workers", "workers (batch 10, 1 receiver)")):  # fmt: skip
        fig, (cpu, rate) = plt.subplots(1, 2, figsize=(11, 4.2))
        for sw in sweeps:
            pts = sorted((p for p in sw["points"] if p["axis"] == axis), key=lambda p: p[axis])
            xs = [p[axis] for p in pts]
            label = f"{sw['label']} ({sw['server']})"
            cpu.plot(xs, [p.get("cpu_ms_per_1000") for p in pts], "o-", label=f"{label}, steady")
            cpu.plot(
                xs, [p.get("whole_cpu_ms_per_1000") for p in pts], "s--", label=f"{label}, whole"
            )
            rate.plot(xs, [p.get("msg_per_s") for p in pts], "o-", label=label)
        for ax, ylabel in ((cpu, "CPU ms per 1 000 messages"), (rate, "messages / s")):
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_xscale("log")
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        xs_all = sorted({p[axis] for sw in sweeps for p in sw["points"] if p["axis"] == axis})
        for ax in (cpu, rate):
            ax.set_xticks(xs_all, [str(x) for x in xs_all])
        loads = [p["loadavg_start"] for sw in sweeps for p in sw["points"]]
        fig.suptitle(
            f"carrier-sidecar against {axis}: one run per point, load average "
            f"{min(loads):.1f}-{max(loads):.1f} on 2 shared cores",
            fontsize=10,
        )
        fig.tight_layout()
        path = img / f"bench-{axis}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--sidecar-cmd", help="another binary (default: carrier-sidecar)")
    ap.add_argument("--label", default="carrier-sidecar")
    ap.add_argument("--server", choices=["auto", "fauxqs", "moto"], default="auto")
    ap.add_argument("--plot-only", action="store_true")
    args = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.plot_only:
        with procs.cleanup():
            result = asyncio.run(sweep(args))
        (RESULTS / f"sweep-{args.label}.json").write_text(json.dumps(result, indent=1))
    sweeps = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("sweep-*.json"))]
    for path in plot(sweeps):
        print(f"plot: {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
