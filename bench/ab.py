"""``python -m bench.ab --a "CMD" --b "CMD" [--only KEY] [--pairs N]``: A/B pairs, back to back.

On 2 shared cores absolute CPU figures move with whatever else runs, so a change is judged by
pairs: A then B (then B then A for the next pair, so neither always goes first) on the same
servers, webhook and configuration. Each pair's ratio B/A is printed with the load average; the
summary gives the median ratio and its spread. ``--env-a``/``--env-b`` add environment (e.g.
``PYTHONPATH=/tmp/base/sidecar`` to run an older tree as A).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

from . import procs, sqs_server
from .measure import Plan, config_for, run_once
from .run import RESULTS, start_webhook

FIGURES = (
    ("whole_cpu_ms_per_1000", "whole CPU ms/1000"),
    ("cpu_ms_per_1000", "steady CPU ms/1000"),
    ("ready_cpu_s", "start-up CPU s"),
    ("msg_per_s", "msg/s"),
    ("idle_pss_mb", "idle tree PSS MB"),
    ("idle_rss_mb", "idle RSS MB"),
    ("requests_per_msg", "req/msg"),
)


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    ap.add_argument("--a", default=str(Path(sys.executable).with_name("carrier-sidecar")))
    ap.add_argument("--b", default=str(Path(sys.executable).with_name("carrier-sidecar")))
    ap.add_argument("--env-a", action="append", default=[], help="KEY=VALUE for A")
    ap.add_argument("--env-b", action="append", default=[], help="KEY=VALUE for B")
    ap.add_argument("--only", action="append", help="configuration key(s) (default b10-r1-w10)")
    ap.add_argument(
        "--busy-b",
        type=int,
        default=0,
        help="busy-loop processes beside B's runs only (A and B the same command: the cost of "
        "a loaded machine, e.g. a heavy SQS server on the same 2 cores)",
    )
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--server", choices=["auto", "fauxqs", "moto"], default="auto")
    ap.add_argument("--json", type=Path, help="raw pairs (default bench/results/ab-<pid>.json)")
    return ap.parse_args(argv)


def _plan(argv: list[str], env: list[str], messages: int) -> Plan:
    return Plan(
        argv=argv,
        messages=messages,
        latency_samples=5,
        idle_settle=2.0,
        idle_cost_window=0.0,
        results=RESULTS,
        extra_env=dict(kv.split("=", 1) for kv in env),
    )


async def pairs(args: argparse.Namespace) -> dict[str, Any]:
    plans = {
        "A": _plan(shlex.split(args.a), args.env_a, args.messages),
        "B": _plan(shlex.split(args.b), args.env_b, args.messages),
    }
    keys = args.only or ["b10-r1-w10"]
    server = sqs_server.start(args.server, log=RESULTS / "ab-server.log")
    out: dict[str, Any] = {"a": args.a, "b": args.b, "env_a": args.env_a, "env_b": args.env_b}
    out["busy_b"] = args.busy_b
    out["server"] = server.kind
    try:
        hook, _port, hook_proc = start_webhook()
        for cfg in map(config_for, keys):
            runs: list[dict[str, Any]] = []
            for k in range(args.pairs):
                pair: dict[str, Any] = {"loadavg": os.getloadavg()[0]}
                for side in "AB" if k % 2 == 0 else "BA":
                    tag = f"ab-{cfg.key}-{k}-{side}"
                    hogs = [busy_loop() for _ in range(args.busy_b if side == "B" else 0)]
                    try:
                        pair[side] = await run_once(
                            cfg, plans[side], server, hook, hook_proc.pid, tag
                        )
                    finally:
                        for hog in hogs:
                            procs.stop(hog, grace=1)
                runs.append(pair)
                print(line(cfg.key, k, pair), flush=True)
            out[cfg.key] = runs
            print(summary(cfg.key, runs), flush=True)
    finally:
        server.stop()
    return out


def busy_loop(seconds: float = 300.0) -> Any:
    """One process spinning on a core (bounded: it ends by itself after ``seconds``)."""
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    return procs.spawn([sys.executable, "-c", code])


def _ratio(pair: dict[str, Any], key: str) -> float | None:
    a, b = pair["A"].get(key), pair["B"].get(key)
    return b / a if isinstance(a, int | float) and isinstance(b, int | float) and a else None


def line(key: str, index: int, pair: dict[str, Any]) -> str:
    cells = []
    for fig, label in FIGURES[:4]:
        a, b = pair["A"].get(fig), pair["B"].get(fig)
        if isinstance(a, int | float) and isinstance(b, int | float):
            cells.append(f"{label} {a:.3g} -> {b:.3g}")
    return f"{key} pair {index + 1} (load {pair['loadavg']:.1f}): " + ", ".join(cells)


def summary(key: str, runs: list[dict[str, Any]]) -> str:
    parts = []
    for fig, label in FIGURES:
        ratios = [r for r in (_ratio(p, fig) for p in runs) if r is not None]
        if ratios:
            parts.append(
                f"{label} B/A median {statistics.median(ratios):.3f} "
                f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
            )
    return f"{key}: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with procs.cleanup():
        result = asyncio.run(pairs(args))
    out = args.json or RESULTS / f"ab-{os.getpid()}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"raw: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
