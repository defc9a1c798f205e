"""Idle memory of ``carrier-sidecar``: RSS split, import time and a tracemalloc snapshot.

``python -m bench.memory`` starts moto_server on loopback, creates an empty queue, runs the
sidecar with ``CARRIER_SQS_WAIT_TIME=20s`` until it logs "receiving" and its first long poll is
out, waits 5 s, then prints ``/proc/<pid>/status`` (VmRSS/RssAnon/RssFile) and
``smaps_rollup``. ``--importtime`` adds a run under ``python -X importtime`` (self time and
module count per top-level package); ``--tracemalloc`` adds a run under a ``python -c`` wrapper
that traces allocations from the first line and prints the top 30 at idle, each charged to
the newest frame outside importlib (so a module's code objects count against its importer) (the
wrapper lives here: the product code has no tracing switch). ``--runs N`` repeats the RSS run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

from tests.support.servers import AWS_TEST_ENV, MotoServer, free_port

IDLE_SECONDS = 5.0
START_DEADLINE = 60.0

# Runs the sidecar's main() with tracemalloc on from the first import; a thread writes the
# snapshot summary to $CARRIER_BENCH_TRACE_OUT once $CARRIER_BENCH_TRACE_GO appears.
TRACE_WRAPPER = r"""
import os, sys, threading, time, tracemalloc
tracemalloc.start(int(os.environ.get("CARRIER_BENCH_TRACE_FRAMES", "30")))
def _where(tb):
    # The newest frame outside importlib: module code is charged to the module importing it.
    for frame in reversed(tb):
        if not frame.filename.startswith("<frozen"):
            name = frame.filename
            break
    else:
        name = tb[-1].filename
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in name:
            name = name.split(marker, 1)[1]
            break
    parts = name.split("/")
    if parts[0] in {"botocore", "aiobotocore", "aiohttp", "pydantic"}:
        return "/".join(parts[:2])
    return parts[0]
def _dump():
    go, out = os.environ["CARRIER_BENCH_TRACE_GO"], os.environ["CARRIER_BENCH_TRACE_OUT"]
    deadline = time.monotonic() + 120
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.1)
    import gc, json
    gc.collect()
    snap = tracemalloc.take_snapshot()
    by = {}
    for trace in snap.traces:
        key = _where(trace.traceback)
        by[key] = by.get(key, 0) + trace.size
    tops = {}
    for mod in list(sys.modules):
        tops[mod.split(".")[0]] = tops.get(mod.split(".")[0], 0) + 1
    with open(out, "w") as f:
        json.dump({"by": by, "total": sum(by.values()), "modules": len(sys.modules),
                   "packages": tops}, f)
threading.Thread(target=_dump, daemon=True).start()
from carrier_sidecar.__main__ import main
sys.exit(main())
"""


def make_queue(endpoint: str) -> str:
    import boto3

    client = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing").client(
        "sqs", endpoint_url=endpoint, region_name="us-east-1"
    )
    name = f"memory-{os.getpid()}"
    client.create_queue(QueueName=name)
    return name


def sidecar_env(endpoint: str, queue: str, http_port: int, extra: dict[str, str]) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        **AWS_TEST_ENV,
        "CARRIER_SQS_ENDPOINT": endpoint,
        "CARRIER_SQS_QUEUE_NAME": queue,
        "CARRIER_SQS_WAIT_TIME": "20s",
        "CARRIER_WEBHOOK_ENDPOINT": f"http://127.0.0.1:{free_port()}/hook",
        "CARRIER_HTTP_ADDR": f"127.0.0.1:{http_port}",
        **extra,
    }
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    return env


def read_status(pid: int) -> dict[str, int]:
    """kB figures from /proc/<pid>/status and smaps_rollup."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"}:
            out[key] = int(value.split()[0])
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        if key in {"Pss", "Pss_Anon", "Pss_File", "Private_Clean", "Private_Dirty", "Shared_Clean"}:
            out[f"smaps.{key}"] = int(value.split()[0])
    return out


