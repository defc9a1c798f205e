"""`make demo`: a local SQS (moto_server), a sample worker, the sidecar, and a few messages.

Everything runs on loopback. Ctrl-C stops it cleanly (the sidecar first, as Kubernetes would);
``--once`` exits by itself as soon as the queue has drained.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
QUEUE = "demo-orders"
AWS = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
SAMPLES = [
    ({"order": 1, "item": "coffee", "qty": 2}, {}),
    ({"order": 2, "item": "thé vert", "qty": 1}, {"tenant": "Zürich"}),
    ({"order": 3, "item": "croissant", "qty": 6}, {"priority": 5}),
    ("plain text, as text/plain", {"Body.ContentType": "text/plain; charset=utf-8"}),
    ({"order": 5, "item": "日本茶", "qty": 3}, {}),
]


def say(text: str) -> None:
    print(f"\x1b[1;35mdemo:\x1b[0m {text}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise SystemExit(f"demo: {what} did not start within {timeout:g}s")


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if not found:
        raise SystemExit(f"demo: {name} not found; run `make demo` (it installs the dev extra)")
    return found


def start(args: list[str], env: dict[str, str], quiet: bool = False) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        env={**os.environ, **AWS, **env},
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.DEVNULL if quiet else None,
        start_new_session=True,  # Ctrl-C reaches the demo only; it stops children in order
    )


def stop(proc: subprocess.Popen[bytes], name: str, timeout: float = 30) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="exit once the queue has drained")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # stopped like Ctrl-C: children are cleaned up

    try:
        import aiohttp  # noqa: F401  (the sample worker runs on this interpreter too)
        import boto3  # the dev extra; only the demo's own "producer" uses it
    except ImportError as exc:
        raise SystemExit(
            f"demo: {exc.name} is missing: run `make demo`, or .venv/bin/python examples/demo.py"
        ) from None

    sqs_port, worker_port, probe_port = free_port(), free_port(), free_port()
    endpoint = f"http://127.0.0.1:{sqs_port}"
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    code = 0
    try:
        say(f"starting a local SQS (moto_server) on {endpoint}")
        procs.append(
            (
                "moto",
                start(
                    [tool("moto_server"), "-H", "127.0.0.1", "-p", str(sqs_port)], {}, quiet=True
                ),
            )
        )
        wait_http(f"{endpoint}/moto-api/", "moto_server")
        sqs = boto3.client(
            "sqs",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="demo",
            aws_secret_access_key="demo",
        )
        url = sqs.create_queue(QueueName=QUEUE, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
        say(f"created queue {QUEUE}")

        say(f"starting the sample worker on http://127.0.0.1:{worker_port}/orders")
        procs.append(
            (
                "worker",
                start([sys.executable, str(HERE / "worker.py"), "--port", str(worker_port)], {}),
            )
        )
        wait_http(f"http://127.0.0.1:{worker_port}/healthz", "the worker")

        sidecar_env = {
            "CARRIER_SQS_ENDPOINT": endpoint,
            "CARRIER_SQS_QUEUE_NAME": QUEUE,
            "CARRIER_WEBHOOK_ENDPOINT": f"http://127.0.0.1:{worker_port}/orders?source=carrier",
            "CARRIER_WEBHOOK_HEALTH_CHECK_ENDPOINT": f"http://127.0.0.1:{worker_port}/healthz",
            "CARRIER_SQS_RECEIVER_WORKERS": "4",
            "CARRIER_SQS_BATCH_SIZE": "10",
            "CARRIER_SQS_WAIT_TIME": "2s",
            "CARRIER_ENABLE_COLORIZED_LOGGING": "true",
            "CARRIER_HTTP_ADDR": f"127.0.0.1:{probe_port}",
        }
        say(
            "starting carrier-sidecar with:\n      "
            + "\n      ".join(f"{k}={v}" for k, v in sidecar_env.items())
        )
        sidecar = start([tool("carrier-sidecar")], sidecar_env)
        procs.append(("sidecar", sidecar))
        wait_http(f"http://127.0.0.1:{probe_port}/readyz", "the sidecar")

        for body, attrs in SAMPLES:
            text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
            attributes = {
                name: {
                    "DataType": "Number" if isinstance(v, int) else "String",
                    "StringValue": str(v),
                }
                for name, v in attrs.items()
            }
            sqs.send_message(QueueUrl=url, MessageBody=text, MessageAttributes=attributes)
        say(f"sent {len(SAMPLES)} messages; watching the queue drain")

        deadline = time.monotonic() + 60
        last = None
        while True:
            got = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            now = (
                int(got["ApproximateNumberOfMessages"]),
                int(got["ApproximateNumberOfMessagesNotVisible"]),
            )
            if now != last:
                say(f"queue depth: {now[0]} waiting, {now[1]} in flight")
                last = now
            if now == (0, 0):
                break
            if time.monotonic() > deadline:
                say("the queue did not drain within 60s")
                return 1
            if sidecar.poll() is not None:
                say(f"the sidecar exited early with code {sidecar.returncode}")
                return 1
            time.sleep(0.2)
        say("queue drained: every message was delivered and deleted")
        if not args.once:
            say(
                "still running; send more with (any credentials work locally):\n      "
                "AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 "
                f"aws --endpoint-url {endpoint} sqs send-message --queue-url {url} --message-body hi"
            )
            say("press Ctrl-C to stop")
            while sidecar.poll() is None:
                time.sleep(0.5)
    except KeyboardInterrupt:
        print()
        say("Ctrl-C: stopping the sidecar (SIGTERM, graceful drain), then the worker and SQS")
    finally:
        for name, proc in reversed(procs):
            rc = stop(proc, name)
            if name == "sidecar":
                say(f"sidecar exited with code {rc}")
                if rc not in (0, None):
                    code = 1
    say("bye")
    return code


if __name__ == "__main__":
    sys.exit(main())