def _receive_started(port: int) -> bool:
    """True once the probe server answers (the receivers start right after "receiving")."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def run_sidecar(
    endpoint: str, queue: str, argv: list[str], extra: dict[str, str], log: Path
) -> tuple[dict[str, int], str]:
    port = free_port()
    env = sidecar_env(endpoint, queue, port, extra)
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_DEADLINE
        while not (b'"receiving"' in log.read_bytes() and _receive_started(port)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"sidecar did not start receiving:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        time.sleep(IDLE_SECONDS)
        return read_status(proc.pid), env.get("CARRIER_BENCH_TRACE_OUT", "")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def importtime(text: str) -> list[tuple[str, float, int]]:
    """(top-level package, self ms, modules) from ``-X importtime`` output, largest first."""
    self_us: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _cumulative, name = line[len("import time:") :].split("|")
        top = name.strip().split(".")[0]
        self_us[top] += int(own)
        count[top] += 1
    return sorted(((k, v / 1000, count[k]) for k, v in self_us.items()), key=lambda t: -t[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter to run the sidecar with, e.g. a venv made by .ci/image-install.sh",
    )
    parser.add_argument(
        "--env", action="append", default=[], help="extra KEY=VALUE for the sidecar"
    )
    parser.add_argument(
        "--cmd", help="the sidecar command instead of PYTHON -m carrier_sidecar (an experiment)"
    )
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.env)
    python = args.python
    moto = MotoServer()
    moto.start()
    tmp = Path(tempfile.mkdtemp(prefix="carrier-memory-"))
    try:
        queue = make_queue(moto.endpoint)
        runs = [
            run_sidecar(
                moto.endpoint,
                queue,
                shlex.split(args.cmd) if args.cmd else [python, "-m", "carrier_sidecar"],
                extra,
                tmp / "log",
            )[0]
            for _ in range(args.runs)
        ]
        print(f"idle {IDLE_SECONDS:.0f} s after the first long poll, {len(runs)} run(s), kB:")
        for key in runs[0]:
            values = [r[key] for r in runs]
            print(f"  {key:<20} median {statistics.median(values):>8.0f}   runs {values}")
        mb = {
            k: statistics.median(r[k] for r in runs) / 1024 for k in ("VmRSS", "RssAnon", "RssFile")
        }
        print(
            f"summary: VmRSS {mb['VmRSS']:.1f} MB = anon {mb['RssAnon']:.1f} + file {mb['RssFile']:.1f}"
        )
        if args.importtime:
            log = tmp / "importtime"
            run_sidecar(
                moto.endpoint,
                queue,
                [python, "-X", "importtime", "-m", "carrier_sidecar"],
                extra,
                log,
            )
            rows = importtime(log.read_text())
            total = sum(r[1] for r in rows)
            print(f"import time (self), {sum(r[2] for r in rows)} modules, {total:.0f} ms:")
            for name, ms, n in rows[:20]:
                print(f"  {name:<24} {ms:>7.1f} ms  {n:>4} modules")
        if args.tracemalloc:
            go, out = tmp / "go", tmp / "trace.json"
            trace_env = {
                **extra,
                "CARRIER_BENCH_TRACE_GO": str(go),
                "CARRIER_BENCH_TRACE_OUT": str(out),
            }
            port_log = tmp / "trace-log"
            _trace_run(
                moto.endpoint, queue, [python, "-c", TRACE_WRAPPER], trace_env, port_log, go, out
            )
    finally:
        moto.stop()
    return 0


def _trace_run(
    endpoint: str,
    queue: str,
    argv: list[str],
    extra: dict[str, str],
    log: Path,
    go: Path,
    out: Path,
) -> None:
    port = free_port()
    env = sidecar_env(endpoint, queue, port, extra)
    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_DEADLINE * 2
        while not (b'"receiving"' in log.read_bytes() and _receive_started(port)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"sidecar did not start receiving:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        time.sleep(IDLE_SECONDS)
        go.touch()
        while not out.exists() or not out.stat().st_size:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("no tracemalloc snapshot")
            time.sleep(0.2)
        time.sleep(0.2)
        data = json.loads(out.read_text())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    print(f"tracemalloc at idle: {data['total'] / 2**20:.1f} MB traced, {data['modules']} modules")
    for name, size in sorted(data["by"].items(), key=lambda kv: -kv[1])[:30]:
        print(f"  {name:<40} {size / 2**20:>6.2f} MB")
    packages = sorted(data["packages"].items(), key=lambda kv: -kv[1])[:15]
    print("  modules per package: " + ", ".join(f"{k} {v}" for k, v in packages))


if __name__ == "__main__":
    sys.exit(main())
